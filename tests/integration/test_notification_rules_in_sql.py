"""Three of notification's rules are read models, answered in SQL for speed: a case
"waiting for me", an overview item "followed up" before its digest, and whose overview a
team's late alerts are on. The rules themselves are in services/notification/domain.py;
here every combination of their inputs is stored in a real PostgreSQL and the SQL must
give the domain's answer."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from services.notification import store
from services.notification.domain import (
    Alert,
    Overdue,
    OverdueKind,
    Part,
    alert_id,
    regie_oversees,
    still_overdue,
    waiting_for_recipient,
)
from shared.contracts import MatchKind, WorkerContact
from shared.db import migrate, migration_files

pytestmark = pytest.mark.integration

SERVICE = Path(__file__).resolve().parents[2] / "services" / "notification"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ANNA = WorkerContact(worker_id="anna", display_name="Anna", email="anna@voorbeeldrade.example")
REGIE = WorkerContact(worker_id="rik", display_name="Rik", email="rik@voorbeeldrade.example")


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    await migrate(database_url, "notification", migration_files(SERVICE))
    connection = await asyncpg.connect(
        database_url, server_settings={"search_path": "notification"}
    )
    try:
        yield connection
    finally:
        await connection.close()


async def a_match(conn: asyncpg.Connection, team: str | None = None) -> uuid.UUID:
    match_id = uuid.uuid4()
    assert await store.add_match(
        conn, match_id=match_id, kind=MatchKind.PERSON.value, subject=f"s-{match_id}",
        family=None, wijk="WK000001", team_id=team, coordinator_id=None, raised_at=T0,
    )  # fmt: skip
    return match_id


async def an_alert(conn: asyncpg.Connection, match_id: uuid.UUID, to: WorkerContact) -> Alert:
    alert = Alert(
        alert_id(match_id, to.worker_id, MatchKind.PERSON, "raised"),
        match_id, MatchKind.PERSON, "raised", Part.REGISTRANT, to, (), None, "message",
    )  # fmt: skip
    assert await store.add_alert(conn, alert, [f"s-{match_id}"])
    return alert


async def test_waiting_for_me_is_an_unread_alert_or_an_open_task(
    conn: asyncpg.Connection,
) -> None:
    expected = set()
    for unread, tasks in itertools.product((0, 1, 2), (0, 1, 2)):
        match_id = await a_match(conn)
        for n in range(2):  # two alerts of the case, `unread` of them left unread
            alert = Alert(
                alert_id(match_id, ANNA.worker_id, MatchKind.PERSON, f"joined:{n}"),
                match_id, MatchKind.PERSON, f"joined:{n}", Part.REGISTRANT, ANNA, (), None, "m",
            )  # fmt: skip
            assert await store.add_alert(conn, alert, [f"s-{match_id}"])
            if n >= unread:
                assert await store.acknowledge(conn, alert.alert_id, T0)
        for n in range(2):  # two tasks of hers, `tasks` of them still to do
            registration = uuid.uuid4()
            assert await store.add_task(
                conn, match_id=match_id, registration_id=registration,
                worker_id=ANNA.worker_id, addressee="parents",
            )  # fmt: skip
            if n >= tasks:
                task = uuid.uuid5(match_id, f"inform/{registration}")
                assert await store.complete_task(conn, task, T0)
        if waiting_for_recipient(unread, tasks):
            expected.add(str(match_id))
    cases, totals, _ = await store.cases_of(conn, ANNA.worker_id, None, "waiting", 100, 0)
    assert {c["match_id"] for c in cases} == expected
    assert totals["waiting"] == len(expected)
    assert 0 < len(expected) < 9  # both answers occur


async def test_an_overview_item_followed_up_is_not_in_the_digest(
    conn: asyncpg.Connection,
) -> None:
    kept = set()
    for kind, match_open, acknowledged, contact in itertools.product(
        OverdueKind, (True, False), (True, False), (True, False)
    ):
        match_id = await a_match(conn)
        alert = await an_alert(conn, match_id, ANNA)
        late = alert.alert_id if kind is OverdueKind.UNACKNOWLEDGED else None
        item = Overdue(uuid.uuid4(), kind, REGIE, match_id, late)
        await store.queue_overdue(conn, [item])
        if acknowledged:
            assert await store.acknowledge(conn, alert.alert_id, T0)
        if contact:
            assert await store.record_contact(conn, match_id, "anna", "bram", T0)
        if not match_open:
            assert await store.close_match(conn, match_id, T0 + timedelta(days=1))
        if still_overdue(
            kind, match_open=match_open, acknowledged=acknowledged, contact_made=contact
        ):
            kept.add(item.item_id)
    digest = await store.compose_digest(conn, REGIE.worker_id, REGIE.email)
    assert digest is not None
    taken = await conn.fetch("SELECT item_id FROM overdue_items WHERE digest_id = $1", digest)
    assert {r["item_id"] for r in taken} == kept
    counted = await conn.fetchval("SELECT overdue FROM digests WHERE digest_id = $1", digest)
    assert counted == len(kept)
    assert 0 < len(kept) < 16  # both answers occur


async def test_the_regie_role_sees_the_late_alerts_of_teams_without_an_active_lead(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        "INSERT INTO teams (team_id, name) VALUES ('a', 'A'), ('b', 'B'), ('c', 'C')"
    )
    await conn.execute(
        "INSERT INTO members (user_id, team_id, role, name, email, category, active) VALUES"
        " ('lead-a', 'a', 'team_lead', 'L', 'l@x.example', 'jgt', true),"
        " ('lead-b', 'b', 'team_lead', 'L', 'm@x.example', 'jgt', false),"
        " ('work-c', 'c', 'worker', 'W', 'w@x.example', 'jgt', true)"
    )
    active_leads = {"a": 1, "b": 0, "c": 0}
    late = {}
    for team in active_leads:
        match_id = await a_match(conn, team)
        alert = await an_alert(conn, match_id, ANNA)
        await store.mark_alert_escalated(conn, alert.alert_id, T0)
        late[team] = str(alert.alert_id)
    regies, _, _ = await store.overdue_overview(conn, None, 100)
    assert {a["alert_id"] for a in regies} == {
        late[t] for t, leads in active_leads.items() if regie_oversees(leads)
    }
    leads_a, _, _ = await store.overdue_overview(conn, ["a"], 100)
    assert {a["alert_id"] for a in leads_a} == {late["a"]}
