"""What every command group shares: one way to fail, one way to act as an operator."""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Awaitable, Callable
from typing import Any

from shared.audit import AuditTrail
from shared.contracts import (
    AuditActor,
    Topics,
)
from shared.settings import Settings
from vroegsignaal.console import fail

Change = Callable[[Any, AuditTrail, AuditActor], Awaitable[Any]]


def as_operator(service: str, role: str, change: Change) -> Any:
    """Run one operator action on a service's schema in one transaction, with its audit
    event in that service's outbox (its relay publishes it): who did it is the operator,
    `VS_OPERATOR` or the login name."""
    from services.notification.roster import RosterError
    from shared.db import DatabaseUnavailableError, create_pool

    settings = Settings()
    operator = os.environ.get("VS_OPERATOR") or getpass.getuser()
    trail = AuditTrail(
        service=service, instance="cli", topic=Topics(settings.topic_prefix).audit_of(service)
    )
    who = AuditActor(actor_id=operator, role=role)

    async def _run() -> Any:
        pool = await create_pool(settings.database_url, service, max_size=1)
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await change(conn, trail, who)
        finally:
            await pool.close()

    try:
        return asyncio.run(_run())
    except (RosterError, DatabaseUnavailableError) as exc:
        raise fail(str(exc)) from None
