"""The one way to build a service process: broker, pool, outbox relay, health and metrics.

A service contributes its subscribers and HTTP routes; this module wires them into a
FastStream ASGI app with `/health/live`, `/health/ready` and `/metrics`, and orders
startup and graceful shutdown so no in-flight message or outbox row is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
from aiokafka import ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import ASGIApp, Scope
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.message import FAKE_CONSUMER
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shared.audit import AuditTrail
from shared.batch import ClaimedBefore, batch_transaction
from shared.contracts import Contract, Topics
from shared.db import create_pool, migration_files, pending_migrations
from shared.kafka import (
    DeadLetterSink,
    RelayProducer,
    RetryBackoff,
    check_reachable,
    create_broker,
    kafka_trust,
)
from shared.keystore import Kek, KeyStore
from shared.outbox import EVENT_TYPE_HEADER, OutboxRelay
from shared.settings import Settings
from shared.telemetry import configure_tracing

log = logging.getLogger(__name__)


BATCH_SIZES = Histogram(
    "vroegsignaal_consumer_batch_size",
    "Messages a consumer group took and applied in one transaction",
    ["group"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
BATCHES_APPLIED_ALONE = Counter(
    "vroegsignaal_consumer_batches_split_total",
    "Batches that failed and were applied again one message per transaction",
    ["group"],
)

UNKNOWN_EVENT_TYPES = Counter(
    "vroegsignaal_unknown_event_types_total",
    "Messages of an event type no handler of the topic takes (dead-lettered)",
    ["service", "type"],
)


@dataclass(frozen=True)
class _Route:
    """How one topic's messages reach their handlers: by the contract each names."""

    by_name: Mapping[str, tuple[type[Contract], Callable[[KafkaMessage, Any], Awaitable[None]]]]
    default: type[Contract] | None


Handle = Callable[[KafkaMessage], Awaitable[None]]


@dataclass
class _Group:
    """The topics one consumer group takes, and its consumer's options; `raw` when the
    service takes the group's messages as they come (intake: a partner's bytes are
    verified before anything is decoded)."""

    options: dict[str, Any]
    routes: dict[str, _Route] = field(default_factory=dict)
    raw: Handle | None = None


