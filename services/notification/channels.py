"""Delivery channels of alerts: a content-free e-mail digest and a signed webhook.

Each `send` either delivers or raises DeliveryFailed, which says whether trying again
later can help. Neither the e-mail nor a failure reason carries personal data: the
e-mail only points to the inbox, where the worker signs in to read the alert.
"""

from __future__ import annotations

import random
import textwrap
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import aiosmtplib
import httpx
from babel.lists import format_list

from shared.i18n import _, ngettext, use_language
from shared.webhook import WebhookTarget, sign

# Jitter spreads retries; it protects no secret, so a seeded PRNG is right here.
_JITTER = random.Random()  # noqa: S311

DELIVERY_HEADER = "X-Vroegsignaal-Delivery"


def email_subject() -> str:
    with use_language("nl"):
        return _("Vroegsignaal: new messages in your inbox")


def digest_text(cases: int, notices: int, overdue: int = 0) -> tuple[str, str]:
    """How many cases changed, how many notices wait and how many things on a team
    lead's or the regie role's overview are past their period, in Dutch and in English
    (the catalogue's); never which or whose."""

    def summary(language: str) -> str:
        with use_language(language):
            parts = [
                text.format(n=n)
                for n, text in (
                    (cases, ngettext("{n} case changed", "{n} cases changed", cases)),
                    (notices, ngettext("{n} notice", "{n} notices", notices)),
                    (
                        overdue,
                        ngettext(
                            "{n} item on your overview past its period",
                            "{n} items on your overview past their period",
                            overdue,
                        ),
                    ),
                )
                if n
            ]
            if not parts:
                return _("Something new awaits you in Vroegsignaal.")
            return _("In Vroegsignaal: {changes} since our last message.").format(
                changes=format_list(parts, locale=language)
            )

    return summary("nl"), summary("en")


def email_body(cases: int, notices: int, overdue: int, inbox_url: str) -> str:
    """Dutch first, then the same in English in one line."""
    dutch, english = digest_text(cases, notices, overdue)
    with use_language("nl"):
        body = [
            dutch,
            "",
            _("Open your inbox to read them:"),
            inbox_url,
            "",
            _(
                "This message deliberately holds no details; you read those in the inbox "
                "only. You get at most one such message per period, however much changes."
            ),
            "",
        ]
    with use_language("en"):
        body.append(english + " " + _("Open your inbox to read them."))
    # Plain text, lines of at most 78 characters (RFC 5322); the link stays whole.
    return "\n".join(textwrap.fill(line, 78, break_long_words=False) for line in body) + "\n"


class DeliveryFailed(Exception):
    """A delivery did not happen. `retryable`: whether a later attempt can succeed.

    The reason names the channel and the cause, never a person or an address.
    """

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class EmailChannel:
    """Tells a worker by e-mail how many cases in their inbox changed, and nothing more."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        inbox_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._envelope_sender = parseaddr(sender)[1] or sender
        self._domain = self._envelope_sender.rpartition("@")[2] or "vroegsignaal.invalid"
        self._inbox_url = inbox_url
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout = timeout

    def message(
        self, to_address: str, delivery_id: str, cases: int = 0, notices: int = 0, overdue: int = 0
    ) -> EmailMessage:
        try:
            message = EmailMessage()
            message["From"] = self._sender
            message["To"] = to_address
            message["Subject"] = email_subject()
            message["Date"] = formatdate(localtime=False, usegmt=True)
            # The domain is given so make_msgid does not look up (and reveal) this host.
            message["Message-ID"] = make_msgid(domain=self._domain)
            message[DELIVERY_HEADER] = delivery_id
        except (ValueError, TypeError):
            raise DeliveryFailed(
                "e-mail: the recipient address or delivery id is not a valid header value; "
                "correct the worker's e-mail address",
                retryable=False,
            ) from None
        message.set_content(email_body(cases, notices, overdue, self._inbox_url))
        return message

    async def send(
        self, to_address: str, delivery_id: str, cases: int = 0, notices: int = 0, overdue: int = 0
    ) -> None:
        message = self.message(to_address, delivery_id, cases, notices, overdue)
        try:
            await aiosmtplib.send(
                message,
                sender=self._envelope_sender,
                recipients=[to_address],
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                start_tls=self._starttls,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as refused:
            # Only the codes: the server's text usually repeats the address.
            codes = sorted({r.code for r in refused.recipients})
            raise DeliveryFailed(
                f"e-mail: the SMTP server refused the recipient ({', '.join(map(str, codes))})",
                retryable=not all(code >= 500 for code in codes),
            ) from None
        except aiosmtplib.SMTPResponseException as answer:
            raise DeliveryFailed(
                f"e-mail: the SMTP server answered {answer.code} ({type(answer).__name__})",
                retryable=answer.code < 500,
            ) from None
        except aiosmtplib.SMTPNotSupported as unsupported:
            raise DeliveryFailed(
                f"e-mail: the SMTP server at {self._host}:{self._port} lacks a feature this "
                f"service is configured to use ({unsupported}); check VS_SMTP_STARTTLS "
                "and VS_SMTP_USERNAME",
                retryable=False,
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as failure:
            raise DeliveryFailed(
                f"e-mail: no SMTP conversation with {self._host}:{self._port} "
                f"({type(failure).__name__})",
                retryable=True,
            ) from None


class WebhookChannel:
    """Posts an alert, signed with the target's secret, to a partner system."""

    def __init__(self, client: httpx.AsyncClient, *, timeout: float = 10.0) -> None:
        self._client = client
        self._timeout = timeout

    async def send(self, target: WebhookTarget, delivery_id: str, body: bytes) -> None:
        headers = sign(target.signing_secrets, delivery_id, int(time.time()), body)
        headers["Content-Type"] = "application/json"
        try:
            response = await self._client.post(
                target.url,
                content=body,
                headers=headers,
                timeout=self._timeout,
                # A redirect could carry a signed alert to a host nobody configured.
                follow_redirects=False,
            )
        except httpx.UnsupportedProtocol:
            raise DeliveryFailed(
                f"webhook {target.name}: the URL is not http(s); fix the webhooks file",
                retryable=False,
            ) from None
        except httpx.TransportError as failure:
            raise DeliveryFailed(
                f"webhook {target.name}: no answer ({type(failure).__name__})", retryable=True
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in (408, 429) or status >= 500:
            raise DeliveryFailed(f"webhook {target.name}: answered {status}", retryable=True)
        if 300 <= status < 400:
            raise DeliveryFailed(
                f"webhook {target.name}: answered a redirect ({status}), which is not "
                "followed; configure the final URL in the webhooks file",
                retryable=False,
            )
        raise DeliveryFailed(
            f"webhook {target.name}: refused the delivery ({status}); the partner must check "
            "its receiver and the shared secret",
            retryable=False,
        )


def backoff_seconds(
    attempt: int,
    base: float,
    cap: float = 3600.0,
    *,
    rng: random.Random | None = None,
) -> float:
    """The pause before retry number `attempt` (1, 2, ...): full jitter under a doubling ceiling.

    The pause is drawn from [0, min(cap, base * 2**(attempt - 1))], so many deliveries
    failing at once against one server do not come back in lockstep.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    # The exponent is bounded so a long outage cannot overflow the float.
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    return (rng or _JITTER).uniform(0.0, ceiling)
