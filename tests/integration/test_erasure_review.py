"""Erasing a subject as a whole is the privacy officer's decision, against the real
PostgreSQL: a review is listed once however often it arrives; a refusal needs a reason
that names no one and sends nothing; an approval sends the erasure to matching through
the audit service's outbox; a request is decided once, and its decision is never changed,
not even by the audit service's own database role."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg
import pytest

from services.audit import erasures, store
from shared.audit import AuditTrail
from shared.contracts import AuditActor, SubjectErasureApproved, Topics
from shared.db import create_pool, migrate, migration_files
from shared.dbroles import SERVICE_ROLES, role_url
from shared.settings import Settings
from shared.unit_of_work import PostgresUnitOfWork
from tests.factories import erasure_review
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.integration

AUDIT_DIR = Path(__file__).resolve().parents[2] / "services" / "audit"
OFFICER = AuditActor(actor_id="fg-mira", role="privacy_officer")


async def outbox(conn: asyncpg.Connection) -> list[tuple[str, dict[str, object]]]:
    rows = await conn.fetch("SELECT topic, payload, headers FROM audit.outbox ORDER BY id")
    return [(r["topic"], json.loads(r["payload"])) for r in rows]


@pytest.fixture
async def audit_db(settings: Settings, secrets: Secrets) -> asyncpg.Pool:
    await migrate(settings.database_url, "audit", migration_files(AUDIT_DIR))
    login = role_url(
        settings.database_url,
        SERVICE_ROLES["audit"],
        secrets.database_passwords()[SERVICE_ROLES["audit"]],
    )
    # As the audit service logs in: its own role, not the owner.
    pool = await create_pool(login, "audit")
    yield pool
    await pool.close()


async def test_a_refusal_needs_a_reason_and_sends_nothing_an_approval_sends_the_erasure(
    settings: Settings, audit_db: asyncpg.Pool
) -> None:
    topics = Topics(settings.topic_prefix)
    trail = AuditTrail(service="audit", instance="t1", topic=topics.audit_of("audit"))
    refused_one, approved_one = erasure_review("a" * 64), erasure_review("b" * 64)
    async with audit_db.acquire() as conn:
        uow = PostgresUnitOfWork(conn, store.PostgresRepository(conn), trail, store.CONSUMER)

        async def decide(
            request_id: uuid.UUID, approve: bool, reason: str = "", who: AuditActor = OFFICER
        ) -> store.ErasureReview:
            async with conn.transaction():
                return await erasures.decide(
                    uow, topics, request_id, approve=approve, who=who, reason=reason
                )

        # Redelivered, or asked again by the same partner while pending: listed once.
        again = erasure_review("a" * 64)
        for review in (refused_one, refused_one, again, approved_one):
            async with conn.transaction():
                await erasures.receive(uow, review)
        pending = await store.reviews(conn, pending=True)
        assert {r.request_id for r in pending} == {refused_one.request_id, approved_one.request_id}
        listed = [p for topic, p in await outbox(conn) if topic == topics.audit_of("audit")]
        assert [p["outcome"] for p in listed] == ["success", "failed", "success"]
        assert all(p["object_type"] == "erasure-request" for p in listed)

        for reason, why in (
            ("", "needs a reason"),
            ("moeder belde: 0612345678", "no long numbers"),
            ("zie mail van iemand@voorbeeldrade.example", "no e-mail"),
        ):
            with pytest.raises(erasures.DecisionError, match=why) as caught:
                await decide(refused_one.request_id, False, reason)
            assert caught.value.status == 400
        with pytest.raises(erasures.DecisionError) as unknown:
            await decide(uuid.uuid4(), True)
        assert unknown.value.status == 404

        before = len(await outbox(conn))
        decided = await decide(refused_one.request_id, False, "lopend onderzoek van Veilig Thuis")
        assert (decided.approved, decided.decided_by) == (False, "fg-mira")
        sent = (await outbox(conn))[before:]
        # Only the log's entry: nothing goes to matching on a refusal.
        assert [topic for topic, _ in sent] == [topics.audit_of("audit")]
        assert sent[0][1]["outcome"] == "denied"
        assert "lopend onderzoek" not in json.dumps(sent[0][1])  # the reason stays here

        # Decided once: neither a second refusal nor an approval changes it.
        with pytest.raises(erasures.DecisionError, match="already refused by fg-mira") as twice:
            await decide(refused_one.request_id, True)
        assert twice.value.status == 409

        await decide(
            approved_one.request_id,
            True,
            who=AuditActor(actor_id="fg-joost", role="privacy_officer"),
        )
        (approval,) = [p for topic, p in await outbox(conn) if topic == topics.erasures_approved]
        event = SubjectErasureApproved.model_validate(approval)
        assert (event.subject, event.request_id, event.approved_by) == (
            "b" * 64,
            approved_one.request_id,
            "fg-joost",
        )
        assert await store.reviews(conn, pending=True) == []

        # Not even the audit service's own role may change or remove a decision.
        for attempt in (
            "UPDATE erasure_decisions SET approved = true",
            "DELETE FROM erasure_decisions",
            "UPDATE erasure_reviews SET subject = 'c'",
            "DELETE FROM erasure_reviews",
            "TRUNCATE erasure_decisions",
            "ALTER TABLE erasure_decisions DISABLE TRIGGER USER",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(attempt)