@dataclass
class ServiceRuntime:
    """Everything a service's handlers need, built once per process."""

    name: str
    settings: Settings
    broker: KafkaBroker
    topics: Topics
    registry: CollectorRegistry
    service_dir: Path
    audit: AuditTrail
    dead_letters: DeadLetterSink
    _pool: asyncpg.Pool | None = field(default=None, init=False)
    _keystore: KeyStore | None = field(default=None, init=False)
    relay: OutboxRelay | None = field(default=None, init=False)
    background: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = field(
        default_factory=list
    )
    starters: list[Callable[[], Coroutine[Any, Any, object]]] = field(default_factory=list)
    closers: list[Callable[[], Coroutine[Any, Any, object]]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, init=False)
    _groups: dict[str, _Group] = field(default_factory=dict, init=False)
    _subscribed: bool = field(default=False, init=False)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"{self.name}: the database pool is not open yet")
        return self._pool

    def consume(
        self,
        *topics: str,
        handlers: Mapping[type[Contract], Callable[[KafkaMessage, Any], Awaitable[None]]],
        default: type[Contract] | None = None,
        group: str | None = None,
        **options: Any,
    ) -> None:
        """The one way a service takes events: `handlers` take `topics` in the group
        `<service>[-group]`, from the earliest offset for a new group, acknowledged only
        after the handler returned (its transaction committed; an error is not
        acknowledged and comes again). A message goes to the handler of the contract its
        event-type header names on its own topic; one without the header to `default`
        (the topic's first contract); one of a type no handler of its topic takes is
        dead-lettered ('unknown-event-type', naming the types that are) and counted. A
        message that does not decode as its contract is dead-lettered by the decoder.
        Handlers are idempotent (they claim the event id), so a redelivery changes
        nothing.

        All of a group's topics are taken by one consumer (`subscribe`, at build): one
        member per process in each group, so a process that starts or stops rebalances
        its group once, not once per topic."""
        if default is not None and default not in handlers:
            raise ValueError(f"{self.name}: the default {default.__name__} has no handler")
        if self._subscribed:
            raise RuntimeError(f"{self.name}: consume() after the subscribers were built")
        group_id = f"{self.group_id}-{group}" if group else self.group_id
        taking = self._groups.setdefault(group_id, _Group(options))
        if taking.options != options:
            raise ValueError(f"{self.name}: group {group_id} is consumed with two sets of options")
        by_name = {contract.__name__: (contract, handle) for contract, handle in handlers.items()}
        for topic in topics:
            if topic in taking.routes:
                raise ValueError(f"{self.name}: {topic} is consumed twice in group {group_id}")
            taking.routes[topic] = _Route(by_name, default)

    def consume_raw(self, *topics: str, handle: Handle, **options: Any) -> None:
        """The service's own group takes `topics` with `handle`, each message as it came
        (no decoding, no routing by type); in batches like every group (`subscribe`)."""
        if self._subscribed:
            raise RuntimeError(f"{self.name}: consume_raw() after the subscribers were built")
        if self.group_id in self._groups:
            raise ValueError(f"{self.name}: group {self.group_id} is consumed twice")
        self._groups[self.group_id] = _Group(
            options, {topic: _Route({}, None) for topic in topics}, handle
        )

    def subscriptions(self) -> dict[str, list[str]]:
        """Each consumer group `consume` was given and the topics it takes."""
        return {group_id: list(taking.routes) for group_id, taking in self._groups.items()}

    def subscribe(self) -> None:
        """One subscriber per group, for every topic `consume` gave it, taking what Kafka
        has for it in batches (`consume_batch_size` records at most): a batch is applied
        in one transaction (shared.batch), its offsets committed after that; a batch that
        fails is applied again one message per transaction, each retried on its own and
        dead-lettered after its last try (`retry_max_attempts`)."""
        self._subscribed = True
        settings = self.settings
        for group_id, taking in self._groups.items():
            self.broker.subscriber(
                *taking.routes,
                group_id=group_id,
                ack_policy=AckPolicy.NACK_ON_ERROR,
                auto_offset_reset="earliest",
                batch=True,
                parser=_lenient_headers,
                **{
                    "max_records": settings.consume_batch_size,
                    "batch_timeout_ms": settings.consume_wait_ms,
                }
                | taking.options,
            )(self._batches(group_id, taking.raw or self._dispatcher(taking.routes)))

    def _batches(self, group_id: str, handle: Handle) -> Callable[[KafkaMessage], Awaitable[None]]:
        retry = RetryBackoff(
            group_id,
            base=self.settings.retry_base_seconds,
            max_attempts=self.settings.retry_max_attempts,
        )

        async def take(batch: KafkaMessage) -> None:
            records = batch.raw_message
            messages = [_single(r) for r in (records if isinstance(records, tuple) else (records,))]
            if not messages:
                return
            BATCH_SIZES.labels(group_id).observe(len(messages))
            if self._pool is not None:
                committed = None
                try:
                    async with batch_transaction(self._pool, deferred=True) as applied:
                        for message in messages:
                            with self._consuming(message, group_id):
                                await handle(message)
                    committed = applied
                except ClaimedBefore as redelivered:
                    BATCHES_APPLIED_ALONE.labels(group_id).inc()
                    log.info("%s: %s (delivered again); applying them one at a time",
                             group_id, redelivered)  # fmt: skip
                except Exception as exc:
                    BATCHES_APPLIED_ALONE.labels(group_id).inc()
                    log.warning("%s: a batch of %d messages failed (%s); applying them one "
                                "at a time", group_id, len(messages), type(exc).__name__,
                                exc_info=log.isEnabledFor(logging.DEBUG))  # fmt: skip
                if committed is not None:
                    # Outside the fallback: a job failing here (a dead letter that does
                    # not go) leaves the batch unacknowledged, to come again, its
                    # messages claimed: nothing is applied twice.
                    await committed.run_after_commit()
                    return
            for at, message in enumerate(messages):
                work = self._traced(message, group_id, handle)
                if not await retry.apply(message, work, self.dead_letters):
                    # Back to the failing message (and, per partition, to the first one
                    # not applied): the offsets committed now stop there.
                    _rewind(batch, messages[at:])
                    return

        return take

    def _traced(
        self, message: KafkaMessage, group_id: str, handle: Handle
    ) -> Callable[[], Awaitable[None]]:
        async def work() -> None:
            with self._consuming(message, group_id):
                await handle(message)

        return work

    def _consuming(
        self, message: KafkaMessage, group_id: str
    ) -> contextlib.AbstractContextManager[object]:
        """The span a message is processed in: in the trace its producer started (the
        outbox wrote the context into its headers). A message from outside (a partner's
        topic) starts a trace of its own, and its span names the topic and nothing that
        points at the message (shared.telemetry); its handler works in yet another."""
        record = message.raw_message
        assert not isinstance(record, tuple)
        about: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation": "process",
            "messaging.destination_publish.name": record.topic,
        }
        if self.topics.partner_id_of(record.topic) is not None:
            parent = Context()
        else:
            parent = extract(message.headers)
            # No key, no payload: keys are subject pseudonyms.
            about |= {
                "messaging.kafka.destination.partition": record.partition,
                "messaging.kafka.message.offset": record.offset,
                "messaging.consumer.group.name": group_id,
            }
        return trace.get_tracer("vroegsignaal").start_as_current_span(
            f"{record.topic} process",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes=about,
        )

    def _dispatcher(
        self, routes: Mapping[str, _Route]
    ) -> Callable[[KafkaMessage], Awaitable[None]]:
        async def dispatch(message: KafkaMessage) -> None:
            record = message.raw_message
            assert not isinstance(record, tuple)
            route = routes[record.topic]
            named = dict(record.headers or ()).get(EVENT_TYPE_HEADER)
            if not named and route.default is not None:
                contract = route.default
                handle = route.by_name[contract.__name__][1]
            elif (found := route.by_name.get((named or b"").decode(errors="replace"))) is not None:
                contract, handle = found
            else:
                kind = (named or b"").decode(errors="replace") or "untyped"
                UNKNOWN_EVENT_TYPES.labels(self.name, kind[:64]).inc()
                await self.dead_letters.send(
                    message,
                    "unknown-event-type",
                    f"no handler for event type {kind[:64]!r} on this topic: set the "
                    f"{EVENT_TYPE_HEADER} header to one of {', '.join(sorted(route.by_name))}",
                )
                return
            event = await self.dead_letters.decode(contract, message)
            if event is not None:
                await handle(message, event)

        return dispatch

    def every(
        self, interval: float, what: str, job: Callable[[], Coroutine[Any, Any, object]]
    ) -> None:
        """Run `job` in the background every `interval` seconds while the service runs."""
        self.background.append((what, lambda: periodic(job, interval, what)))

    def on_start(self, job: Callable[[], Coroutine[Any, Any, object]]) -> None:
        """Run `job` once the store is open, before the first message is taken."""
        self.starters.append(job)

    def on_close(self, job: Callable[[], Coroutine[Any, Any, object]]) -> None:
        """Run `job` at shutdown, after the subscribers and the outbox have drained."""
        self.closers.append(job)

    @property
    def keystore(self) -> KeyStore:
        if self._keystore is None:
            raise RuntimeError(f"{self.name}: this service has no key store access")
        return self._keystore

    @property
    def group_id(self) -> str:
        return f"{self.settings.topic_prefix}vroegsignaal-{self.name}"


