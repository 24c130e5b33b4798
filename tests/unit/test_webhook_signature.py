"""Webhook signatures follow the Standard Webhooks specification: the specification's
own test vector, and the reference library (`standardwebhooks`) as the receiver, which
accepts only the exact body, secret and time a delivery was signed for; a webhooks file
with a mistake is refused with a message naming the file and entry."""

from __future__ import annotations

import base64
import secrets
import statistics
import time
from pathlib import Path
from random import Random

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from services.notification.channels import backoff_seconds
from shared.webhook import (
    SignatureInvalid,
    WebhookConfigError,
    WebhookTarget,
    load_webhooks,
    secret_text,
    sign,
    verify,
)

SECRET = b"s" * 32
OTHER = b"o" * 32
BODY = b'{"alert_id": "a1", "kind": "new"}'


def signed(*keys: bytes, at: int | None = None, delivery: str = "delivery-1") -> dict[str, str]:
    return sign(keys or (SECRET,), delivery, int(time.time()) if at is None else at, BODY)


def receiver(key: bytes) -> Webhook:
    """The specification's reference library, as a partner system would use it, with
    the secret as the partner's configuration holds it."""
    return Webhook(secret_text(key))


def test_the_specifications_example_signs_to_its_published_signature() -> None:
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    headers = sign([key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_the_reference_library_verifies_a_delivery_and_so_does_verify() -> None:
    headers = signed()
    assert receiver(SECRET).verify(BODY, headers) == {"alert_id": "a1", "kind": "new"}
    verify(SECRET, headers, BODY)
    # Header names are case-insensitive on the way.
    verify(SECRET, {name.title(): value for name, value in headers.items()}, BODY)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"body": BODY.replace(b"new", b"old")}, "No matching signature"),
        ({"webhook-id": "delivery-2"}, "No matching signature"),
        ({"webhook-timestamp": "a second later"}, "No matching signature"),
        ({"key": OTHER}, "No matching signature"),
    ],
    ids=["body", "delivery-id", "timestamp", "secret"],
)
def test_any_change_fails_at_the_reference_receiver(change: dict[str, object], why: str) -> None:
    headers = signed()
    body = change.pop("body", BODY)
    key = change.pop("key", SECRET)
    assert isinstance(body, bytes) and isinstance(key, bytes)
    if "webhook-timestamp" in change:  # taken when the test runs, within the tolerance
        change["webhook-timestamp"] = int(headers["webhook-timestamp"]) + 1
    headers |= {k: str(v) for k, v in change.items()}
    with pytest.raises(WebhookVerificationError, match=why):
        receiver(key).verify(body, headers)
    with pytest.raises(SignatureInvalid, match=why):
        verify(key, headers, body)


def test_a_timestamp_more_than_five_minutes_off_fails_even_with_a_good_signature() -> None:
    now = int(time.time())
    verify(SECRET, signed(at=now - 240), BODY)
    with pytest.raises(SignatureInvalid, match="too old"):
        verify(SECRET, signed(at=now - 360), BODY)
    with pytest.raises(SignatureInvalid, match="too new"):
        verify(SECRET, signed(at=now + 360), BODY)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_fails(header: str) -> None:
    headers = signed()
    del headers[header]
    with pytest.raises(SignatureInvalid, match="Missing required headers"):
        verify(SECRET, headers, BODY)


def test_a_malformed_signature_header_fails_with_a_reason() -> None:
    with pytest.raises(SignatureInvalid, match="webhook-signature is malformed"):
        verify(SECRET, signed() | {"webhook-signature": "v1=abcd"}, BODY)


def test_during_a_rotation_the_old_and_the_new_secret_both_verify() -> None:
    headers = signed(SECRET, OTHER)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert all(part.startswith("v1,") for part in headers["webhook-signature"].split(" "))
    receiver(SECRET).verify(BODY, headers)
    receiver(OTHER).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        receiver(b"x" * 32).verify(BODY, headers)


def test_a_delivery_id_that_could_shift_into_the_body_is_refused() -> None:
    with pytest.raises(ValueError, match="delivery id"):
        signed(delivery="a.1")


# --- the webhooks file ---------------------------------------------------------------

KEY = b"\xab" * 32
GOOD_SECRET = secret_text(KEY)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "webhooks.yaml"
    path.write_text(text)
    return path


def entry(
    name: str = "zorgportaal",
    url: str = "https://zorgportaal.example/hooks",
    secret: str = GOOD_SECRET,
    extra: str = "",
) -> str:
    return (
        f"  - name: {name}\n    url: {url}\n    secret: '{secret}'\n"
        f"    organisations: [jeugdteam-west, ggd]\n{extra}"
    )


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nwebhooks:\n" + entry() + entry("tweede", "http://h:8/x"))
    targets = load_webhooks(path)
    assert targets == [
        WebhookTarget(
            name="zorgportaal",
            url="https://zorgportaal.example/hooks",
            secret=KEY,
            organisations=frozenset({"jeugdteam-west", "ggd"}),
        ),
        WebhookTarget(
            name="tweede",
            url="http://h:8/x",
            secret=KEY,
            organisations=frozenset({"jeugdteam-west", "ggd"}),
        ),
    ]
    assert GOOD_SECRET not in repr(targets) and "secret" not in repr(targets[0])


