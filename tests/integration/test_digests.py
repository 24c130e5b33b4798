"""Digest e-mails against a real PostgreSQL: many alerts for one worker become one
e-mail delivery per policy interval, saying how many cases changed; a case new to the
worker goes sooner when the policy says so; an erased alert leaves no trace in a digest
still to come; instances never compose the same digest twice; what is past its period on
a team lead's overview is a count in their digest, and goes with its alert or match."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from services.notification import store
from services.notification.delivery import BATCH, DIGEST_LOCK, DigestComposer
from services.notification.domain import (
    Alert,
    Part,
    alert_id,
    no_contact_overdue,
    unacknowledged_overdue,
)
from shared.contracts import MatchKind, WorkerContact
from shared.db import create_pool, lock, migrate, migration_files
from shared.policy import DigestPolicy

pytestmark = pytest.mark.integration

SERVICE = Path(__file__).resolve().parents[2] / "services" / "notification"
POLICY = DigestPolicy(interval_minutes=60, new_case_immediately=True, min_gap_minutes=5)
ANNA = WorkerContact(worker_id="anna", display_name="Anna", email="anna@voorbeeldrade.example")
BRAM = WorkerContact(worker_id="bram", display_name="Bram", email="bram@voorbeeldrade.example")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    await migrate(database_url, "notification", migration_files(SERVICE))
    pool = await create_pool(database_url, "notification")
    yield pool
    await pool.close()


async def tell(
    pool: asyncpg.Pool, recipient: WorkerContact, match_id: uuid.UUID | None, occasion: str
) -> Alert:
    """An alert stored and queued for its recipient's digest, as the handlers do."""
    alert = Alert(
        alert_id(match_id, recipient.worker_id, MatchKind.PERSON, occasion),
        match_id,
        MatchKind.PERSON,
        occasion,
        Part.REGISTRANT,
        recipient,
        (),
        None,
        "message",
    )
    async with pool.acquire() as conn, conn.transaction():
        assert await store.add_alert(conn, alert, [f"subject-{match_id}"])
        await store.queue_for_digest(conn, alert)
    return alert