Routes = Sequence[tuple[str, ASGIApp]]


async def periodic(
    job: Callable[[], Coroutine[Any, Any, object]], interval: float, what: str
) -> None:
    """Run `job` every `interval` seconds until cancelled; a failed run is logged and
    retried at the next interval, never fatal to the service."""
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying in %.0f s", what, interval)
        await asyncio.sleep(interval)


def build_service(
    name: str,
    service_dir: Path,
    settings: Settings,
    register: Callable[[ServiceRuntime], Routes],
    *,
    uses_keystore: bool = False,
) -> tuple[AsgiFastStream, ServiceRuntime]:
    """Build the ASGI app of service `name`; `register` adds subscribers, returns routes."""
    if uses_keystore:
        Kek.load(settings.kek_file)  # fail at start, with the fix, not at the first message
    tracer_provider = configure_tracing(name, settings.instance_id, settings.trace_file)
    registry = CollectorRegistry()
    broker, dead_letters = create_broker(
        settings, client_id=name, tracer_provider=tracer_provider, registry=registry
    )
    runtime = ServiceRuntime(
        name=name,
        settings=settings,
        broker=broker,
        topics=Topics(settings.topic_prefix),
        registry=registry,
        service_dir=service_dir,
        audit=AuditTrail(
            service=name,
            instance=settings.instance_id,
            topic=Topics(settings.topic_prefix).audit_of(name),
        ),
        dead_letters=dead_letters,
    )
    routes = register(runtime)
    runtime.subscribe()
    if settings.kafka_ca_file and settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        runtime.every(
            settings.kafka_ca_refresh_seconds,
            "re-reading the Kafka CA file",
            kafka_trust(settings.kafka_ca_file).watch,
        )

    async def open_store() -> None:
        # Kafka first: a start that fails here ends the process (to be started again);
        # the broker's own start, failing, would leave it hanging half-started.
        await check_reachable(settings)
        try:
            await open_database()
        except Exception as exc:
            failed_start("opening the database", exc)

    async def open_database() -> None:
        # Services never migrate (their role could not): `vroegsignaal migrate` does,
        # before they start. A schema behind this version's code is refused at start.
        pending = await pending_migrations(
            settings.database_url, name, migration_files(service_dir)
        )
        if pending:
            raise RuntimeError(
                f"{name}: the database is not migrated for this version ({', '.join(pending)} "
                "not applied): run 'vroegsignaal migrate' (as the migration role) first"
            )
        runtime._pool = await create_pool(
            settings.database_url, name, max_size=settings.db_pool_size
        )
        if uses_keystore:
            runtime._keystore = await KeyStore.open(settings)
        for job in runtime.starters:
            await job()

    async def start_relay() -> None:
        try:
            await start_jobs()
        except Exception as exc:
            failed_start("starting the outbox relay and the jobs", exc)

    async def start_jobs() -> None:
        await producer.start()
        runtime.relay = OutboxRelay(
            runtime.pool,
            producer,
            schema=name,
            batch_size=settings.outbox_batch_size,
            poll_seconds=settings.outbox_poll_seconds,
            refuse=lambda topic, key, payload, why: runtime.dead_letters.send_bytes(
                source=topic,
                key=key,
                value=payload,
                reason_code="outbox-unpublishable",
                reason=f"{name} wrote an event Kafka cannot take ({why}); it is "
                "dead-lettered so the events behind it go on: a developer must bound it",
            ),
        )
        await runtime.relay.start()
        runtime._tasks = [asyncio.create_task(job(), name=what) for what, job in runtime.background]
        started.set()

    started = asyncio.Event()
    producer = RelayProducer(settings, client_id=name)

    def failed_start(step: str, exc: Exception) -> NoReturn:
        """A start that fails once the broker runs cannot be unwound by the framework
        (its shutdown then hangs): the process ends at once, to be started again by
        whoever supervises it; nothing has been taken in yet that could be lost."""
        log.error("%s: the start failed while %s (%s); exiting to be started again",
                  name, step, exc)  # fmt: skip
        logging.shutdown()
        os._exit(3)

    # The stop's steps share one budget: the graceful timeout, counted from the first
    # step, so the drain never takes longer than it (docs/operator.md: the pod's grace
    # period covers the HTTP connections' close, then this).
    budget = ShutdownBudget(name, settings.graceful_timeout_seconds)
    bounded = budget.step

    async def drain() -> None:
        # A stop that comes while the service is still starting waits for the start to
        # finish: a subscriber stopped before it started would be restarted without a
        # consumer by FastStream's task supervisor, in a loop that never ends.
        await bounded("waiting for the start to finish", started.wait())
        if not started.is_set():
            # The start failed (Kafka or the database away): nothing runs yet, and what
            # it opened must close now, or its retrying connections keep the process
            # alive and it never exits to be restarted.
            for subscriber in broker.subscribers:
                await bounded(f"subscriber {subscriber}", subscriber.stop(), release=True)
            await bounded("closing the store", close_store(), release=True)
            log.error("%s: the start failed; stopping so that it is started again", name)
            return
        # Stop taking messages first (in-flight ones finish), then flush the outbox
        # while the producer is still open; the broker itself stops after this hook.
        for task in runtime._tasks:
            task.cancel()
        for task in runtime._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await bounded(f"background job {task.get_name()!r}", asyncio.shield(task))
        for subscriber in broker.subscribers:
            await bounded(f"subscriber {subscriber}", subscriber.stop())
        if runtime.relay is not None:
            await bounded("outbox relay", runtime.relay.stop(), release=True)
        await bounded("the outbox's producer", producer.stop(), release=True)
        log.info("%s: drained", name)

    closed = False

    async def close_store() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        for job in runtime.closers:
            await bounded(getattr(job, "__qualname__", "closer"), job(), release=True)
        if runtime._keystore is not None:
            await bounded("closing the key store", runtime._keystore.close(), release=True)
            runtime._keystore = None
        if runtime._pool is not None:
            pool, runtime._pool = runtime._pool, None
            await bounded("closing the database pool", pool.close(), release=True)
            if "closing the database pool" in budget.left:
                pool.terminate()

    @get(include_in_schema=False)
    async def live(scope: Scope) -> AsgiResponse:
        return AsgiResponse(b'{"status":"live"}', 200, {"content-type": "application/json"})

    @get(include_in_schema=False)
    async def ready(scope: Scope) -> AsgiResponse:
        # Ready only once every subscriber, the outbox relay and the jobs have started.
        problems = [] if started.is_set() else ["starting"]
        if not await broker.ping(timeout=2.0):
            problems.append("kafka")
        try:
            async with asyncio.timeout(2.0):
                await runtime.pool.fetchval("SELECT 1")
        except Exception:
            problems.append("database")
        if problems:
            body = ('{"status":"not-ready","failing":["' + '","'.join(problems) + '"]}').encode()
            return AsgiResponse(body, 503, {"content-type": "application/json"})
        return AsgiResponse(b'{"status":"ready"}', 200, {"content-type": "application/json"})

    @get(include_in_schema=False)
    async def metrics(scope: Scope) -> AsgiResponse:
        body = generate_latest(REGISTRY) + generate_latest(registry)
        return AsgiResponse(body, 200, {"content-type": CONTENT_TYPE_LATEST})

    app = AsgiFastStream(
        broker,
        asgi_routes=[
            ("/health/live", live),
            ("/health/ready", ready),
            ("/metrics", metrics),
            *routes,
        ],
        on_startup=[open_store],
        after_startup=[start_relay],
        on_shutdown=[drain],
        after_shutdown=[close_store],
    )
    return app, runtime


