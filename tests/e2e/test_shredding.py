"""Crypto-shredding end to end: after `vroegsignaal keystore shred`, the subject's
personal fields are unreadable on the topics and in a database dump, and a consumer
that meets an event about it handles it as erased."""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from services.intake.domain import Rekeyer
from shared.contracts import (
    DeadLetter,
    MatchRaised,
    OrganisationCategory,
    SealedSignal,
    SignalAccepted,
    SubjectShredded,
    Topics,
    WorkerContact,
)
from shared.kafka import create_broker
from shared.keystore import KeyShredded, KeyStore
from shared.settings import Settings
from tests.conftest import eventually, keys_fetchval, keys_url
from tests.e2e.conftest import Producers
from tests.e2e.test_pipeline import (
    GP,
    JGZ,
    SCHOOL,
    database_dump,
    export,
    get_json,
    partner_config,
    row,
)
from tests.kafka_tools import login, read_all, read_topic
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.partner.producer import PartnerProducer
from vroegsignaal.partner.pseudonymise import Pseudonymiser, bsn_input
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.e2e

SEALED = re.compile(rb"v1\.[A-Za-z0-9+/=]+")


async def test_shredding_erases_every_copy_and_consumers_treat_it_as_erased(
    settings: Settings, secrets: Secrets, services: dict[str, str], tmp_path: Path
) -> None:
    topics = Topics(settings.topic_prefix)
    (child,) = synthetic_bsns(1, random.Random())
    emails = (b"juf-anouk@voorbeeldrade.example", b"jgz-fleur@voorbeeldrade.example")
    broker, _ = create_broker(
        settings,
        client_id="partners",
        tracer_provider=TracerProvider(),
        registry=CollectorRegistry(),
    )
    await broker.start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            for partner, worker, theme in (
                (SCHOOL, "juf-anouk", "pesten"),
                (JGZ, "jgz-fleur", "armoede"),
            ):
                producer = PartnerProducer(
                    partner_config(secrets, settings, partner), broker, topics, http
                )
                path = export(tmp_path / f"{partner}.csv", [row(child, "", worker, theme)])
                await producer.send_file(path, today=datetime.now(UTC).date())
            partner_pseudonym = (
                await Pseudonymiser(
                    partner_config(secrets, settings, SCHOOL).pseudonymiser, http
                ).pseudonyms([bsn_input(child)])
            )[0]
    finally:
        await broker.stop()
    subject = Rekeyer.parse(secrets.gateway_keys.read_text())(partner_pseudonym)

    async def matched() -> bool:
        return (await get_json(f"{services['matching']}/matches/summary"))["open_matches"] == 1

    await eventually(matched, timeout=60)
    accepted = [
        SignalAccepted.model_validate_json(r.value)
        for r in await read_topic(settings, topics.accepted, until=lambda rs: len(rs) >= 2)
    ]
    matches = [
        MatchRaised.model_validate_json(r.value)
        for r in await read_topic(settings, topics.matches, until=lambda rs: len(rs) >= 1)
    ]
    dump = database_dump(settings, schemas=("matching",)) + database_dump(
        settings, url=keys_url(settings)
    )
    stored = [m.group().decode() for m in SEALED.finditer(dump)]
    assert {a.subject for a in accepted} == {subject}
    assert len(stored) == 2  # the two registrations' sealed fields
    # The worker contacts are nowhere in the clear: only sealed, on topics and at rest.
    for blob in [a.to_bytes() for a in accepted] + [m.to_bytes() for m in matches] + [dump]:
        assert not any(email in blob for email in emails)

    keystore = await KeyStore.open(settings)
    try:
        personal = SealedSignal.model_validate_json(
            await keystore.open_sealed(subject, accepted[0].event_id.bytes, accepted[0].sealed)
        )
        assert personal.worker.email.encode() in emails
        # An event about the subject still in flight while it is erased.
        in_flight_id = uuid.uuid4()
        in_flight = SignalAccepted(
            event_id=in_flight_id,
            signal_id=in_flight_id,
            partner_id=GP,
            subject=subject,
            organisation="Huisartsenpraktijk Centrum",
            organisation_category=OrganisationCategory.HUISARTS,
            registered_at=datetime.now(UTC),
            age_limit_month=accepted[0].age_limit_month,
            sealed=await keystore.seal(
                subject,
                in_flight_id.bytes,
                SealedSignal(
                    worker=WorkerContact(
                        worker_id="dokter-bos",
                        display_name="Dokter Bos",
                        email="dokter-bos@voorbeeldrade.example",
                    ),
                    wijk="WK099903",
                )
                .model_dump_json()
                .encode(),
                create=False,
            ),
        )
    finally:
        await keystore.close()

    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "VS_KEK_FILE": str(secrets.kek),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "VS_TOPIC_PREFIX": settings.topic_prefix,
        # Run where intake's logins are (docs/operator.md), as intake's Kafka principal.
        **(secrets.kafka_env("intake") if settings.kafka_sasl_username else {}),
    }
    # A backup of the key store (its own database), taken before the shredding.
    conn = await asyncpg.connect(keys_url(settings))
    try:
        backup = await conn.fetch("SELECT * FROM keystore.data_keys")
    finally:
        await conn.close()

    def keystore_cli(*args: str) -> str:
        """`vroegsignaal keystore ARGS`, run to its end as an operator; its output."""
        done = subprocess.run(
            [sys.executable, "-m", "vroegsignaal", "keystore", *args],
            env={**env, "VS_OPERATOR": "fg-jan"},
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    # A notice of a shredding that did not happen (anyone who may write signals.accepted
    # could send one) erases nothing: it is dead-lettered, the subject's data stays.
    forged = AIOKafkaProducer(**login(settings))
    await forged.start()
    try:
        await forged.send_and_wait(
            topics.accepted,
            SubjectShredded(subject=subject, reason="forged").to_bytes(),
            key=subject.encode(),
            headers=[("vs-event-type", b"SubjectShredded")],
        )
    finally:
        await forged.stop()
    (letter,) = [
        DeadLetter.model_validate_json(r.value)
        for r in await read_topic(settings, topics.deadletter, until=lambda rs: len(rs) >= 1)
    ]
    assert letter.reason_code == "not-shredded"
    assert (await get_json(f"{services['matching']}/matches/summary"))["registrations"] == 2

    assert "shredded" in keystore_cli("shred", subject)

    fresh = await KeyStore.open(settings)
    try:
        for event in accepted:
            with pytest.raises(KeyShredded):
                await fresh.open_sealed(subject, event.event_id.bytes, event.sealed)
        for match in matches:
            with pytest.raises(KeyShredded):
                await fresh.open_sealed(subject, match.event_id.bytes, match.sealed)
        ids = {a.event_id for a in accepted}
        for blob in stored:  # the copies in the dump taken before the shredding
            with pytest.raises(KeyShredded):
                for event_id in ids:
                    await fresh.open_sealed(subject, event_id.bytes, blob)
    finally:
        await fresh.close()

    # Matching is told: what is left of the subject ends; and notification drops the
    # contacts it had opened (they would outlive the key otherwise).
    async def forgotten() -> bool:
        summary = await get_json(f"{services['matching']}/matches/summary")
        held = database_dump(settings, schemas=("notification",))
        return summary["registrations"] == 0 and not any(e in held for e in emails)

    await eventually(forgotten, timeout=60)

    # The backup is restored: the key is back, and the sealed fields open again...
    conn = await asyncpg.connect(settings.database_url)
    try:

        async def shred_logged() -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM audit.entries WHERE action = 'shred'"
                    " AND object_type = 'data-key' AND $1 = ANY(subjects)",
                    subject,
                )
            )

        await eventually(shred_logged, timeout=30)
    finally:
        await conn.close()
    keys = await asyncpg.connect(keys_url(settings))
    try:
        await keys.executemany(
            "INSERT INTO keystore.data_keys (subject, kek_version, wrapped_key, created_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            [(r["subject"], r["kek_version"], r["wrapped_key"], r["created_at"]) for r in backup],
        )
    finally:
        await keys.close()
    restored = await KeyStore.open(settings)
    try:
        await restored.open_sealed(subject, accepted[0].event_id.bytes, accepted[0].sealed)
    finally:
        await restored.close()
    # ...until `keystore reshred` shreds again what the audit log says was shredded.
    assert "1 keys were back and are shredded again" in keystore_cli("reshred")
    after = await KeyStore.open(settings)
    try:
        with pytest.raises(KeyShredded):
            await after.open_sealed(subject, accepted[0].event_id.bytes, accepted[0].sealed)
    finally:
        await after.close()

    await asyncio.sleep(1.5)  # past the services' key cache (VS_KEYSTORE_CACHE_SECONDS)
    producer = AIOKafkaProducer(**login(settings))
    await producer.start()
    try:
        await producer.send_and_wait(topics.accepted, in_flight.to_bytes(), key=subject.encode())
    finally:
        await producer.stop()

    # The shredding (1) and the event in flight, which could not be opened (2).
    async def erased() -> bool:
        metrics = await httpx_text(f"{services['matching']}/metrics")
        return "vroegsignaal_matching_erased_total 2.0" in metrics

    await eventually(erased, timeout=30)
    assert (await get_json(f"{services['matching']}/matches/summary"))["registrations"] == 0
    letters = [
        DeadLetter.model_validate_json(r.value) for r in await read_all(settings, topics.deadletter)
    ]
    # Erased is not an error: only the forged notice above is a dead letter.
    assert [d.reason_code for d in letters] == ["not-shredded"]


