"""A batch of messages applied in one transaction.

A consumer takes what Kafka has for it (up to `consume_batch_size` records) and applies
them one after the other, in their order, on one connection in one transaction: each
message's unit of work joins that transaction instead of opening its own. What a
message's work leaves to do at the end (the outbox rows, the audit service's leaves) is
written at once just before the commit (`before_commit`); what must wait for the commit
(a dead letter, a key shredded) runs after it (`after_commit`). The offsets are
committed after that, so delivery stays at least once, and every message is still
claimed by its id, so a batch delivered again changes nothing.

Any failure rolls the whole batch back; the consumer then applies its messages one per
transaction (see `shared.service`), so a message that always fails is retried and
dead-lettered alone, and the others commit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from shared.db import Conn

Job = Callable[[], Awaitable[object]]


@dataclass
class Batch:
    """The transaction a batch of messages shares, and what waits for its end."""

    pool: asyncpg.Pool
    conn: Conn
    # Keyed, so each kind of flush is registered once per batch, in first-use order.
    before_commit: dict[str, Job] = field(default_factory=dict)
    after_commit: list[Job] = field(default_factory=list)
    _kept: dict[str, list[Any]] = field(default_factory=dict)

    def keep(self, name: str, flush: Callable[[list[Any]], Awaitable[object]]) -> list[Any]:
        """The list in which this batch keeps `name`'s rows; `flush(rows)` writes them all
        just before the commit."""
        if name not in self._kept:
            self._kept[name] = []
            self.before_commit[name] = lambda: flush(self._kept.pop(name))
        return self._kept[name]

    def joins(self, conn: Conn) -> bool:
        """Whether work on `conn` is work in this batch's transaction."""
        return conn is self.conn


_current: ContextVar[Batch | None] = ContextVar("vroegsignaal_batch", default=None)


def current() -> Batch | None:
    """The batch the running message belongs to, or None outside one."""
    return _current.get()


@asynccontextmanager
async def batch_transaction(pool: asyncpg.Pool) -> AsyncIterator[Batch]:
    """One transaction for the messages applied inside this block; committed, with its
    `before_commit` flushes, when the block ends normally; then its `after_commit` jobs,
    in order. An error anywhere rolls all of it back and runs none of them."""
    async with pool.acquire() as conn:
        batch = Batch(pool, conn)
        token = _current.set(batch)
        try:
            async with conn.transaction():
                yield batch
                # A flush may register another (one that writes outbox rows): run until
                # none is left.
                while batch.before_commit:
                    key = next(iter(batch.before_commit))
                    await batch.before_commit.pop(key)()
        finally:
            _current.reset(token)
    for job in batch.after_commit:
        await job()


async def after_commit(job: Job) -> None:
    """Run `job` once the running message's work is committed: at the end of its batch,
    or now when it is applied on its own (its unit of work has committed already)."""
    batch = current()
    if batch is None:
        await job()
    else:
        batch.after_commit.append(job)
