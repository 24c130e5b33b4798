"""Kafka plumbing: the one broker factory, topic creation and the dead-letter sink."""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.security import BaseSecurity, SASLScram512
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.batch import after_commit
from shared.contracts import C, ContractError, DeadLetter, Topics, decode
from shared.deadletter import DeadLetterKey
from shared.settings import Settings
from shared.telemetry import KeylessKafkaTelemetryMiddleware

log = logging.getLogger(__name__)

DEAD_LETTERS = Counter(
    "vroegsignaal_dead_letters_total",
    "Messages sent to the dead-letter topic",
    ["consumer", "reason_code"],
)


HANDLER_FAILURES = Counter(
    "vroegsignaal_handler_failures_total",
    "Messages whose processing failed and will be redelivered",
    ["consumer"],
)
CA_EXPIRY = Gauge(
    "vroegsignaal_kafka_ca_expiry_timestamp_seconds",
    "When the last of the Kafka CA certificates this process trusts expires (its CA file "
    "is read again every minute)",
)


class RetryBackoff:
    """Retries of a message whose processing failed: paused, bounded, never a blocked
    partition.

    Used when a batch failed and its messages are applied one at a time
    (ServiceRuntime). A message that fails is paused for, and the consumer goes back to
    it (it is fetched again: the consumer keeps polling, and a stop is not held up);
    each consecutive failure of the same message doubles the pause up to `cap`; after
    `max_attempts` it goes to the dead-letter topic (`processing-failed`) and the
    partition moves on."""

    def __init__(
        self, consumer: str, *, base: float = 0.2, cap: float = 5.0, max_attempts: int = 8
    ) -> None:
        self.consumer = consumer
        self.base = base
        self.cap = cap
        self.max_attempts = max_attempts
        # Only the messages failing now are remembered, so this stays small.
        self._attempts: dict[tuple[str, int, int], int] = {}

    def attempts(self, position: tuple[str, int, int]) -> int:
        return self._attempts.get(position, 0)

    def pause(self, attempts: int) -> float:
        return float(min(self.cap, self.base * 2 ** (attempts - 1)))

    async def apply(
        self, message: KafkaMessage, work: Callable[[], Awaitable[None]], sink: DeadLetterSink
    ) -> bool:
        """`work` on `message` once: True when it is done with (applied, or dead-lettered
        after its last try); False when it failed and must be fetched again (the pause
        before that is over when this returns)."""
        record = message.raw_message
        assert not isinstance(record, tuple)
        position = (record.topic, record.partition, record.offset)
        try:
            await work()
        except Exception as exc:
            attempts = self._attempts.get(position, 0) + 1
            HANDLER_FAILURES.labels(self.consumer).inc()
            if attempts >= self.max_attempts:
                self._attempts.pop(position, None)
                log.exception("%s: a message failed %d times; dead-lettering it",
                              self.consumer, attempts)  # fmt: skip
                await sink.send(
                    message,
                    "processing-failed",
                    f"failed {attempts} times ({type(exc).__name__}); "
                    "an operator must look at the consumer's log",
                )
                return True
            self._attempts[position] = attempts
            log.warning("%s: a message failed (%s, try %d of %d); trying again",
                        self.consumer, type(exc).__name__, attempts,
                        self.max_attempts)  # fmt: skip
            await asyncio.sleep(self.pause(attempts))
            return False
        self._attempts.pop(position, None)
        return True


class RelayProducer:
    """The outbox relay's own producer: plain aiokafka (acks=all, idempotent), with no
    per-message middleware. A row's trace context travels in the headers stored with
    it, so the consumer's span still joins the trace the row was written in; the relay
    adds no span of its own (one per event would cost more than the event)."""

    def __init__(self, settings: Settings, *, client_id: str) -> None:
        self._settings = settings
        self._client_id = f"{client_id}-outbox"
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # Made here: aiokafka's clients belong to the running event loop.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            **client_options(self._settings),
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(
        self,
        message: bytes,
        topic: str,
        *,
        key: bytes | None,
        headers: dict[str, str],
        no_confirm: bool,
    ) -> Any:
        """Hand the record to the producer; its acknowledgement, awaited when
        `no_confirm`, else waited for here."""
        if self._producer is None:
            raise RuntimeError("the outbox's producer is not started")
        sent = await self._producer.send(
            topic, message, key=key, headers=[(k, v.encode()) for k, v in headers.items()]
        )
        return sent if no_confirm else await sent