async def httpx_text(url: str) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(url)).text


async def test_a_key_found_shredded_erases_the_subject_and_its_family_copies(
    settings: Settings,
    secrets: Secrets,
    services: dict[str, str],
    partners: Producers,
    tmp_path: Path,
) -> None:
    """A data key lost by another route than `keystore shred` (no message told anyone):
    matching meets it when it next decides the family, and then erases the child as on
    request — notification drops its copies, the family's key is replaced."""
    topics = Topics(settings.topic_prefix)
    child, sibling = synthetic_bsns(2, random.Random())

    async def send(partner: str, bsn: str, worker: str) -> None:
        rows = [{**row(bsn, "", worker, "pesten"), "household_id": "HH-9"}]
        path = export(tmp_path / f"{partner}-{worker}.csv", rows)
        assert (await partners(partner).send_file(path, today=datetime.now(UTC).date())).sent

    await send(SCHOOL, child, "juf-anouk")
    await send(JGZ, sibling, "jgz-fleur")

    async def family() -> bool:
        found = await get_json(f"{services['notification']}/alerts/summary")
        return bool(found["open_matches"] == 1)

    await eventually(family, timeout=60)
    async with httpx.AsyncClient(timeout=10) as http:
        partner_pseudonym = (
            await Pseudonymiser(
                partner_config(secrets, settings, SCHOOL).pseudonymiser, http
            ).pseudonyms([bsn_input(child)])
        )[0]
    subject = Rekeyer.parse(secrets.gateway_keys.read_text())(partner_pseudonym)
    (raised,) = [
        MatchRaised.model_validate_json(r.value) for r in await read_all(settings, topics.matches)
    ]
    held = database_dump(settings, schemas=("notification",))
    assert b"juf-anouk@voorbeeldrade.example" in held and subject.encode() in held

    keystore = await KeyStore.open(settings)
    try:
        assert await keystore.shred(subject)  # and nobody is told
    finally:
        await keystore.close()
    await asyncio.sleep(1.5)  # past the services' key cache
    # The sibling's next registration makes matching decide the family again.
    await send(GP, sibling, "dokter-bos")

    async def erased_everywhere() -> bool:
        summary = await get_json(f"{services['matching']}/matches/summary")
        held = database_dump(settings, schemas=("notification",))
        return (
            summary["registrations"] == 2
            and b"juf-anouk@voorbeeldrade.example" not in held
            and subject.encode() not in held
        )

    await eventually(erased_everywhere, timeout=60)
    conn = await asyncpg.connect(settings.database_url)
    try:
        # The family's key, which sealed the erased child's contacts, is gone too.
        async def family_key_gone() -> bool:
            return not await keys_fetchval(
                settings,
                "SELECT count(*) FROM keystore.data_keys WHERE subject = $1",
                raised.subject,
            )

        await eventually(family_key_gone, timeout=30)
        assert not await conn.fetchval(
            "SELECT count(*) FROM matching.family_nodes WHERE node = $1", f"s:{subject}"
        )
    finally:
        await conn.close()
