"""A dead letter keeps no content in clear; the operator opens it. Against the real broker.
(A message that fails every time: tests/integration/test_batches.py.)"""

from __future__ import annotations

import base64
import hmac
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from shared.contracts import Category, DeadLetter, Topics
from shared.deadletter import DeadLetterKey, DeadLetterKeyError, DeadLetterOpener
from shared.kafka import create_broker
from shared.settings import Settings
from tests.conftest import run_cli
from tests.factories import pseudonym, signal
from tests.kafka_tools import read_all
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.integration


async def test_a_dead_letter_keeps_no_content_in_clear_and_the_operator_opens_it(
    settings: Settings, secrets: Secrets, tmp_path: Path
) -> None:
    """A partner message that is refused keeps its reason, partner, size and a keyed
    digest in clear; its content (theme, wijk, worker, month) only sealed, opened by the
    operator's private key through the CLI and by nothing a service holds."""
    settings = settings.model_copy(update={"deadletter_key_file": secrets.deadletter_key})
    topics = Topics(settings.topic_prefix)
    refused = signal("school-de-regenboog", pseudonym(), category=Category.HUISELIJK_GEWELD)
    original = refused.to_bytes()
    broker, sink = create_broker(
        settings, client_id="intake", tracer_provider=TracerProvider(), registry=CollectorRegistry()
    )
    await broker.start()
    try:
        await sink.send_bytes(
            source=topics.partner("school-de-regenboog"),
            key=refused.subject.encode(),
            value=original,
            reason_code="theme-not-allowed",
            reason="partner 'school-de-regenboog' may not signal this theme under its covenant",
        )
    finally:
        await broker.stop()
    (record,) = await read_all(settings, topics.deadletter)
    for clear in (b"huiselijk_geweld", b"WK099903", refused.worker.email.encode(),
                  refused.age_limit_month.encode(), base64.b64encode(original)[:40]):  # fmt: skip
        assert clear not in record.value
    letter = DeadLetter.model_validate_json(record.value)
    assert letter.partner_id == "school-de-regenboog"
    assert (letter.original_size, letter.reason_code) == (len(original), "theme-not-allowed")
    digest_key = DeadLetterKey.load(secrets.deadletter_key).digest_key
    assert letter.original_digest == hmac.new(digest_key, original, "sha256").hexdigest()
    # A service's file cannot open it; the operator's private half can.
    assert "private_key" not in secrets.deadletter_key.read_text()
    opener = DeadLetterOpener.load(secrets.deadletter_private_key)
    opened = opener.open(letter)
    assert opened is not None and opened.value == original
    assert opened.key == refused.subject.encode()
    # Not even the pseudonym travels beside the reason: the letter's key is a digest.
    assert refused.subject.encode() not in (record.key or b"")
    # Relabelled as another partner's, the original does not open.
    with pytest.raises(DeadLetterKeyError):
        opener.open(letter.model_copy(update={"partner_id": "jgz-voorbeeldrade"}))

    out = tmp_path / "for-the-school"
    status, stdout, stderr = await run_cli(
        settings, "deadletter", "open", str(out),
        "--key", str(secrets.deadletter_private_key), "--partner", "school-de-regenboog",
    )  # fmt: skip
    assert status == 0, stderr
    assert "opened 1 dead letters" in stdout
    assert (out / f"{letter.event_id}.bin").read_bytes() == original
    assert "theme-not-allowed" in (out / "index.csv").read_text()
