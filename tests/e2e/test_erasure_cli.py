"""The privacy officer decides erasure requests with `vroegsignaal erasure`, through the
audit service's API with the officer's own token: lists, refuses (with a reason),
approves; a token without the role, or none, decides nothing; every step is in the log
under the name the token carries."""

from __future__ import annotations

import json

import asyncpg
import pytest

from services.audit import erasures, store
from shared.audit import AuditTrail
from shared.auth import Role
from shared.contracts import Topics
from shared.db import create_pool
from shared.settings import Settings
from shared.unit_of_work import PostgresUnitOfWork
from tests.conftest import eventually, run_cli, token_for
from tests.factories import erasure_review

pytestmark = pytest.mark.e2e


async def test_the_privacy_officer_lists_refuses_and_approves_with_the_cli(
    settings: Settings, services: dict[str, str]
) -> None:
    topics = Topics(settings.topic_prefix)
    first, second = erasure_review("d" * 64), erasure_review("e" * 64)
    pool = await create_pool(settings.database_url, "audit")
    try:
        async with pool.acquire() as conn:
            trail = AuditTrail(service="audit", instance="t1", topic=topics.audit_of("audit"))
            uow = PostgresUnitOfWork(conn, store.PostgresRepository(conn), trail, store.CONSUMER)
            for review in (first, second):
                async with conn.transaction():
                    await erasures.receive(uow, review)
    finally:
        await pool.close()

    def officer(user: str) -> dict[str, str]:
        token = token_for(settings, user, Role.PRIVACY_OFFICER)
        return {"VS_TOKEN": token, "VS_AUDIT_URL": services["audit"]}

    async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
        return await run_cli(settings, "erasure", *args, env=env)

    status, out, err = await cli("list", env=officer("fg-mira"))
    assert status == 0, err
    assert {r["request_id"] for r in json.loads(out)} == {
        str(first.request_id),
        str(second.request_id),
    }
    # Not the officer: refused by the service, whatever the command line says.
    worker = {
        "VS_TOKEN": token_for(settings, "juf-anouk", Role.WORKER),
        "VS_AUDIT_URL": services["audit"],
    }
    status, out, err = await cli("approve", str(second.request_id), env=worker)
    assert status == 1 and "refused (403)" in err
    status, out, err = await cli("approve", str(second.request_id), env={**worker, "VS_TOKEN": "x"})
    assert status == 1 and "refused (401)" in err
    status, out, err = await cli("refuse", str(first.request_id), env=officer("fg-mira"))
    assert status != 0 and "--reason" in err  # a refusal without a reason is no decision
    status, out, err = await cli(
        "refuse", str(first.request_id), "--reason", "de school heeft een wettelijke bewaarplicht",
        env=officer("fg-mira"),
    )  # fmt: skip
    assert status == 0, err
    assert json.loads(out)["status"] == "refused"
    status, out, err = await cli("approve", str(first.request_id), env=officer("fg-mira"))
    assert status == 1 and "already refused by fg-mira" in err
    status, out, err = await cli("approve", str(second.request_id), env=officer("fg-joost"))
    assert status == 0, err
    status, out, err = await cli("list", env=officer("fg-mira"))
    assert json.loads(out) == []
    status, out, err = await cli("list", "--decided", env=officer("fg-mira"))
    decided = {r["request_id"]: (r["status"], r["decided_by"]) for r in json.loads(out)}
    assert decided == {
        str(first.request_id): ("refused", "fg-mira"),
        str(second.request_id): ("approved", "fg-joost"),
    }

    # In the log: each decision under the token's name, the refused attempts too.
    conn = await asyncpg.connect(settings.database_url)
    try:

        async def logged() -> list[tuple[str, str, str]]:
            rows = await conn.fetch(
                "SELECT action, outcome, actor_id FROM audit.entries WHERE source_system ="
                " 'audit' AND object_type IN ('erasure-request', 'audit-request')"
                " AND actor_id <> 'audit'"
            )
            return [(r["action"], r["outcome"], r["actor_id"]) for r in rows]

        async def complete() -> list[tuple[str, str, str]] | None:
            found = await logged()
            return found if ("delete", "success", "fg-joost") in found else None

        steps = await eventually(complete, timeout=30)
        assert ("update", "denied", "fg-mira") in steps  # the refusal
        assert steps.count(("read", "success", "fg-mira")) == 3  # three lists
        assert ("update", "denied", "juf-anouk") in steps  # her refused attempt
    finally:
        await conn.close()
