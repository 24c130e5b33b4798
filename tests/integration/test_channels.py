"""The delivery channels against real servers: aiosmtpd in its own process for e-mail,
a uvicorn receiver that verifies signatures as a partner would for webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest

from services.notification.channels import DeliveryFailed, EmailChannel, WebhookChannel
from shared.webhook import WebhookTarget
from tests.mailserver import MailServer, mail_server
from tests.webhook_receiver import webhook_receiver
from vroegsignaal.dev.stack.procs import free_port

INBOX = "https://inbox.vroegsignaal.example/inbox"
SENDER = "Vroegsignaal <noreply@vroegsignaal.example>"
WORKER = "j.de.vries@jeugdteam-west.example"
DELIVERY = "0b6c1e3a-alert-7"

# The whole e-mail body, spelled out: any extra content (a name, a match, an
# organisation) makes the delivery test fail.
EXPECTED_BODY = f"""\
In Vroegsignaal: 4 zaken zijn gewijzigd en 1 melding sinds ons vorige bericht.

Open uw inbox om ze te lezen:
{INBOX}

Dit bericht bevat bewust geen details; die leest u alleen in de inbox. U
krijgt hoogstens één zo'n bericht per periode, hoeveel er ook verandert.

In Vroegsignaal: 4 cases changed and 1 notice since our last message. Open
your inbox to read them.
"""

SECRET = bytes(range(32))
OTHER = bytes(range(32, 64))
BODY = json.dumps({"delivery": DELIVERY, "inbox": INBOX}).encode()


def channel(port: int, *, timeout: float = 10.0) -> EmailChannel:
    return EmailChannel("127.0.0.1", port, SENDER, INBOX, timeout=timeout)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[MailServer]:
    with mail_server(tmp_path) as server:
        yield server


# --- e-mail -------------------------------------------------------------------------


async def test_the_email_arrives_with_only_the_counts_and_the_inbox_link(
    smtp: MailServer,
) -> None:
    await channel(smtp.port).send(WORKER, DELIVERY, 4, 1)

    [message] = smtp.messages()
    assert message["To"] == WORKER
    assert message["From"] == SENDER
    assert message["Subject"] == "Vroegsignaal: nieuwe berichten in uw inbox"
    assert message["X-Vroegsignaal-Delivery"] == DELIVERY
    assert message["X-MailFrom"] == "noreply@vroegsignaal.example"
    assert message["X-RcptTo"] == WORKER
    assert message["Message-ID"].endswith("@vroegsignaal.example>")
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message.get_content_type() == "text/plain"
    assert not message.is_multipart()
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert payload.decode() == EXPECTED_BODY
    # Nothing rides along in headers either: only these, the MIME ones and aiosmtpd's own.
    assert {name.lower() for name in message} == {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "x-vroegsignaal-delivery",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "x-peer",
        "x-mailfrom",
        "x-rcptto",
    }


async def test_each_email_has_its_own_message_id(smtp: MailServer) -> None:
    sender = channel(smtp.port)
    await sender.send(WORKER, "delivery-a")
    await sender.send(WORKER, "delivery-b")
    messages = smtp.messages()
    assert sorted(m["X-Vroegsignaal-Delivery"] for m in messages) == ["delivery-a", "delivery-b"]
    assert len({m["Message-ID"] for m in messages}) == 2


async def test_no_smtp_server_is_retryable() -> None:
    with pytest.raises(DeliveryFailed) as raised:
        await channel(free_port()).send(WORKER, DELIVERY)
    assert raised.value.retryable
    assert WORKER not in raised.value.reason


async def test_a_silent_smtp_server_times_out_retryably() -> None:
    async def never_greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(never_greet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):
            with pytest.raises(DeliveryFailed) as raised:
                await channel(port, timeout=0.5).send(WORKER, DELIVERY)
    finally:
        server.close()
    assert raised.value.retryable
    assert "Timeout" in raised.value.reason


async def test_a_refused_recipient_is_permanent_and_not_named(tmp_path: Path) -> None:
    with mail_server(tmp_path, handler="tests.mailserver.RefusingMailbox") as refusing:
        with pytest.raises(DeliveryFailed) as raised:
            await channel(refusing.port).send(WORKER, DELIVERY)
        assert refusing.messages() == []
    assert not raised.value.retryable
    assert "550" in raised.value.reason
    # The server's refusal repeats the address; the reason must not.
    assert WORKER not in raised.value.reason and "jeugdteam" not in raised.value.reason


async def test_an_address_with_a_line_break_is_refused_before_sending(smtp: MailServer) -> None:
    with pytest.raises(DeliveryFailed) as raised:
        await channel(smtp.port).send(f"{WORKER}\r\nBcc: other@example.org", DELIVERY)
    assert not raised.value.retryable
    assert smtp.messages() == []


# --- webhooks -----------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


def target(url: str, secret: bytes = SECRET) -> WebhookTarget:
    return WebhookTarget("zorgportaal", url, secret, frozenset({"jeugdteam-west"}))


async def test_the_receiver_verifies_the_signature(client: httpx.AsyncClient) -> None:
    async with webhook_receiver(SECRET) as receiver:
        await WebhookChannel(client).send(target(receiver.url), DELIVERY, BODY)
    [received] = receiver.received
    assert received.verified, received.failure
    assert received.body == BODY
    assert received.headers["content-type"] == "application/json"
    assert received.headers["webhook-id"] == DELIVERY


async def test_another_secret_fails_verification_and_is_permanent(
    client: httpx.AsyncClient,
) -> None:
    async with webhook_receiver(SECRET) as receiver:
        with pytest.raises(DeliveryFailed) as raised:
            await WebhookChannel(client).send(target(receiver.url, OTHER), DELIVERY, BODY)
    [received] = receiver.received
    assert not received.verified
    assert received.failure == "No matching signature found"
    assert not raised.value.retryable
    assert "400" in raised.value.reason


async def test_a_503_is_retryable_and_the_retry_delivers(client: httpx.AsyncClient) -> None:
    webhooks = WebhookChannel(client)
    async with webhook_receiver(SECRET, fail_first=1, fail_status=503) as receiver:
        with pytest.raises(DeliveryFailed) as raised:
            await webhooks.send(target(receiver.url), DELIVERY, BODY)
        assert raised.value.retryable
        assert "503" in raised.value.reason
        await webhooks.send(target(receiver.url), DELIVERY, BODY)
    assert [r.verified for r in receiver.received] == [True, True]
    assert {r.headers["webhook-id"] for r in receiver.received} == {DELIVERY}


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(408, True), (429, True), (500, True), (502, True), (400, False), (404, False), (410, False)],
)
async def test_the_answer_decides_whether_to_retry(
    client: httpx.AsyncClient, status: int, retryable: bool
) -> None:
    async with webhook_receiver(SECRET, fail_first=1, fail_status=status) as receiver:
        with pytest.raises(DeliveryFailed) as raised:
            await WebhookChannel(client).send(target(receiver.url), DELIVERY, BODY)
    assert raised.value.retryable is retryable
    assert str(status) in raised.value.reason


async def test_a_redirect_is_not_followed(client: httpx.AsyncClient) -> None:
    async with webhook_receiver(SECRET, fail_first=1, fail_status=307) as receiver:
        with pytest.raises(DeliveryFailed) as raised:
            await WebhookChannel(client).send(target(receiver.url), DELIVERY, BODY)
    # Following the redirect would have reached the receiver a second time.
    assert len(receiver.received) == 1
    assert not raised.value.retryable


async def test_a_refused_connection_is_retryable(client: httpx.AsyncClient) -> None:
    url = f"http://127.0.0.1:{free_port()}/webhook"
    with pytest.raises(DeliveryFailed) as raised:
        await WebhookChannel(client).send(target(url), DELIVERY, BODY)
    assert raised.value.retryable
    assert "ConnectError" in raised.value.reason