def _rewind(batch: KafkaMessage, left: list[KafkaMessage]) -> None:
    """Make the consumer fetch `left` again: each partition back to its first one."""
    first: dict[TopicPartition, int] = {}
    for message in left:
        record = message.raw_message
        assert not isinstance(record, tuple)
        partition = TopicPartition(record.topic, record.partition)
        first[partition] = min(first.get(partition, record.offset), record.offset)
    for partition, offset in first.items():
        batch.consumer.seek(partition, offset)


def _single(record: ConsumerRecord) -> KafkaMessage:
    """One record of a batch as the message its handler takes."""
    headers = {k: bytes(v or b"").decode(errors="replace") for k, v in record.headers or ()}
    return KafkaMessage(
        raw_message=record,
        body=record.value or b"",
        headers=headers,
        content_type=headers.get("content-type"),
        message_id=f"{record.offset}-{record.timestamp}",
        # The records' offsets are committed with their batch, not one by one.
        consumer=FAKE_CONSUMER,
    )


async def _lenient_headers(
    records: tuple[ConsumerRecord, ...], parse: Callable[[Any], Awaitable[Any]]
) -> Any:
    """FastStream's batch parser reads every header as UTF-8 and fails the whole batch on
    one that is not (or is null), which would then be lost: such a header is read with
    the undecodable bytes replaced (a null as empty), and its message refused by its
    handler (an unknown event type, a signature that is no base64), alone."""

    def readable(record: ConsumerRecord) -> ConsumerRecord:
        try:
            for _, value in record.headers or ():
                bytes(value).decode()  # a null header value (None) fails too
        except (UnicodeDecodeError, TypeError):
            return dataclasses.replace(
                record,
                headers=[
                    (k, bytes(v or b"").decode(errors="replace").encode())
                    for k, v in record.headers
                ],
            )
        return record

    return await parse(tuple(readable(r) for r in records))


