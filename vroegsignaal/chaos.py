"""The chaos suite (`make chaos`): the whole stack on this machine, a load of partner rows
through the real partner producer, and meanwhile every service killed with SIGKILL several
times, the Kafka broker and PostgreSQL each killed and started again once. Then the
figures: registrations lost, duplicated registrations, matches, alerts and e-mails,
audit entries missing, and whether `vroegsignaal audit verify` passes. Every figure must
be 0 except what the design allows (an e-mail sent again after a crash between the SMTP
server's acceptance and the delivery's record: at least once, recognisable by its
X-Vroegsignaal-Delivery header), and the run says so.

`python -m vroegsignaal.chaos --rows 10000 --kills 3`; a short form runs in `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import email
import mailbox
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.contracts import Category, Topics
from shared.kafka import client_options
from shared.settings import Settings
from vroegsignaal.devstack import (
    as_kafka_admin,
    prepare_infrastructure,
    service_env,
    start_process,
)
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.services import SERVICES
from vroegsignaal.stack.kafka import KafkaNode
from vroegsignaal.stack.kafka_access import ADMIN
from vroegsignaal.stack.local import Infrastructure
from vroegsignaal.stack.postgres import PostgresNode
from vroegsignaal.stack.procs import free_port, stop_process, wait_for_port
from vroegsignaal.stack.secrets import PARTNERS_TEMPLATE, Secrets, init_secrets
from vroegsignaal.stack.supervisor import CrashLoop, Supervisor

FIELDS = [
    "child_bsn", "parent_bsns", "household_id", "date_of_birth", "category", "wijk",
    "registered_at", "worker_id", "worker_name", "worker_email",
]  # fmt: skip
WIJKEN = ("WK099901", "WK099902", "WK099903", "WK099904")
DELIVERY_HEADER = "X-Vroegsignaal-Delivery"
WATCHED = (
    "faststream_received_messages_total",
    "faststream_received_processed_messages_total",
    "vroegsignaal_intake_signals_total",
)


@dataclass(frozen=True)
class Plan:
    rows: int = 10_000
    kills: int = 3  # per service
    restart_broker: bool = True
    restart_postgres: bool = True
    seed: int = 1
    settle_seconds: float = 2400.0


@dataclass
class Figures:
    rows_sent: int = 0
    registrations: int = 0
    intake_rejected: int = 0
    duplicate_registrations: int = 0
    duplicate_open_matches: int = 0
    duplicate_alerts: int = 0
    lost_emails: int = 0
    dead_emails: int = 0
    queued_emails: int = 0
    emails: int = 0
    repeated_emails: int = 0
    audit_missing: dict[str, int] = field(default_factory=dict)
    audit_verify: str = "not run"
    pending: int = 0  # messages, outbox rows still waiting when the figures were taken
    events: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.rows_sent - self.registrations

    def problems(self) -> list[str]:
        found = [
            f"{name}: {value}"
            for name, value in (
                ("registrations lost", self.lost),
                ("registrations rejected by intake", self.intake_rejected),
                ("registrations duplicated", self.duplicate_registrations),
                ("open matches duplicated", self.duplicate_open_matches),
                ("alerts duplicated", self.duplicate_alerts),
                ("e-mails recorded as sent but never received", self.lost_emails),
                ("e-mails given up (dead)", self.dead_emails),
            )
            if value
        ]
        if self.pending:
            found.append(
                f"not settled: {self.pending} messages still waiting (the figures below "
                "count them as missing; give the run more time to settle)"
            )
        found += [f"audit entries missing for {k}: {v}" for k, v in self.audit_missing.items() if v]
        if self.audit_verify != "ok":
            found.append(f"audit verify: {self.audit_verify}")
        return found

    def report(self) -> str:
        missing = ", ".join(f"{k} {v}" for k, v in self.audit_missing.items())
        lines = [
            f"rows sent through the partner producer  {self.rows_sent}",
            f"registrations stored                    {self.registrations}",
            f"registrations lost                      {self.lost}",
            f"registrations rejected by intake        {self.intake_rejected}",
            f"registrations duplicated                {self.duplicate_registrations}",
            f"open matches duplicated                 {self.duplicate_open_matches}",
            f"alerts duplicated                       {self.duplicate_alerts}",
            f"e-mails delivered                       {self.emails}",
            f"e-mails recorded as sent, not received  {self.lost_emails}",
            f"e-mails given up (dead)                 {self.dead_emails}",
            f"e-mails still queued (not lost: they go {self.queued_emails} (at about 5 a second; "
            "digests are issue 14)",
            f"e-mails sent more than once             {self.repeated_emails} (allowed: "
            "at least once, each names its delivery)",
            f"audit entries missing                   {missing}",
            f"vroegsignaal audit verify               {self.audit_verify}",
            f"still waiting when counted              {self.pending}",
        ]
        problems = self.problems()
        verdict = (
            "ALL ZERO: nothing lost, nothing duplicated, every audit entry there"
            if not problems
            else "FAILED: " + "; ".join(problems)
        )
        return "\n".join([*lines, verdict])


def write_exports(directory: Path, rows: int, seed: int) -> tuple[dict[str, Path], int]:
    """One export per partner, every row valid and distinct (its own registration time),
    each theme one its partner may signal; how many rows in all."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data
    partners = yaml.safe_load(PARTNERS_TEMPLATE.read_text())["partners"]
    children = synthetic_bsns(max(rows // 3, 10), rng)
    parents = synthetic_bsns(max(rows // 6, 5), rng)
    start = datetime.now(UTC) - timedelta(days=2)
    files: dict[str, Any] = {}
    writers: dict[str, csv.DictWriter[str]] = {}
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(rows):
        partner = partners[n % len(partners)]
        pid = partner["id"]
        if pid not in writers:
            files[pid] = (directory / f"{pid}.csv").open("w", newline="")
            writers[pid] = csv.DictWriter(files[pid], FIELDS)
            writers[pid].writeheader()
        child = rng.randrange(len(children))
        themes = partner.get("themes") or [c.value for c in Category]
        born = date(2010 + child % 12, 1 + child % 12, 1 + child % 28)
        worker = f"{pid}-{1 + n % 3}"
        writers[pid].writerow(
            {
                "child_bsn": children[child],
                "parent_bsns": parents[child % len(parents)],
                "household_id": f"HH-{child % len(parents):06d}",
                "date_of_birth": born.isoformat(),
                "category": themes[n % len(themes)],
                "wijk": WIJKEN[child % len(WIJKEN)],
                "registered_at": (start + timedelta(seconds=n)).isoformat(timespec="seconds"),
                "worker_id": worker,
                "worker_name": f"Medewerker {worker}",
                "worker_email": f"{worker}@voorbeeldrade.example",
            }
        )
    for handle in files.values():
        handle.close()
    return {pid: directory / f"{pid}.csv" for pid in writers}, rows


class Stack:
    """Kafka, PostgreSQL, the mail server and the five services, each one killable."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.logs = data / "logs"
        self.run_dir = data / "run"
        ports = {
            name: free_port()
            for name in ("intake", "matching", "notification", "audit", "pseudonymiser")
        }
        self.secrets: Secrets = init_secrets(
            data / "secrets", pseudonymiser_url=f"http://127.0.0.1:{ports['pseudonymiser']}"
        )
        self.admin_password = self.secrets.kafka_passwords()[ADMIN]
        self.kafka = KafkaNode(
            data / "kafka", free_port(), free_port(), admin_password=self.admin_password
        )
        self.postgres = PostgresNode(data / "postgres", free_port())
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
        for name in SERVICES:
            env = {
                **service_env(self.infra, self.data / "traces.jsonl", self.secrets, name),
                **{f"VS_{n.upper()}_PORT": str(p) for n, p in self.ports.items()},
                "VS_PSEUDONYMISER_URL": self.settings.pseudonymiser_url,
                "VS_SMTP_HOST": "127.0.0.1",
                "VS_SMTP_PORT": str(self.mail_port),
                "VS_OUTBOX_POLL_SECONDS": "0.2",
                "VS_DELIVERY_INTERVAL_SECONDS": "0.2",
                "VS_DELIVERY_BASE_SECONDS": "0.5",
                "VS_GRACEFUL_TIMEOUT_SECONDS": "5",
            }
            self.supervisor.add(
                name,
                lambda n=name, e=env: start_process(n, ["serve", n], e, self.logs, self.run_dir),  # type: ignore[misc]
                str(self.logs / f"{name}.log"),
            )
        for name, proc in self.supervisor.running():
            if name in SERVICES:
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

    def stop(self) -> None:
        for _, process in reversed(self.supervisor.running()):
            stop_process(process, timeout=10)
        self.kafka.stop()
        self.postgres.stop()

    def admin_settings(self) -> Settings:
        return as_kafka_admin(self.settings, self.secrets)


def send_all(stack: Stack, exports: dict[str, Path], said: Callable[[str], None]) -> None:
    """Each partner sends its export with `vroegsignaal partner send`; a run that fails
    (the broker or the pseudonymiser went away) is run again: the journal sends only what
    is missing."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VS_")},
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
    }

    def one(pid: str, path: Path) -> None:
        config = stack.secrets.partner_config(pid)
        for attempt in range(1, 40):
            done = subprocess.run(
                [sys.executable, "-m", "vroegsignaal", "partner", "send", str(path),
                 "--config", str(config)],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode == 0:
                said(f"{pid}: {done.stdout.strip().splitlines()[-1]} (run {attempt})")
                return
            said(f"{pid}: run {attempt} failed ({done.stderr.strip()[-160:]}); again")
            time.sleep(2)
        raise RuntimeError(f"{pid}: the export could not be sent in 40 runs")

    threads = [threading.Thread(target=one, args=item) for item in exports.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def consumed(topics: Topics, partner_topics: list[str]) -> dict[str, list[str]]:
    """Each consumer group and the topics it reads (services/*/handlers.py)."""
    group = topics.name("vroegsignaal-")
    return {
        f"{group}intake": partner_topics,
        f"{group}matching": [topics.accepted],
        f"{group}matching-trends": [topics.wijk_themes],
        f"{group}matching-erasures": [topics.erasures_approved],
        f"{group}notification": [topics.matches, topics.match_lifecycle, topics.trends],
        f"{group}audit": topics.audits,
        f"{group}audit-requests": [topics.audit_requests],
    }


async def lag_and_backlog(settings: Settings, partner_ids: list[str]) -> int:
    """Messages a group has not yet committed (from the start of every partition it reads,
    whether it committed there yet or not), outbox rows, deliveries still pending."""
    topics = Topics(settings.topic_prefix)
    options = client_options(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, **options)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False, **options
    )
    await admin.start()
    await consumer.start()
    lag = 0
    try:
        for group, read in consumed(topics, [topics.partner(p) for p in partner_ids]).items():
            committed = await admin.list_consumer_group_offsets(group)
            partitions = [
                TopicPartition(t, p)
                for t in read
                for p in (consumer.partitions_for_topic(t) or await _partitions(consumer, t))
            ]
            ends = await consumer.end_offsets(partitions)
            lag += sum(
                end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items()
            )
    finally:
        await consumer.stop()
        await admin.close()
    conn = await asyncpg.connect(settings.database_url)
    try:
        for schema in SERVICES:
            lag += await conn.fetchval(f'SELECT count(*) FROM "{schema}".outbox')
        # (Deliveries still queued are not waited for: they go at the channel's pace.)
        lag += await conn.fetchval("SELECT count(*) FROM notification.pending_lifecycle")
    finally:
        await conn.close()
    return int(lag)


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


async def figures(stack: Stack, rows: int) -> Figures:
    found = Figures(rows_sent=rows)
    conn = await asyncpg.connect(stack.settings.database_url)
    try:
        found.registrations = await conn.fetchval("SELECT count(*) FROM matching.registrations")
        found.intake_rejected = await conn.fetchval("SELECT count(*) FROM intake.rejected_signals")
        found.duplicate_registrations = await conn.fetchval(
            "SELECT count(*) - count(DISTINCT (subject, partner_id, registered_at))"
            " FROM matching.registrations"
        )
        found.duplicate_open_matches = await conn.fetchval(
            "SELECT count(*) FROM (SELECT kind, key FROM matching.matches WHERE status = 'open'"
            " GROUP BY kind, key HAVING count(*) > 1) AS d"
        )
        # An alert per match, recipient, kind and occasion: more would be one decision
        # told twice.
        found.duplicate_alerts = await conn.fetchval(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM notification.alerts"
            " GROUP BY match_id, recipient_id, kind, occasion, part) AS d"
        )
        sent = {
            str(r[0])
            for r in await conn.fetch(
                "SELECT delivery_id FROM notification.deliveries WHERE channel = 'email'"
                " AND state = 'sent'"
            )
        }
        found.queued_emails = await conn.fetchval(
            "SELECT count(*) FROM notification.deliveries WHERE state = 'pending'"
        )
        found.dead_emails = await conn.fetchval(
            "SELECT count(*) FROM notification.deliveries WHERE state = 'dead'"
        )
        for kind, query in (
            ("registrations", "SELECT registration_id::text FROM matching.registrations"),
            ("matches", "SELECT match_id::text FROM matching.matches"),
            ("alerts", "SELECT alert_id::text FROM notification.alerts"),
        ):
            ids = {r[0] for r in await conn.fetch(query)}
            logged = {
                r[0]
                for r in await conn.fetch(
                    "SELECT DISTINCT object_id FROM audit.entries WHERE object_type = $1",
                    kind.rstrip("s") if kind != "matches" else "match",
                )
            }
            found.audit_missing[kind] = len(ids - logged)
    finally:
        await conn.close()
    deliveries: Counter[str] = Counter()
    for message in mailbox.Maildir(stack.data / "mail", factory=None):
        parsed = email.message_from_bytes(bytes(message))
        deliveries[str(parsed.get(DELIVERY_HEADER))] += 1
    found.emails = sum(deliveries.values())
    found.repeated_emails = sum(n - 1 for n in deliveries.values())
    # Recorded as sent, yet never received: lost.
    found.lost_emails = len(sent - set(deliveries))
    return found


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


def run(plan: Plan, data: Path, say: Callable[[str], None] = print) -> Figures:
    """The whole run: start, load, chaos, settle, count."""
    stack = Stack(data)
    events: list[str] = []

    def said(line: str) -> None:
        events.append(line)
        say(time.strftime("%H:%M:%S ") + line)

    try:
        stack.start()
        said("the stack is up")
        exports, rows = write_exports(data / "exports", plan.rows, plan.seed)
        sending = threading.Thread(target=send_all, args=(stack, exports, said))
        sending.start()
        rng = random.Random(plan.seed)  # noqa: S311 - the order of the chaos
        chaos = [f"kill {name}" for name in SERVICES for _ in range(plan.kills)]
        rng.shuffle(chaos)
        if plan.restart_broker:
            chaos.insert(len(chaos) // 3, "restart Kafka")
        if plan.restart_postgres:
            chaos.insert(2 * len(chaos) // 3, "restart PostgreSQL")
        gap = 2.0
        for act in chaos:
            deadline = time.monotonic() + gap
            while time.monotonic() < deadline:
                for event in stack.supervisor.poll():
                    said(event)
                time.sleep(0.2)
            said(act)
            if act == "restart Kafka":
                stack.restart_kafka()
            elif act == "restart PostgreSQL":
                stack.restart_postgres()
            else:
                stack.kill(act.removeprefix("kill "))
        while sending.is_alive():
            for event in stack.supervisor.poll():
                said(event)
            sending.join(timeout=0.5)
        said("every export sent; waiting for the stack to settle")
        admin = stack.admin_settings()
        deadline = time.monotonic() + plan.settle_seconds
        quiet = 0
        pending = 0
        while quiet < 3:
            for event in stack.supervisor.poll():
                said(event)
            try:
                left = asyncio.run(lag_and_backlog(admin, list(exports)))
            except (OSError, asyncpg.PostgresError, KafkaError) as exc:
                said(f"not yet measurable ({exc}); again")
                left = -1
            quiet = quiet + 1 if left == 0 else 0
            if time.monotonic() > deadline:
                pending = left
                said(f"not settled within {plan.settle_seconds:.0f} s: {left} still pending")
                for line in asyncio.run(diagnose(stack)):
                    said(line)
                break
            time.sleep(1)
        result = asyncio.run(figures(stack, rows))
        result.audit_verify = audit_verify(stack)
        result.pending = max(pending, 0)
        result.events = events
        return result
    except CrashLoop as looping:
        raise RuntimeError(str(looping)) from None
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per service")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vroegsignaal-chaos-") as data:
        Path(data).chmod(0o755)
        result = run(Plan(rows=args.rows, kills=args.kills, seed=args.seed), Path(data))
    print("\n" + result.report())
    raise SystemExit(1 if result.problems() else 0)


if __name__ == "__main__":
    main()
