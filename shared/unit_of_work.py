"""The unit of work every service's use cases take: its repository, the outbox, the
audit trail and the claim of the message that caused the change, in one transaction.
On PostgreSQL they commit together or not at all; in memory (the replay, the use-case
tests) what was published and recorded is kept in order."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, Protocol, TypeVar

import asyncpg

from shared.audit import AuditTrail
from shared.batch import claim_all
from shared.batch import current as current_batch
from shared.contracts import AuditAction, AuditActor, AuditOutcome, Contract
from shared.db import Conn, claim_message
from shared.outbox import enqueue

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class UnitOfWork(Protocol[R_co]):
    @property
    def repo(self) -> R_co: ...

    async def claim(self, message_id: uuid.UUID) -> bool:
        """Record that this message is being processed; False when it was before."""

    async def publish(self, topic: str, event: Contract, *, traced: bool = True) -> None:
        """An event to publish once the unit of work commits; `traced=False` for one
        that must share no trace with anything about a person."""

    async def record(
        self,
        *,
        action: AuditAction,
        object_type: str,
        purpose: str,
        object_id: str | None = None,
        subjects: list[str] | None = None,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
        actor: AuditActor | None = None,
        on_behalf_of: str | None = None,
    ) -> None:
        """An audit entry, written with the change it describes."""


class PostgresUnitOfWork(Generic[R]):
    """A unit of work on one PostgreSQL transaction (the outbox and the processed
    messages live in the service's schema)."""

    def __init__(self, conn: Conn, repo: R, audit: AuditTrail, consumer: str) -> None:
        self.conn = conn
        self.repo = repo
        self._audit = audit
        self._consumer = consumer

    async def claim(self, message_id: uuid.UUID) -> bool:
        batch = current_batch()
        if batch is None or not batch.joins(self.conn):
            return await claim_message(self.conn, self._consumer, message_id)
        # In a batch: claimed together before it commits (shared.batch.claim_all); one
        # applied before fails the batch there, and its messages go one at a time.
        claims = batch.keep(
            f"claims:{self._consumer}", partial(claim_all, self.conn, self._consumer)
        )
        if message_id in claims:
            return False
        claims.append(message_id)
        return True

    async def publish(self, topic: str, event: Contract, *, traced: bool = True) -> None:
        await enqueue(self.conn, topic, event, traced=traced)

    async def record(
        self,
        *,
        action: AuditAction,
        object_type: str,
        purpose: str,
        object_id: str | None = None,
        subjects: list[str] | None = None,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
        actor: AuditActor | None = None,
        on_behalf_of: str | None = None,
    ) -> None:
        await self._audit.record(
            self.conn,
            action=action,
            object_type=object_type,
            purpose=purpose,
            object_id=object_id,
            subjects=subjects,
            outcome=outcome,
            actor=actor,
            on_behalf_of=on_behalf_of,
        )


def postgres_units(
    pool: Callable[[], asyncpg.Pool],
    repository: Callable[[Conn], R],
    audit: AuditTrail,
    consumer: str,
) -> Callable[[], AbstractAsyncContextManager[PostgresUnitOfWork[R]]]:
    """A factory of units of work: each a transaction on a pooled connection, committed
    when its block ends normally, or within the transaction of the batch of messages
    being applied (shared.batch). `pool` is called late: the pool opens at start."""

    @asynccontextmanager
    async def unit() -> AsyncIterator[PostgresUnitOfWork[R]]:
        joined = current_batch()
        if joined is not None and joined.pool is pool():
            # A message of a batch: its work joins the batch's one transaction (see
            # shared.batch), which commits it with the others or rolls all of it back.
            yield PostgresUnitOfWork(joined.conn, repository(joined.conn), audit, consumer)
            return
        async with pool().acquire() as conn, conn.transaction():
            yield PostgresUnitOfWork(conn, repository(conn), audit, consumer)

    return unit


@dataclass(frozen=True)
class Recorded:
    """An audit entry as the in-memory unit of work keeps it."""

    action: AuditAction
    object_type: str
    purpose: str
    object_id: str | None
    subjects: list[str]
    outcome: AuditOutcome
    actor: AuditActor | None = None
    on_behalf_of: str | None = None


@dataclass
class InMemoryUnitOfWork(Generic[R]):
    """A unit of work in memory. Nothing is rolled back: a use case that fails ends the
    replay or the test."""

    repo: R
    published: list[tuple[str, Contract]] = field(default_factory=list)
    recorded: list[Recorded] = field(default_factory=list)
    claimed: set[uuid.UUID] = field(default_factory=set)
    untraced: list[Contract] = field(default_factory=list)  # published with traced=False

    async def claim(self, message_id: uuid.UUID) -> bool:
        if message_id in self.claimed:
            return False
        self.claimed.add(message_id)
        return True

    async def publish(self, topic: str, event: Contract, *, traced: bool = True) -> None:
        self.published.append((topic, event))
        if not traced:
            self.untraced.append(event)

    async def record(
        self,
        *,
        action: AuditAction,
        object_type: str,
        purpose: str,
        object_id: str | None = None,
        subjects: list[str] | None = None,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
        actor: AuditActor | None = None,
        on_behalf_of: str | None = None,
    ) -> None:
        self.recorded.append(
            Recorded(
                action,
                object_type,
                purpose,
                object_id,
                subjects or [],
                outcome,
                actor,
                on_behalf_of,
            )
        )