def test_a_rotation_signs_with_the_new_secret_and_the_previous_ones(tmp_path: Path) -> None:
    old = secret_text(b"o" * 32)
    path = write(
        tmp_path, "version: 1\nwebhooks:\n" + entry(extra=f"    previous_secrets: ['{old}']\n")
    )
    (target,) = load_webhooks(path)
    assert target.signing_secrets == (KEY, b"o" * 32)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\nwebhooks:\n" + entry(url="ftp://zorgportaal.example/x"),
            r":4: webhooks\.0\.url: is not an http:// or https:// URL with a host",
        ),
        (
            "version: 1\nwebhooks:\n" + entry(secret=secret_text(b"a" * 31)),
            r":5: webhooks.0.secret: the secret is 31 bytes, shorter than the 32 "
            r"required; make one with",
        ),
        (
            "version: 1\nwebhooks:\n" + entry(secret="whsec_not base64!"),
            r"webhooks.0.secret: is not base64 after whsec_",
        ),
        (
            "version: 1\nwebhooks:\n" + entry(secret="ab" * 32),
            r"webhooks.0.secret: must be a secret written whsec_<base64>",
        ),
        (
            "version: 1\nwebhooks:\n"
            + entry(extra=f"    previous_secrets: ['{secret_text(b'p' * 8)}']\n"),
            r"webhooks.0.previous_secrets.0: the secret is 8 bytes",
        ),
        (
            "version: 1\nwebhooks:\n  - name: oud\n    url: https://x.example\n"
            f"    secret_hex: '{'ab' * 32}'\n    organisations: [ggd]\n",
            r":3: webhooks.0: 'secret_hex' was the signature scheme before Standard Webhooks",
        ),
        (
            "version: 1\nwebhooks:\n" + entry(extra="    retries: 3\n"),
            r":7: webhooks.0.retries: unknown key; check its spelling",
        ),
        (
            "version: 1\nwebhooks:\n" + entry() + entry(),
            r"webhooks: the webhook name 'zorgportaal' appears more than once",
        ),
        (
            "version: 1\nwebhooks:\n  - name: leeg\n    url: https://x.example\n"
            f"    secret: '{GOOD_SECRET}'\n    organisations: []\n",
            r":6: webhooks.0.organisations: List should have at least 1 item",
        ),
        (
            "version: 2\nwebhooks: []\n",
            r":1: version: not one of the allowed values \(allowed: 1\)",
        ),
        ("version: 1\nhooks: []\n", r":2: hooks: unknown key"),
        ("version: 1\nwebhooks: [\n", r"not valid YAML"),
    ],
    ids=[
        "url-scheme",
        "short-secret",
        "not-base64",
        "no-prefix",
        "short-previous",
        "old-scheme",
        "unknown-key",
        "duplicate-name",
        "no-organisations",
        "version",
        "top-level-key",
        "yaml",
    ],
)
def test_a_bad_file_names_file_entry_and_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(WebhookConfigError, match=expected) as raised:
        load_webhooks(path)
    assert str(raised.value).startswith(f"{path}:")


def test_a_short_secret_is_not_echoed(tmp_path: Path) -> None:
    short = secret_text(secrets.token_bytes(16))
    path = write(tmp_path, "version: 1\nwebhooks:\n" + entry(secret=short))
    with pytest.raises(WebhookConfigError) as raised:
        load_webhooks(path)
    assert short not in str(raised.value)


def test_a_receivers_url_is_not_echoed(tmp_path: Path) -> None:
    url = "ftp://zorgportaal.example/hook?token=geheim-123"
    path = write(tmp_path, "version: 1\nwebhooks:\n" + entry(url=url))
    with pytest.raises(WebhookConfigError) as raised:
        load_webhooks(path)
    assert "geheim-123" not in str(raised.value)


def test_a_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(WebhookConfigError, match=r"cannot read the webhooks file") as raised:
        load_webhooks(path)
    assert str(path) in str(raised.value)


# --- retry pauses ----------------------------------------------------------------------


class Extreme(Random):
    """Draws the lowest or the highest value of every range."""

    def __init__(self, high: bool) -> None:
        super().__init__()
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    highest = [backoff_seconds(n, 1.5, 20.0, rng=Extreme(high=True)) for n in range(1, 7)]
    assert highest == [1.5, 3.0, 6.0, 12.0, 20.0, 20.0]
    assert backoff_seconds(3, 1.5, 20.0, rng=Extreme(high=False)) == 0.0
    assert backoff_seconds(10_000, 1.0, 60.0, rng=Extreme(high=True)) == 60.0


def test_backoff_jitter_stays_in_bounds_and_grows() -> None:
    rng = Random(7)
    samples = {n: [backoff_seconds(n, 2.0, 3600.0, rng=rng) for _ in range(400)] for n in (1, 4)}
    assert all(0.0 <= s <= 2.0 for s in samples[1])
    assert all(0.0 <= s <= 16.0 for s in samples[4])
    assert statistics.mean(samples[4]) > 4 * statistics.mean(samples[1])
    # Full jitter: the pauses really spread over the range, not all near the ceiling.
    assert min(samples[4]) < 4.0 < 12.0 < max(samples[4])


def test_backoff_counts_attempts_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_seconds(0, 1.0)
