"""The transactional outbox: events written in the same transaction as the state change,
published to Kafka afterwards by a relay, so a change and its events can never diverge.

The trace context active when the event was written travels with it, so the publish
span of the relay joins the trace of the message that caused the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from asyncpg.pool import PoolConnectionProxy
from opentelemetry import context as otel_context
from opentelemetry.propagate import extract, inject
from prometheus_client import Counter, Gauge

from shared.batch import current as current_batch
from shared.contracts import Contract, partition_key
from shared.db import Conn

log = logging.getLogger(__name__)

OUTBOX_PUBLISHED = Counter(
    "vroegsignaal_outbox_published_total", "Events relayed from the outbox", ["service"]
)
OUTBOX_FAILURES = Counter(
    "vroegsignaal_outbox_publish_failures_total", "Failed outbox relay attempts", ["service"]
)
# Too large for the producer's request, or for the broker's limit: never publishable.
_TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)

OUTBOX_REFUSED = Counter(
    "vroegsignaal_outbox_refused_total",
    "Outbox rows Kafka can never take (too large), dead-lettered instead",
    ["service"],
)
OUTBOX_PENDING = Gauge(
    "vroegsignaal_outbox_pending",
    "Events waiting in the outbox at the last relay pass",
    ["service"],
)


EVENT_TYPE_HEADER = "vs-event-type"


def channel_for(schema: str) -> str:
    return f"outbox_{schema}"


async def enqueue(conn: Conn, topic: str, event: Contract, *, traced: bool = True) -> None:
    """Write `event` to the outbox within the caller's transaction. `traced=False` for an
    event that must not share a trace with anything about a person. Within a batch of
    messages (shared.batch) the rows are kept, in order, and written together just
    before the batch commits."""
    # The event type travels as a header, so a topic can carry several contracts.
    headers: dict[str, str] = {EVENT_TYPE_HEADER: type(event).__name__}
    if traced:
        inject(headers)
    row = (topic, partition_key(event), event.to_bytes(), json.dumps(headers))
    batch = current_batch()
    if batch is not None and batch.joins(conn):
        batch.keep("outbox", lambda rows: _flush(conn, rows)).append(row)
    else:
        await _flush(conn, [row])


async def _flush(conn: Conn, rows: list[tuple[str, bytes | None, bytes, str]]) -> None:
    """Insert `rows` in their order (ids ascend with it) and wake the relay once."""
    if len(rows) == 1:
        await conn.execute(
            "INSERT INTO outbox (topic, key, payload, headers) VALUES ($1, $2, $3, $4::jsonb)",
            *rows[0],
        )
    else:
        await conn.execute(
            "INSERT INTO outbox (topic, key, payload, headers)"
            " SELECT t, k, p, h::jsonb FROM unnest($1::text[], $2::bytea[], $3::bytea[],"
            " $4::text[]) WITH ORDINALITY AS r(t, k, p, h, n) ORDER BY n",
            *zip(*rows, strict=True),
        )
    await conn.execute("SELECT pg_notify('outbox_' || current_schema(), '')")


class Publisher(Protocol):
    async def publish(
        self,
        message: Any,
        topic: str,
        *,
        key: bytes | None,
        headers: dict[str, str],
        no_confirm: bool,
    ) -> Any: ...


# Where a row goes that Kafka can never take (larger than the producer's request size):
# (topic, key, payload, why).
Refuse = Callable[[str, bytes | None, bytes, str], Awaitable[object]]


class OutboxRelay:
    """Publishes outbox rows in order and deletes them once the broker acknowledged them
    (a batch at a time, up to `batch_size`, all in flight together). A row Kafka can
    never take goes to `refuse` (the dead-letter topic) and is deleted with the rest."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        *,
        schema: str,
        batch_size: int,
        poll_seconds: float,
        refuse: Refuse | None = None,
    ) -> None:
        self._refuse = refuse
        self._pool = pool
        self._publisher = publisher
        self._schema = schema
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: PoolConnectionProxy | None = None

    async def start(self) -> None:
        conn = await self._pool.acquire()
        self._listener = conn
        await conn.add_listener(channel_for(self._schema), self._on_notify)
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._schema}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        # Publish what is left, so a graceful stop leaves nothing waiting; the listening
        # connection goes back to the pool whatever happens (or closing it would wait).
        try:
            while await self.relay_once():
                pass
        except Exception:
            log.exception("outbox flush at shutdown failed; rows stay for the next start")
        finally:
            if self._listener is not None:
                listener, self._listener = self._listener, None
                with contextlib.suppress(Exception):
                    await listener.remove_listener(channel_for(self._schema), self._on_notify)
                await self._pool.release(listener)

    async def _count_pending(self) -> None:
        """What waits, after a pass that failed before counting it (Kafka away, a login
        refused): the alert on an outbox that does not drain reads it."""
        try:
            OUTBOX_PENDING.labels(self._schema).set(
                await self._pool.fetchval("SELECT count(*) FROM outbox")
            )
        except Exception:
            log.warning("outbox: could not count what waits", exc_info=True)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                while await self.relay_once():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                OUTBOX_FAILURES.labels(self._schema).inc()
                log.exception("outbox relay pass failed; retrying")
                await self._count_pending()
                await asyncio.sleep(self._poll_seconds)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_seconds)
            except TimeoutError:
                pass

    async def _publish(self, row: Any, key: bytes | None, headers: dict[str, str]) -> Any:
        return await self._publisher.publish(
            bytes(row["payload"]),
            row["topic"],
            key=key,
            # A publisher with tracing (FastStream's broker) makes its publish span a
            # child of the stored context, attached by the caller.
            headers={"content-type": "application/json", **headers},
            no_confirm=True,
        )

    async def _refused(self, row: Any, key: bytes | None, exc: Exception) -> None:
        """A row Kafka can never take: dead-lettered, so the rows behind it go on."""
        if self._refuse is None:
            raise exc
        OUTBOX_REFUSED.labels(self._schema).inc()
        await self._refuse(row["topic"], key, bytes(row["payload"]), str(exc))

    async def relay_once(self) -> int:
        """Publish one batch; return how many rows were done with (published or refused)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, topic, key, payload, headers FROM outbox"
                " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch_size,
            )
            # Handed to the producer in order, acknowledged together: the producer is
            # idempotent, so a key's events stay in order on their partition.
            sent: list[tuple[Any, bytes | None, asyncio.Future[Any] | None]] = []
            for row in rows:
                headers: dict[str, str] = json.loads(row["headers"])
                key = bytes(row["key"]) if row["key"] is not None else None
                token = otel_context.attach(extract(headers))
                try:
                    sent.append((row, key, await self._publish(row, key, headers)))
                except _TOO_LARGE as exc:
                    await self._refused(row, key, exc)
                    sent.append((row, key, None))
                finally:
                    otel_context.detach(token)
            # Done: the rows up to the first that Kafka did not take (one it can never
            # take is dead-lettered); that one and those after it go again next pass.
            done = []
            for at, (row, key, future) in enumerate(sent):
                if future is not None:
                    try:
                        await future
                    except _TOO_LARGE as exc:
                        await self._refused(row, key, exc)
                    except Exception:
                        OUTBOX_FAILURES.labels(self._schema).inc()
                        log.exception("outbox: Kafka did not take an event; it goes again")
                        # Those behind it are awaited too (and go again with it).
                        await asyncio.gather(
                            *(f for _, _, f in sent[at + 1 :] if f is not None),
                            return_exceptions=True,
                        )
                        break
                done.append(row["id"])
            if done:
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", done)
                OUTBOX_PUBLISHED.labels(self._schema).inc(len(done))
            OUTBOX_PENDING.labels(self._schema).set(
                await conn.fetchval("SELECT count(*) FROM outbox")
            )
            return len(done)
