"""The retention job of the running matching service: expiry dissolves a match and
archives the registration, a later registration gets a one-time notice of it, the age
limit removes without archiving, and when nothing of a subject is left its data key is
shredded — each step audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from shared.auth import Role
from shared.contracts import (
    EarlierInvolvementNoticed,
    MatchDissolved,
    OrganisationCategory,
    SealedSignal,
    SignalAccepted,
    Topics,
)
from shared.keystore import KeyStore
from shared.settings import Settings
from tests.conftest import eventually, keys_fetchval, token_for
from tests.e2e.test_pipeline import get_json
from tests.factories import pseudonym, worker
from tests.kafka_tools import login, read_topic

pytestmark = pytest.mark.e2e

# Long enough that no ciphertext on a topic holds it by chance (a three-letter name
# turns up in a few kilobytes of base64 in about one run in twenty).
JGZ = "jgz-kennemerland-zuid"


async def test_expiry_archive_notice_age_limit_and_shredding(
    settings: Settings, services: dict[str, str]
) -> None:
    topics = Topics(settings.topic_prefix)
    subject, parent = pseudonym(), pseudonym()
    keystore = await KeyStore.open(settings)
    producer = AIOKafkaProducer(**login(settings))
    await producer.start()
    ids: dict[str, uuid.UUID] = {}

    async def register(org: str, category: OrganisationCategory) -> None:
        event_id = uuid.uuid4()
        ids[org] = event_id
        personal = SealedSignal(worker=worker(f"{org}-1"), wijk="WK099904", parents=[parent])
        event = SignalAccepted(
            event_id=event_id,
            signal_id=event_id,
            partner_id=f"{org}-partner",
            subject=subject,
            organisation=org,
            organisation_category=category,
            registered_at=datetime.now(UTC) - timedelta(days=1),
            age_limit_month="2040-01",
            sealed=await keystore.seal(
                subject, event_id.bytes, personal.model_dump_json().encode(), create=True
            ),
        )
        await producer.send_and_wait(topics.accepted, event.to_bytes(), key=subject.encode())

    async def summary() -> dict[str, int]:
        data: dict[str, int] = await get_json(f"{services['matching']}/matches/summary")
        return data

    conn = await asyncpg.connect(settings.database_url)
    try:
        await register("school", OrganisationCategory.ONDERWIJS)
        await register(JGZ, OrganisationCategory.JGZ)
        await eventually(lambda: _is(summary, "open_matches", 1), timeout=60)

        # The jgz registration reaches its two years.
        await conn.execute(
            "UPDATE matching.registrations SET expires_at = now() - interval '1 second'"
            " WHERE registration_id = $1",
            ids[JGZ],
        )
        await eventually(lambda: _is(summary, "open_matches", 0), timeout=30)
        ended = await conn.fetchrow(
            "SELECT end_reason, archive_until FROM matching.registrations"
            " WHERE registration_id = $1",
            ids[JGZ],
        )
        assert ended["end_reason"] == "expired"
        assert ended["archive_until"] > datetime.now(UTC) + timedelta(days=4 * 365)
        dissolved = [
            MatchDissolved.model_validate_json(r.value)
            for r in await read_topic(
                settings,
                topics.match_lifecycle,
                until=lambda rs: any(
                    dict(r.headers)["vs-event-type"] == b"MatchDissolved" for r in rs
                ),
            )
            if dict(r.headers)["vs-event-type"] == b"MatchDissolved"
        ]
        assert [d.remaining for d in dissolved] == [[ids["school"]]]

        # A new registration hears once of the earlier, archived involvement.
        await register("gp", OrganisationCategory.HUISARTS)
        await eventually(lambda: _is(summary, "open_matches", 1), timeout=30)
        await register("wijkteam", OrganisationCategory.WELZIJN)
        await eventually(lambda: _is(summary, "registrations", 3), timeout=30)

        async def audited(object_type: str) -> int:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM audit.entries WHERE object_type = $1"
                    " AND $2 = ANY(subjects)",
                    object_type,
                    subject,
                )
            )

        await eventually(lambda: audited("earlier-involvement"), timeout=30)
        assert await audited("earlier-involvement") == 1
        lifecycle = await read_topic(
            settings,
            topics.match_lifecycle,
            until=lambda rs: any(
                dict(r.headers)["vs-event-type"] == b"EarlierInvolvementNoticed" for r in rs
            ),
        )
        notices = [
            EarlierInvolvementNoticed.model_validate_json(r.value)
            for r in lifecycle
            if dict(r.headers)["vs-event-type"] == b"EarlierInvolvementNoticed"
        ]
        assert [n.registration_id for n in notices] == [ids["gp"]]
        # Which organisations were involved travels sealed, and reaches the new worker.
        assert all(JGZ.encode() not in r.value for r in lifecycle)
        gp_worker = {
            "Authorization": f"Bearer {token_for(settings, 'gp-1', Role.WORKER, organisation='gp')}"
        }

        async def noticed() -> list[str]:
            inbox = await get_json(f"{services['notification']}/api/alerts", headers=gp_worker)
            return [a["message"] for a in inbox["alerts"] if a["occasion"] == "earlier"]

        (message,) = await eventually(noticed, timeout=30)
        assert message.endswith(JGZ)

        # The month of the 23rd birthday: the live registrations go, and are not archived.
        # (Computed here in UTC, as matching does: not in the database server's zone.)
        month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        await conn.execute(
            "UPDATE matching.registrations SET age_limit_from = $2, expires_at = $3"
            " WHERE end_reason IS NULL AND subject = $1",
            subject,
            month.date(),
            month,
        )
        await eventually(lambda: _is(summary, "registrations", 0), timeout=30)
        left = await conn.fetchval(
            "SELECT count(*) FROM matching.registrations WHERE subject = $1", subject
        )
        assert left == 1  # only the archived JGZ registration
        assert await keys_fetchval(
            settings, "SELECT count(*) FROM keystore.data_keys WHERE subject = $1", subject
        )

        # The archive period ends: nothing of the subject is left, its key is shredded.
        await conn.execute(
            "UPDATE matching.registrations SET archive_until = now() - interval '1 second'"
            " WHERE subject = $1",
            subject,
        )

        async def shredded() -> bool:
            keys = await keys_fetchval(
                settings, "SELECT count(*) FROM keystore.data_keys WHERE subject = $1", subject
            )
            return keys == 0

        await eventually(shredded, timeout=30)
        await eventually(lambda: audited("data-key"), timeout=30)

        # With its last subject the family cluster goes, the parent's link too; and
        # notification drops the contacts it had opened of the shredded subject.
        async def nothing_left() -> bool:
            nodes = await conn.fetchval("SELECT count(*) FROM matching.family_nodes")
            parties = await conn.fetchval("SELECT count(*) FROM notification.match_parties")
            held = await conn.fetchval(
                "SELECT count(*) FROM notification.matches WHERE subject = $1", subject
            )
            return nodes == 0 and parties == 0 and held == 0

        await eventually(nothing_left, timeout=30)

        # The shredding was queued in the deciding transaction and the queue drains (the
        # key goes first, the queue row in a statement after it).
        async def drained() -> bool:
            return await conn.fetchval("SELECT count(*) FROM matching.pending_shreds") == 0

        await eventually(drained, timeout=30)
    finally:
        await conn.close()
        await producer.stop()
        await keystore.close()


async def _is(summary, key: str, value: int) -> bool:  # type: ignore[no-untyped-def]
    return bool((await summary())[key] == value)
