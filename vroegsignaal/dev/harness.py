"""The whole stack on this machine for the long runs (`make chaos`, `make soak`): Kafka,
PostgreSQL, the mail server and the five services under the supervisor of `dev up`, each
one killable, and what is still waiting in it (consumer lag per group, outbox rows per
service, deliveries pending)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.contracts import Topics
from shared.kafka import client_options
from shared.settings import Settings
from vroegsignaal.dev.devstack import (
    as_kafka_admin,
    prepare_infrastructure,
    service_env,
    start_process,
)
from vroegsignaal.dev.stack.kafka import KafkaNode
from vroegsignaal.dev.stack.local import Infrastructure
from vroegsignaal.dev.stack.postgres import PostgresNode
from vroegsignaal.dev.stack.procs import free_port, stop_process, wait_for_port
from vroegsignaal.dev.stack.supervisor import CrashLoop, Supervisor
from vroegsignaal.provision.kafka_access import ADMIN
from vroegsignaal.provision.secrets import PARTNERS_TEMPLATE, Secrets, init_secrets
from vroegsignaal.services import SERVICES

WATCHED = (
    "faststream_received_messages_total",
    "faststream_received_processed_messages_total",
    "vroegsignaal_intake_signals_total",
)


class Stack:
    """Kafka, PostgreSQL, the mail server and the five services, each one killable."""

    def __init__(
        self,
        data: Path,
        *,
        services: tuple[str, ...] = tuple(SERVICES),
        partners_template: Path = PARTNERS_TEMPLATE,
        count_statements: bool = False,
    ) -> None:
        self.data = data
        self.services = services
        self.logs = data / "logs"
        self.run_dir = data / "run"
        ports = {
            name: free_port()
            for name in ("intake", "matching", "notification", "audit", "pseudonymiser")
        }
        self.secrets: Secrets = init_secrets(
            data / "secrets",
            pseudonymiser_url=f"http://127.0.0.1:{ports['pseudonymiser']}",
            template=partners_template,
        )
        self.admin_password = self.secrets.kafka_passwords()[ADMIN]
        self.kafka = KafkaNode(
            data / "kafka", free_port(), free_port(), admin_password=self.admin_password
        )
        self.postgres = PostgresNode(
            data / "postgres", free_port(), count_statements=count_statements
        )
        self.mail_port = free_port()
        self.ports = ports
        self.supervisor = Supervisor()
        self.settings = Settings()

    def start(self) -> None:
        self.postgres.start()
        self.kafka.start()
        self.infra = Infrastructure(
            self.kafka.bootstrap_servers,
            self.postgres.url(),
            True,
            True,
            self.admin_password,
        )
        self.settings = Settings(
            KAFKA_BOOTSTRAP_SERVERS=self.kafka.bootstrap_servers,
            DATABASE_URL=self.postgres.url(),
            partners_file=self.secrets.partners,
            pseudonymiser_url=f"http://127.0.0.1:{self.ports['pseudonymiser']}",
        ).model_copy(update={f"{name}_port": port for name, port in self.ports.items()})
        prepare_infrastructure(self.settings, self.secrets, self.infra)
        maildir = self.data / "mail"
        for part in ("tmp", "new", "cur"):
            (maildir / part).mkdir(parents=True, exist_ok=True)
        mail_args = ["dev", "mail", "--listen", f"127.0.0.1:{self.mail_port}", str(maildir)]
        self.supervisor.add(
            "mail",
            lambda: start_process("mail", mail_args, dict(os.environ), self.logs, self.run_dir),
            str(self.logs / "mail.log"),
        )
        for name in self.services:
            env = {
                **service_env(self.infra, self.data / "traces.jsonl", self.secrets, name),
                **{f"VS_{n.upper()}_PORT": str(p) for n, p in self.ports.items()},
                "VS_PSEUDONYMISER_URL": self.settings.pseudonymiser_url,
                "VS_SMTP_HOST": "127.0.0.1",
                "VS_SMTP_PORT": str(self.mail_port),
                "VS_OUTBOX_POLL_SECONDS": "0.2",
                "VS_DELIVERY_INTERVAL_SECONDS": "0.2",
                "VS_DIGEST_CHECK_SECONDS": "0.5",
                "VS_DELIVERY_BASE_SECONDS": "0.5",
                "VS_GRACEFUL_TIMEOUT_SECONDS": "5",
            }
            self.supervisor.add(
                name,
                lambda n=name, e=env: start_process(n, ["serve", n], e, self.logs, self.run_dir),  # type: ignore[misc]
                str(self.logs / f"{name}.log"),
            )
        for name, proc in self.supervisor.running():
            if name in self.services:
                wait_for_port(self.ports[name], proc, name, self.logs / f"{name}.log", 120)

    def kill(self, name: str) -> None:
        """SIGKILL one service; the supervisor starts it again."""
        process = self.supervisor.processes[name].process
        if process is not None:
            process.kill()

    def restart_kafka(self) -> None:
        assert self.kafka.process is not None
        self.kafka.process.kill()
        self.kafka.process.wait()
        self.kafka.process = None
        self.kafka.start()

    def restart_postgres(self) -> None:
        """SIGKILL the postmaster and every backend at once (its own process group), then
        start it again: crash recovery from the WAL, as after a power cut."""
        assert self.postgres.process is not None
        os.killpg(self.postgres.process.pid, signal.SIGKILL)
        self.postgres.process.wait()
        self.postgres.process = None
        deadline = time.monotonic() + 30
        while (
            any(
                p.info["name"] == "postgres" and p.info["ppid"] in (1, 0)
                for p in psutil.process_iter(["name", "ppid"])
                if p.pid != os.getpid()
            )
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        self.postgres.start()

    def simulator(self, args: list[str]) -> subprocess.Popen[bytes]:
        """The simulated municipality (`vroegsignaal simulate ARGS`), each partner with
        its own credentials; not supervised: a load that stops is a failed run."""
        env = {
            **service_env(self.infra, self.data / "traces.jsonl", self.secrets, "simulator"),
            "VS_PSEUDONYMISER_URL": self.settings.pseudonymiser_url,
        }
        return start_process("simulator", ["simulate", *args], env, self.logs, self.run_dir)

    def rss(self) -> dict[str, int]:
        """Each service's resident memory in bytes (0 while it is down)."""
        found = {}
        for name in self.services:
            pid = self.supervisor.processes[name].pid
            try:
                found[name] = psutil.Process(pid).memory_info().rss if pid else 0
            except psutil.NoSuchProcess:
                found[name] = 0
        return found

    def stop(self) -> None:
        for _, process in reversed(self.supervisor.running()):
            stop_process(process, timeout=10)
        self.kafka.stop()
        self.postgres.stop()

    def admin_settings(self) -> Settings:
        return as_kafka_admin(self.settings, self.secrets)