class BrokerUnavailableError(RuntimeError):
    """Kafka could not be reached; the message names the servers and the fix."""


def create_broker(
    settings: Settings,
    *,
    client_id: str,
    tracer_provider: TracerProvider,
    registry: CollectorRegistry,
) -> tuple[KafkaBroker, DeadLetterSink]:
    """The broker of one process, and the dead-letter sink its consumers share."""
    topics = Topics(settings.topic_prefix)
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=broker_security(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        graceful_timeout=settings.graceful_timeout_seconds,
        # Per-message "Received"/"Processed" lines only at DEBUG: metrics count them.
        log_level=logging.DEBUG,
        middlewares=(
            KeylessKafkaTelemetryMiddleware(
                tracer_provider=tracer_provider,
                # A partner's trace ends at its topic: intake works in traces of its own.
                from_outside=lambda topic: topics.partner_id_of(topic) is not None,
            ),
            KafkaPrometheusMiddleware(registry=registry, app_name=client_id),
        ),
    )
    sink = DeadLetterSink(
        broker,
        topics,
        client_id,
        max_bytes=settings.max_message_bytes,
        key=DeadLetterKey.load(settings.deadletter_key_file)
        if settings.deadletter_key_file
        else None,
    )
    return broker, sink


class KafkaSecurityError(ValueError):
    """Kafka security settings that cannot work; the message names the setting to fix."""


def _tls(settings: Settings) -> ssl.SSLContext:
    if settings.kafka_ca_file is None:
        return ssl.create_default_context()
    return kafka_trust(settings.kafka_ca_file).context


class KafkaTrust:
    """The brokers' CA certificates one process trusts: one TLS context, shared by all
    its Kafka clients, from the CA file (Strimzi's `ca.crt`, mounted from its Secret).

    `refresh` reads the file again and adds any certificate not yet trusted to that same
    context, keeping the earlier ones: when Strimzi renews or replaces its cluster CA
    (the kubelet updates the mounted file) and then rolls the brokers, each new connection
    verifies brokers under the old CA and under the new one, without a restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Only these CAs: not the system's public ones (create_default_context would add
        # them when given no file); hostname checks and TLS 1.2+ as by default.
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._trusted: dict[bytes, x509.Certificate] = {}
        added = self.refresh()
        if not added:
            raise KafkaSecurityError(
                f"the Kafka CA file {path} holds no certificate; "
                "set VS_KAFKA_CA_FILE to the brokers' CA certificate (PEM)"
            )

    def refresh(self) -> list[x509.Certificate]:
        """Trust what the file holds now besides what was trusted; the certificates added."""
        try:
            certificates = x509.load_pem_x509_certificates(self.path.read_bytes())
        except (OSError, ValueError) as exc:
            raise KafkaSecurityError(
                f"cannot read the Kafka CA file {self.path}: {exc}; "
                "set VS_KAFKA_CA_FILE to the brokers' CA certificate (PEM)"
            ) from None
        added = [c for c in certificates if c.fingerprint(hashes.SHA256()) not in self._trusted]
        if added:
            pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in added)
            try:
                self.context.load_verify_locations(cadata=pem.decode("ascii"))
            except ssl.SSLError as exc:
                raise KafkaSecurityError(
                    f"the Kafka CA file {self.path} holds a certificate TLS cannot use: {exc}"
                ) from None
            self._trusted.update((c.fingerprint(hashes.SHA256()), c) for c in added)
            CA_EXPIRY.set(self.expiry().timestamp())
        return added

    def expiry(self) -> datetime:
        """When the last of the trusted CA certificates expires."""
        return max(c.not_valid_after_utc for c in self._trusted.values())

    async def watch(self) -> None:
        """One pass of the periodic re-read (ServiceRuntime.every). On the event loop's
        own thread, not a worker's: the context is never changed while a handshake on
        this thread uses it (the file is a few kilobytes on a local mount)."""
        for certificate in self.refresh():
            log.info(
                "now also trusting the Kafka CA %s (valid until %s) from %s",
                certificate.subject.rfc4514_string(),
                certificate.not_valid_after_utc.isoformat(timespec="seconds"),
                self.path,
            )


_TRUST: dict[Path, KafkaTrust] = {}


def kafka_trust(path: Path) -> KafkaTrust:
    """The process's trust for the CA file at `path` (made on first use)."""
    if path not in _TRUST:
        _TRUST[path] = KafkaTrust(path)
    return _TRUST[path]


