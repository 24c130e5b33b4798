"""A batch of messages applied in one transaction.

A consumer takes what Kafka has for it (up to `consume_batch_size` records) and applies
them one after the other, in their order, on one connection in one transaction: each
message's unit of work joins that transaction instead of opening its own. What a
message's work leaves to do at the end (the outbox rows, the audit service's leaves) is
written at once just before the commit (`before_commit`); what must wait for the commit
(a dead letter) runs after it (`after_commit`). The offsets are
committed after that, so delivery stays at least once. Every message is still claimed
by its id, all of a batch's claims in one statement before the commit: a claim is taken
for new at first, and when one of them was applied before (a batch delivered again) the
whole batch rolls back and its messages go one at a time, each claim answered then.

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

    async def run_after_commit(self) -> None:
        """Run the jobs left for after the commit, in order; each once."""
        while self.after_commit:
            await self.after_commit.pop(0)()

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
async def batch_transaction(pool: asyncpg.Pool, *, deferred: bool = False) -> AsyncIterator[Batch]:
    """One transaction for the messages applied inside this block; committed, with its
    `before_commit` flushes, when the block ends normally; then its `after_commit` jobs,
    in order (left to the caller's `run_after_commit` when `deferred`: a job that fails
    then is told apart from a batch that failed). An error before the commit rolls all
    of it back and runs none of them."""
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
    if not deferred:
        await batch.run_after_commit()


class ClaimedBefore(RuntimeError):
    """A message of the batch was applied before (a redelivery): the batch is rolled back
    and its messages applied one at a time, where each claim is answered on its own."""


async def claim_all(conn: Conn, consumer: str, message_ids: list[Any]) -> None:
    """Claim a batch's messages in one statement, or ClaimedBefore when any was claimed
    before (the batch then rolls back: nothing it did is kept)."""
    claimed = await conn.fetchval(
        "WITH new AS (INSERT INTO processed_messages (consumer, message_id)"
        " SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING RETURNING 1)"
        " SELECT count(*) FROM new",
        consumer,
        message_ids,
    )
    if claimed != len(message_ids):
        raise ClaimedBefore(
            f"{len(message_ids) - claimed} of the batch's {len(message_ids)} messages were "
            "applied before"
        )


async def after_commit(job: Job) -> None:
    """Run `job` once the running message's work is committed: at the end of its batch,
    or now when it is applied on its own (its unit of work has committed already)."""
    batch = current()
    if batch is None:
        await job()
    else:
        batch.after_commit.append(job)