async def email_deliveries(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await conn.fetch(
            "SELECT d.target, g.cases, g.notices, g.created_at FROM deliveries d"
            " JOIN digests g USING (digest_id) WHERE d.channel = 'email'"
            " ORDER BY g.created_at, d.target"
        )


async def relay_took_them(pool: asyncpg.Pool) -> None:
    """The delivery loop sent every e-mail composed so far."""
    async with pool.acquire() as conn:
        await conn.execute("UPDATE deliveries SET state = 'sent', sent_at = now()")


async def test_many_alerts_become_one_email_per_interval(pool: asyncpg.Pool) -> None:
    composer = DigestComposer(lambda: pool, POLICY)
    now = datetime.now(UTC)
    cases = [uuid.uuid4() for _ in range(5)]
    for case in cases:
        await tell(pool, ANNA, case, "raised")
    await tell(pool, ANNA, cases[0], "joined:x")  # a second change to the same case
    await tell(pool, ANNA, None, "earlier")  # a notice without a case

    # Never e-mailed before: told at once, of all five cases and the notice in one e-mail.
    assert await composer.run_once(now) == 1
    (first,) = await email_deliveries(pool)
    assert (first["target"], first["cases"], first["notices"]) == (ANNA.email, 5, 1)
    await relay_took_them(pool)

    # More changes to known cases within the hour: they wait.
    for case in cases:
        await tell(pool, ANNA, case, "transferred")
    assert await composer.run_once(now + timedelta(minutes=30)) == 0
    assert len(await email_deliveries(pool)) == 1
    # After the interval, one e-mail for all of them.
    assert await composer.run_once(now + timedelta(minutes=61)) == 1
    second = (await email_deliveries(pool))[-1]
    assert (second["cases"], second["notices"]) == (5, 0)
    assert await composer.run_once(now + timedelta(minutes=200)) == 0  # nothing waits


async def test_a_case_new_to_the_worker_goes_after_the_minimum_gap_only_if_the_policy_says(
    pool: asyncpg.Pool,
) -> None:
    await tell(pool, BRAM, uuid.uuid4(), "raised")
    assert await DigestComposer(lambda: pool, POLICY).run_once() == 1
    await relay_took_them(pool)
    start = datetime.now(UTC)
    await tell(pool, BRAM, uuid.uuid4(), "raised")  # a new case for Bram
    assert await DigestComposer(lambda: pool, POLICY).run_once(start + timedelta(minutes=2)) == 0
    hourly = DigestPolicy(interval_minutes=60, new_case_immediately=False, min_gap_minutes=5)
    assert await DigestComposer(lambda: pool, hourly).run_once(start + timedelta(minutes=6)) == 0
    assert await DigestComposer(lambda: pool, POLICY).run_once(start + timedelta(minutes=6)) == 1


async def test_an_erased_alert_leaves_no_item_and_the_digest_counts_only_the_rest(
    pool: asyncpg.Pool,
) -> None:
    kept = uuid.uuid4()
    erased = uuid.uuid4()
    await tell(pool, ANNA, kept, "raised")
    gone = await tell(pool, ANNA, erased, "raised")
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM alerts WHERE alert_id = $1", gone.alert_id)
        assert await conn.fetchval("SELECT count(*) FROM digest_items") == 1
    assert await DigestComposer(lambda: pool, POLICY).run_once() == 1
    (digest,) = await email_deliveries(pool)
    assert digest["cases"] == 1
    # The delivery's lease brings the subjects of the alerts it tells of, for the audit
    # log's access reports: the kept case's only.
    async with pool.acquire() as conn, conn.transaction():
        (claimed,) = await store.claim_deliveries(conn, BATCH, 60)
    assert list(claimed["subjects"]) == [f"subject-{kept}"]
    assert (claimed["cases"], claimed["recipient_id"]) == (1, "anna")


async def test_a_composer_that_finds_another_at_work_composes_nothing(
    pool: asyncpg.Pool,
) -> None:
    """Instances take turns: while one holds the composer's lock, another makes no
    digest (two at once would e-mail a worker twice)."""
    for _ in range(20):
        await tell(pool, ANNA, uuid.uuid4(), "raised")
    async with pool.acquire() as conn, conn.transaction():
        await lock(conn, [DIGEST_LOCK])
        assert await DigestComposer(lambda: pool, POLICY).run_once() == 0
        assert await email_deliveries(pool) == []
    async with pool.acquire() as conn, conn.transaction():
        # During a rolling upgrade, an instance of the release before holds the lock as
        # that release took it (a number): it is still its turn.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", 0x76736467)
        assert await DigestComposer(lambda: pool, POLICY).run_once() == 0
    assert await DigestComposer(lambda: pool, POLICY).run_once() == 1
    (digest,) = await email_deliveries(pool)
    assert digest["cases"] == 20


async def test_while_a_workers_email_waits_for_the_relay_no_second_one_is_composed(
    pool: asyncpg.Pool,
) -> None:
    now = datetime.now(UTC)
    await tell(pool, ANNA, uuid.uuid4(), "raised")
    assert await DigestComposer(lambda: pool, POLICY).run_once(now) == 1
    await tell(pool, ANNA, uuid.uuid4(), "raised")
    # The relay is down: hours pass, the first e-mail is still pending.
    composer = DigestComposer(lambda: pool, POLICY)
    for hours in (2, 5, 9):
        assert await composer.run_once(now + timedelta(hours=hours)) == 0
    await relay_took_them(pool)
    assert await DigestComposer(lambda: pool, POLICY).run_once(now + timedelta(hours=10)) == 1
    assert len(await email_deliveries(pool)) == 2


async def test_old_digests_go_with_their_items_but_not_one_still_to_be_sent(
    pool: asyncpg.Pool,
) -> None:
    await tell(pool, ANNA, uuid.uuid4(), "raised")
    await tell(pool, BRAM, uuid.uuid4(), "raised")
    assert await DigestComposer(lambda: pool, POLICY).run_once() == 2
    async with pool.acquire() as conn:
        await conn.execute("UPDATE deliveries SET state = 'sent' WHERE target = $1", ANNA.email)
        pruned = await store.prune_digests(conn, datetime.now(UTC) + timedelta(days=1))
        assert pruned == 1
        left = await conn.fetch("SELECT target FROM deliveries")
        assert [r["target"] for r in left] == [BRAM.email]  # still pending: kept
        # Anna's item went with her digest: it is not queued again.
        assert await conn.fetchval("SELECT count(*) FROM digest_items") == 1
    assert await DigestComposer(lambda: pool, POLICY).run_once() == 0


LEAD = WorkerContact(worker_id="lead", display_name="Ingrid", email="lead@voorbeeldrade.example")


async def open_match(pool: asyncpg.Pool) -> uuid.UUID:
    """An open match in notification's tables, its one party a child 'subject-<id>'."""
    match_id = uuid.uuid4()
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO matches (match_id, kind, subject, wijk, team_id, raised_at)"
            " VALUES ($1, 'person', $2, 'WK079701', 'jgt-noord', now())",
            match_id,
            f"subject-{match_id}",
        )
        await conn.execute(
            "INSERT INTO match_parties (match_id, registration_id, worker_id, worker,"
            " organisation, subject) VALUES ($1, $2, 'anna', $3, 'School', $4)",
            match_id,
            uuid.uuid4(),
            ANNA.model_dump_json(),
            f"subject-{match_id}",
        )
    return match_id