@contextmanager
def running(data: Path, **options: Any) -> Iterator[Stack]:
    """The stack started in `data` (`options`: Stack's), and stopped whatever happens; a
    service that keeps crashing ends the run with its name and log."""
    stack = Stack(data, **options)
    try:
        stack.start()
        yield stack
    except CrashLoop as looping:
        raise RuntimeError(str(looping)) from None
    finally:
        stack.stop()


def consumed(topics: Topics, partner_topics: list[str]) -> dict[str, list[str]]:
    """Each consumer group and the topics it reads (services/*/handlers.py)."""
    group = topics.name("vroegsignaal-")
    return {
        f"{group}intake": partner_topics,
        f"{group}matching": [topics.accepted],
        f"{group}matching-trends": [topics.wijk_themes],
        f"{group}matching-erasures": [topics.erasures_approved],
        f"{group}notification": [topics.matches, topics.match_lifecycle],
        f"{group}notification-trends": [topics.trends],
        f"{group}audit": topics.audits,
        f"{group}audit-requests": [topics.audit_requests],
    }


@dataclass
class Backlog:
    """What the stack has not yet done: per consumer group the messages it has not
    committed, per service its outbox rows, and the lifecycle notices and deliveries that
    wait in notification."""

    lag: dict[str, int] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)  # messages each group committed
    outbox: dict[str, int] = field(default_factory=dict)
    pending_lifecycle: int = 0
    deliveries_pending: int = 0

    @property
    def waiting(self) -> int:
        """Everything the pipeline still owes (deliveries not counted: they go at the
        channel's pace, not the pipeline's)."""
        return sum(self.lag.values()) + sum(self.outbox.values()) + self.pending_lifecycle


