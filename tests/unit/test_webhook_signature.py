"""Webhook signatures verify only the exact body, secret and time they were made for;
a webhooks file with a mistake is refused with a message naming the file and entry."""

from __future__ import annotations

import secrets
import statistics
from pathlib import Path
from random import Random

import pytest

from services.notification.channels import backoff_seconds
from shared.webhook import (
    SignatureInvalid,
    WebhookConfigError,
    WebhookTarget,
    load_webhooks,
    sign,
    verify,
)

SECRET = b"s" * 32
OTHER = b"o" * 32
BODY = b'{"alert_id": "a1", "kind": "new"}'
NOW = 1_750_000_000


def signed(secret: bytes = SECRET, *, at: int = NOW) -> dict[str, str]:
    return sign(secret, "delivery-1", at, BODY)


def test_a_signed_body_verifies() -> None:
    headers = signed()
    assert set(headers) == {"Vs-Webhook-Id", "Vs-Webhook-Timestamp", "Vs-Webhook-Signature"}
    assert headers["Vs-Webhook-Signature"].startswith("v1=")
    verify(SECRET, headers, BODY, now=NOW)


def test_header_names_are_case_insensitive() -> None:
    lowered = {name.lower(): value for name, value in signed().items()}
    verify(SECRET, lowered, BODY, now=NOW)


def test_a_tampered_body_fails() -> None:
    with pytest.raises(SignatureInvalid, match=r"^signature mismatch"):
        verify(SECRET, signed(), BODY.replace(b"new", b"old"), now=NOW)


def test_a_changed_delivery_id_fails() -> None:
    headers = signed() | {"Vs-Webhook-Id": "delivery-2"}
    with pytest.raises(SignatureInvalid, match=r"^signature mismatch"):
        verify(SECRET, headers, BODY, now=NOW)


def test_the_wrong_secret_fails() -> None:
    with pytest.raises(SignatureInvalid, match=r"^signature mismatch"):
        verify(OTHER, signed(), BODY, now=NOW)


def test_a_stale_timestamp_fails_even_with_a_good_signature() -> None:
    verify(SECRET, signed(at=NOW - 300), BODY, now=NOW)
    with pytest.raises(SignatureInvalid, match=r"^timestamp too old: signed 301s ago"):
        verify(SECRET, signed(at=NOW - 301), BODY, now=NOW)


def test_a_future_timestamp_fails() -> None:
    verify(SECRET, signed(at=NOW + 300), BODY, now=NOW)
    with pytest.raises(SignatureInvalid, match=r"^timestamp in the future: 301s ahead"):
        verify(SECRET, signed(at=NOW + 301), BODY, now=NOW)