async def test_what_is_past_its_period_is_a_count_in_the_digest_and_goes_with_its_alert(
    pool: asyncpg.Pool,
) -> None:
    cases = [await open_match(pool) for _ in range(5)]
    late_case, quiet_case, followed_case, erased_case, contacted_case = cases
    late = await tell(pool, ANNA, late_case, "raised")
    followed = await tell(pool, ANNA, followed_case, "raised")
    erased = await tell(pool, ANNA, erased_case, "raised")
    async with pool.acquire() as conn, conn.transaction():
        await store.queue_overdue(
            conn,
            [
                *unacknowledged_overdue(late.alert_id, late_case, [LEAD], []),
                *no_contact_overdue(quiet_case, [LEAD]),
                *unacknowledged_overdue(followed.alert_id, followed_case, [LEAD], []),
                *unacknowledged_overdue(erased.alert_id, erased_case, [LEAD], []),
                *no_contact_overdue(contacted_case, [LEAD]),
            ],
        )
        # Queued twice (a redelivered run): still one item each.
        await store.queue_overdue(conn, no_contact_overdue(quiet_case, [LEAD]))
        # Followed up before the digest: Anna acknowledged; contact made. Erased: the alert
        # went.
        await conn.execute(
            "UPDATE alerts SET acknowledged_at = now() WHERE alert_id = $1", followed.alert_id
        )
        await conn.execute("DELETE FROM alerts WHERE alert_id = $1", erased.alert_id)
        await conn.execute(
            "UPDATE matches SET contact_made_at = now() WHERE match_id = $1", contacted_case
        )
        assert await conn.fetchval("SELECT count(*) FROM overdue_items") == 4
    await DigestComposer(lambda: pool, POLICY).run_once()
    async with pool.acquire() as conn, conn.transaction():
        (lead_mail,) = [
            d for d in await store.claim_deliveries(conn, BATCH, 60) if d["recipient_id"] == "lead"
        ]
    # The late alert and the quiet match; not what was followed up or erased meanwhile.
    assert (lead_mail["cases"], lead_mail["notices"], lead_mail["overdue"]) == (0, 0, 2)
    # In the log, the e-mail is about the late alert's child and the quiet match's.
    assert sorted(lead_mail["subjects"]) == sorted(
        [f"subject-{late_case}", f"subject-{quiet_case}"]
    )
    # A match that goes (erasure, retention) takes its items along.
    async with pool.acquire() as conn:
        await store.forget_matches(conn, [quiet_case, late_case])
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM overdue_items WHERE match_id = ANY($1)",
                [quiet_case, late_case],
            )
            == 0
        )