class ShutdownBudget:
    """One time budget for all of a stop's steps, counted from the first. The steps that
    wait (for the start, in-flight messages, background jobs) share it but the last
    `reserve` seconds, which are kept for the steps that release (the outbox relay's
    flush and its connection, the producer, the pools): a release always runs, at least
    `RELEASE_FLOOR` seconds even when everything before overran, or the process would
    hang on what it still holds. A step that overruns is logged by name and left, and a
    waiting step that finds nothing left is not begun, so the process still ends within
    the budget and a little (what it left undone is safe: an uncommitted message is
    delivered again, an outbox row relayed at the next start)."""

    RELEASE_FLOOR = 0.5

    def __init__(self, name: str, seconds: float, reserve: float | None = None) -> None:
        self.name = name
        self.seconds = seconds
        self.reserve = min(5.0, seconds / 3) if reserve is None else reserve
        self._start: float | None = None
        self.left: list[str] = []

    async def step(self, step: str, work: Awaitable[object], *, release: bool = False) -> None:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        end = self._start + self.seconds - (0.0 if release else self.reserve)
        remaining = end - loop.time()
        if release:
            remaining = max(remaining, self.RELEASE_FLOOR)
        if remaining <= 0:
            if asyncio.iscoroutine(work):
                work.close()
            self.left.append(step)
            log.error("%s: shutdown step %r not begun: the %.0f s for stopping are spent",
                      self.name, step, self.seconds)  # fmt: skip
            return
        try:
            await asyncio.wait_for(work, timeout=remaining)
        except TimeoutError:
            self.left.append(step)
            log.error("%s: shutdown step %r overran the %.0f s for stopping; left",
                      self.name, step, self.seconds)  # fmt: skip
        except Exception:
            log.exception("%s: shutdown step %r failed", self.name, step)


def json_response(data: Any, status: int = 200) -> AsgiResponse:
    import json

    return AsgiResponse(
        json.dumps(data, default=str).encode(), status, {"content-type": "application/json"}
    )