def test_a_shifted_timestamp_fails_the_signature() -> None:
    headers = signed() | {"Vs-Webhook-Timestamp": str(NOW + 1)}
    with pytest.raises(SignatureInvalid, match=r"^signature mismatch"):
        verify(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize(
    "header", ["Vs-Webhook-Id", "Vs-Webhook-Timestamp", "Vs-Webhook-Signature"]
)
def test_each_missing_header_is_named(header: str) -> None:
    headers = signed()
    del headers[header]
    with pytest.raises(SignatureInvalid) as raised:
        verify(SECRET, headers, BODY, now=NOW)
    assert str(raised.value) == f"missing header {header}"


def test_a_signature_header_without_v1_fails() -> None:
    headers = signed() | {"Vs-Webhook-Signature": "v0=abcd"}
    with pytest.raises(SignatureInvalid, match=r"has no v1= signature$"):
        verify(SECRET, headers, BODY, now=NOW)


def test_a_non_numeric_timestamp_fails() -> None:
    headers = signed() | {"Vs-Webhook-Timestamp": "1.5e9"}
    with pytest.raises(SignatureInvalid, match=r"^Vs-Webhook-Timestamp is not unix seconds$"):
        verify(SECRET, headers, BODY, now=NOW)


def test_during_rotation_either_secret_verifies() -> None:
    old = signed(OTHER)["Vs-Webhook-Signature"]
    new = signed(SECRET)["Vs-Webhook-Signature"]
    headers = signed() | {"Vs-Webhook-Signature": f"{old} {new}"}
    verify(SECRET, headers, BODY, now=NOW)
    verify(OTHER, headers, BODY, now=NOW)
    with pytest.raises(SignatureInvalid, match=r"^signature mismatch"):
        verify(b"x" * 32, headers, BODY, now=NOW)


def test_a_delivery_id_that_could_shift_into_the_body_is_refused() -> None:
    with pytest.raises(ValueError, match="delivery id"):
        sign(SECRET, "a.1", NOW, BODY)
    headers = signed() | {"Vs-Webhook-Id": "a.1"}
    with pytest.raises(SignatureInvalid, match=r"^Vs-Webhook-Id is malformed$"):
        verify(SECRET, headers, BODY, now=NOW)


# --- the webhooks file ---------------------------------------------------------------

GOOD_SECRET = "ab" * 32


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "webhooks.yaml"
    path.write_text(text)
    return path


def entry(
    name: str = "zorgportaal",
    url: str = "https://zorgportaal.example/hooks",
    secret_hex: str = GOOD_SECRET,
    extra: str = "",
) -> str:
    return (
        f"  - name: {name}\n    url: {url}\n    secret_hex: '{secret_hex}'\n"
        f"    organisations: [jeugdteam-west, ggd]\n{extra}"
    )


def test_a_good_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nwebhooks:\n" + entry() + entry("tweede", "http://h:8/x"))
    targets = load_webhooks(path)
    assert targets == [
        WebhookTarget(
            name="zorgportaal",
            url="https://zorgportaal.example/hooks",
            secret=bytes.fromhex(GOOD_SECRET),
            organisations=frozenset({"jeugdteam-west", "ggd"}),
        ),
        WebhookTarget(
            name="tweede",
            url="http://h:8/x",
            secret=bytes.fromhex(GOOD_SECRET),
            organisations=frozenset({"jeugdteam-west", "ggd"}),
        ),
    ]
    assert GOOD_SECRET not in repr(targets) and "secret" not in repr(targets[0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\nwebhooks:\n" + entry(url="ftp://zorgportaal.example/x"),
            r"webhook #1 'zorgportaal': url 'ftp://zorgportaal.example/x' is not an "
            r"http:// or https:// URL with a host",
        ),
        (
            "version: 1\nwebhooks:\n" + entry(secret_hex="ab" * 31),
            r"webhook #1 'zorgportaal': the secret is 31 bytes, shorter than the 32 required; "
            r"make one with",
        ),
        (
            "version: 1\nwebhooks:\n" + entry(secret_hex="zz" * 32),
            r"webhook #1 'zorgportaal': 'secret_hex' is not hexadecimal",
        ),
        (
            "version: 1\nwebhooks:\n" + entry(extra="    retries: 3\n"),
            r"webhook #1 'zorgportaal': unknown key\(s\) retries; allowed are name, url, "
            r"secret_hex, organisations",
        ),
        (
            "version: 1\nwebhooks:\n" + entry() + entry(),
            r"webhook #2 'zorgportaal': the name is used twice",
        ),
        (
            "version: 1\nwebhooks:\n  - name: leeg\n    url: https://x.example\n"
            f"    secret_hex: '{GOOD_SECRET}'\n    organisations: []\n",
            r"webhook #1 'leeg': 'organisations' must be a non-empty list",
        ),
        ("version: 2\nwebhooks: []\n", r"version is 2; this service reads 'version: 1'"),
        ("version: 1\nhooks: []\n", r"unknown key\(s\) hooks"),
        ("version: 1\nwebhooks: [\n", r"not valid YAML"),
    ],
    ids=[
        "url-scheme",
        "short-secret",
        "not-hex",
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
    assert str(raised.value).startswith(f"{path}: ")


def test_a_short_secret_is_not_echoed(tmp_path: Path) -> None:
    short = secrets.token_hex(16)
    path = write(tmp_path, "version: 1\nwebhooks:\n" + entry(secret_hex=short))
    with pytest.raises(WebhookConfigError) as raised:
        load_webhooks(path)
    assert short not in str(raised.value)


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