def _scram(settings: Settings) -> tuple[str, str]:
    user, path = settings.kafka_sasl_username, settings.kafka_sasl_password_file
    if user and path is None and settings.kafka_sasl_password is not None:
        return user, settings.kafka_sasl_password.get_secret_value()
    if not user or path is None:
        raise KafkaSecurityError(
            f"VS_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs "
            "VS_KAFKA_SASL_USERNAME and "
            "VS_KAFKA_SASL_PASSWORD_FILE (the KafkaUser's Secret)"
        )
    try:
        return user, path.read_text().strip()
    except OSError as exc:
        raise KafkaSecurityError(
            f"cannot read the Kafka password file {path}: {exc}; set VS_KAFKA_SASL_PASSWORD_FILE"
        ) from None


def broker_security(settings: Settings) -> BaseSecurity | None:
    """How FastStream's broker logs in: plain, TLS, or SCRAM-SHA-512 (over TLS, or on
    the local stack's loopback broker without)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    if settings.kafka_security_protocol == "SSL":
        return BaseSecurity(ssl_context=_tls(settings))
    user, password = _scram(settings)
    if settings.kafka_security_protocol == "SASL_PLAINTEXT":
        return SASLScram512(user, password, use_ssl=False)
    return SASLScram512(user, password, ssl_context=_tls(settings))


def client_options(settings: Settings) -> dict[str, Any]:
    """The same login for a plain aiokafka client (admin, the audit check's consumer)."""
    if settings.kafka_security_protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol != "SASL_PLAINTEXT":
        options["ssl_context"] = _tls(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        user, password = _scram(settings)
        options |= {
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": user,
            "sasl_plain_password": password,
        }
    return options


async def started_admin(settings: Settings) -> AIOKafkaAdminClient:
    """An admin client that reached Kafka with this process's login, or
    BrokerUnavailableError naming the servers and the fix."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, **client_options(settings)
    )
    try:
        await admin.start()
    except KafkaError as exc:
        await admin.close()
        raise BrokerUnavailableError(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}. "
            "Start it (make run starts a local one) or set KAFKA_BOOTSTRAP_SERVERS."
        ) from exc
    return admin


async def check_reachable(settings: Settings) -> None:
    """Kafka answers and takes this process's login, or BrokerUnavailableError: checked
    before the broker starts, because a broker whose start fails leaves the process
    hanging half-started instead of ending it to be started again."""
    await (await started_admin(settings)).close()


async def ensure_topics(settings: Settings, partner_ids: Iterable[str]) -> list[str]:
    """Create every internal topic and one topic per partner; return those created now."""
    topics = Topics(settings.topic_prefix)
    wanted = [*topics.internal(), *(topics.partner(p) for p in partner_ids)]
    admin = await started_admin(settings)
    created = []
    try:
        existing = set(await admin.list_topics())
        # Dead letters hold originals (sealed): kept only a short time.
        short = {"retention.ms": str(settings.deadletter_retention_days * 86_400_000)}
        new = [
            NewTopic(
                name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs=short if name == topics.deadletter else {},
            )
            for name in wanted
            if name not in existing
        ]
        if new:
            response = await admin.create_topics(new)
            failed = [
                f"{topic} (error {code})"
                for topic, code, *_ in response.topic_errors
                if code not in (0, TopicAlreadyExistsError.errno)
            ]
            if failed:
                raise BrokerUnavailableError(
                    "Kafka refused to create topics: " + ", ".join(failed) + ". Check the "
                    "replication factor (VS_TOPIC_REPLICATION_FACTOR) and the ACLs."
                )
            created = [t.name for t in new]
    finally:
        await admin.close()
    return created


async def read_to_end(settings: Settings, topic: str) -> list[ConsumerRecord]:
    """Every record on `topic` now, from the start to the end offsets read at the start
    (no consumer group: nothing is committed). For tools: the audit check, dead letters."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        # Records removed by retention while this reads: on from the oldest left, never
        # a jump to the end past what is still there.
        auto_offset_reset="earliest",
        **client_options(settings),
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        # Up to the end offsets read now, by position: offsets need not be dense (records
        # removed by retention or compaction, transaction markers): a count would fail.
        ends = await consumer.end_offsets(partitions)

        async def behind() -> dict[TopicPartition, int]:
            return {tp: at for tp in partitions if (at := await consumer.position(tp)) < ends[tp]}

        while waiting := await behind():
            batch = await consumer.getmany(*waiting, timeout_ms=2000)
            for partition, got in batch.items():
                records.extend(r for r in got if r.offset < ends[partition])
            # A fetch may return nothing and still move past markers or gaps: only a
            # fetch that moves no position at all is stuck.
            if not batch and await behind() == waiting:
                left = sum(ends[tp] - at for tp, at in waiting.items())
                raise KafkaTimeoutError(f"{topic}: up to {left} records could not be read")
    finally:
        await consumer.stop()
    return records


class DeadLetterSink:
    """Sends a message that cannot be processed to the dead-letter topic, and counts it.

    The letter keeps the original only sealed to the dead-letter key (none without one)."""

    def __init__(
        self,
        broker: KafkaBroker,
        topics: Topics,
        consumer: str,
        *,
        max_bytes: int,
        key: DeadLetterKey | None,
    ) -> None:
        self._broker = broker
        self._topics = topics
        self._consumer = consumer
        self._max_bytes = max_bytes
        self._key = key

    async def decode(
        self, model: type[C], message: KafkaMessage, value: bytes | None = None
    ) -> C | None:
        """The message (or `value`, what it holds once opened) as `model`, or None after
        dead-lettering it with the reason."""
        record = message.raw_message
        assert not isinstance(record, tuple), "consumers here take single messages"
        raw = record.value if value is None else value
        try:
            return decode(model, raw, max_bytes=self._max_bytes)
        except ContractError as exc:
            await self.send(message, exc.code, exc.reason, value=value)
            return None

    async def send(
        self, message: KafkaMessage, reason_code: str, reason: str, value: bytes | None = None
    ) -> DeadLetter:
        """Dead-letter `message`; keep `value` as its original instead when given (what a
        sealed message held: the partner can read that back, not intake's ciphertext)."""
        record = message.raw_message
        assert not isinstance(record, tuple), "dead-lettering works on single messages"
        return await self.send_bytes(
            source=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=(record.value or b"") if value is None else value,
            reason_code=reason_code,
            reason=reason,
        )

    async def send_bytes(
        self,
        *,
        source: str,
        key: bytes | None,
        value: bytes,
        reason_code: str,
        reason: str,
        partition: int = -1,
        offset: int = -1,
    ) -> DeadLetter:
        """Dead-letter something that did not come from a topic (partition and offset -1),
        such as an e-mail or webhook delivery that failed for the last time. Within a
        batch of messages (shared.batch) the letter goes once the batch committed."""
        letter_id = uuid.uuid4()
        partner_id = self._topics.partner_id_of(source)
        letter = DeadLetter(
            event_id=letter_id,
            source_topic=source,
            source_partition=partition,
            source_offset=offset,
            consumer=self._consumer,
            reason_code=reason_code,
            reason=reason,
            partner_id=partner_id,
            original_size=len(value),
            original_digest=self._key.digest(value) if self._key else None,
            # An oversized original is cut, so the dead letter itself fits on the topic.
            original_sealed=self._key.seal(
                str(letter_id), source, partner_id, key, value[: self._max_bytes]
            )
            if self._key
            else None,
            sealed_to=self._key.key_id if self._key else None,
            original_truncated=len(value) > self._max_bytes,
        )

        async def deliver() -> None:
            await self._broker.publish(
                letter.to_bytes(),
                self._topics.deadletter,
                # Dead letters of one subject keep their order, under a keyed digest of
                # the original key (a pseudonym), never the pseudonym itself beside the
                # reason.
                key=(self._key.digest(key).encode() if self._key else None)
                if key
                else str(letter.event_id).encode(),
                headers={"content-type": "application/json"},
            )
            DEAD_LETTERS.labels(self._consumer, reason_code).inc()
            log.warning("dead-lettered %s[%d]@%d: %s (%s)",
                        source, partition, offset, reason_code, reason)  # fmt: skip

        # In a batch, once its transaction committed (a batch rolled back and applied
        # again one message at a time sends it then, once).
        await after_commit(deliver)
        return letter