async def measure_backlog(settings: Settings, partner_ids: list[str]) -> Backlog:
    """Lag counts from the start of every partition a group reads, whether it has
    committed there yet or not."""
    topics = Topics(settings.topic_prefix)
    options = client_options(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, **options)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False, **options
    )
    found = Backlog()
    await admin.start()
    await consumer.start()
    try:
        for group, read in consumed(topics, [topics.partner(p) for p in partner_ids]).items():
            committed = await admin.list_consumer_group_offsets(group)
            partitions = [
                TopicPartition(t, p)
                for t in read
                for p in (consumer.partitions_for_topic(t) or await _partitions(consumer, t))
            ]
            ends = await consumer.end_offsets(partitions)
            name = group.removeprefix(topics.name("vroegsignaal-"))
            found.lag[name] = sum(
                end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items()
            )
            found.done[name] = sum(committed[tp].offset for tp in ends if tp in committed)
    finally:
        await consumer.stop()
        await admin.close()
    conn = await asyncpg.connect(settings.database_url)
    try:
        for schema in SERVICES:
            found.outbox[schema] = await conn.fetchval(f'SELECT count(*) FROM "{schema}".outbox')
        found.pending_lifecycle = await conn.fetchval(
            "SELECT count(*) FROM notification.pending_lifecycle"
        )
        found.deliveries_pending = await conn.fetchval(
            "SELECT count(*) FROM notification.deliveries WHERE state = 'pending'"
        )
    finally:
        await conn.close()
    return found


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


async def diagnose(stack: Stack) -> list[str]:
    """Where a stack that does not settle is stuck: sessions that are not idle, and what
    each service has received and handled."""
    lines = []
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        for r in await conn.fetch(
            "SELECT usename, state, wait_event_type, wait_event, left(query, 120) AS query,"
            " now() - xact_start AS age FROM pg_stat_activity"
            " WHERE state IS NOT NULL AND state <> 'idle' AND pid <> pg_backend_pid()"
        ):
            lines.append(f"session {dict(r)}")
    finally:
        await conn.close()
    async with httpx.AsyncClient(timeout=5) as client:
        for name, port in stack.ports.items():
            try:
                metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.HTTPError as exc:
                lines.append(f"{name}: no metrics ({exc})")
                continue
            counts = [line for line in metrics.splitlines() if line.startswith(WATCHED)]
            lines.append(f"{name}: " + "; ".join(counts)[:600])
    return lines


def audit_verify(stack: Stack) -> str:
    """`vroegsignaal audit verify` as an operator runs it: 'ok', or what it found."""
    admin = stack.admin_settings()
    verify = subprocess.run(
        [sys.executable, "-m", "vroegsignaal", "audit", "verify"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("VS_")},
            "DATABASE_URL": stack.settings.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
            "VS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "VS_KAFKA_SASL_USERNAME": ADMIN,
            "VS_KAFKA_SASL_PASSWORD_FILE": str(admin.kafka_sasl_password_file),
            "VS_AUDIT_PUBLIC_KEY": stack.secrets.audit_public_key.read_text().strip(),
        },
        capture_output=True,
        text=True,
        check=False,
    )
    return "ok" if verify.returncode == 0 else (verify.stdout + verify.stderr).strip()[-300:]
