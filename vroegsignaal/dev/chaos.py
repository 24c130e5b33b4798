"""The chaos suite (`make chaos`): the whole stack on this machine, a load of partner rows
through the real partner producer, and meanwhile every service killed with SIGKILL several
times, the Kafka broker and PostgreSQL each killed and started again once. Then the
figures: registrations lost, duplicated registrations, matches, alerts and e-mails,
audit entries missing, and whether `vroegsignaal audit verify` passes. Every figure must
be 0 except what the design allows (an e-mail sent again after a crash between the SMTP
server's acceptance and the delivery's record: at least once, recognisable by its
X-Vroegsignaal-Delivery header), and the run says so.

`python -m vroegsignaal.dev.chaos --rows 10000 --kills 3`; a short form runs in `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import email
import mailbox
import os
import random
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
from aiokafka.errors import KafkaError

from shared.contracts import Category
from vroegsignaal.dev.harness import Stack, audit_verify, diagnose, measure_backlog, running
from vroegsignaal.partner.bsn import synthetic_bsns
from vroegsignaal.provision.secrets import PARTNERS_TEMPLATE, partner_list
from vroegsignaal.services import SERVICES

FIELDS = [
    "child_bsn", "parent_bsns", "household_id", "date_of_birth", "category", "wijk",
    "registered_at", "worker_id", "worker_name", "worker_email",
]  # fmt: skip
WIJKEN = ("WK099901", "WK099902", "WK099903", "WK099904")
DELIVERY_HEADER = "X-Vroegsignaal-Delivery"


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


def write_exports(
    directory: Path, rows: int, seed: int, only: str | None = None
) -> tuple[dict[str, Path], int]:
    """One export per partner (or of partner `only`), every row valid and distinct (its
    own registration time), each theme one its partner may signal; how many rows in all."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data
    partners = [p for p in partner_list(PARTNERS_TEMPLATE).partners if only in (None, p.id)]
    # The synthetic block holds 9,091 valid BSNs: a large export repeats its children.
    # Drawn together, so that no child is also a parent (such a row is refused).
    counts = min(max(rows // 3, 10), 6000), min(max(rows // 6, 5), 3000)
    people = synthetic_bsns(sum(counts), rng)
    children, parents = people[: counts[0]], people[counts[0] :]
    # One second apart, the last a day ago: none lies in the future, however many rows.
    start = datetime.now(UTC) - timedelta(days=1, seconds=rows)
    files: dict[str, Any] = {}
    writers: dict[str, csv.DictWriter[str]] = {}
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(rows):
        partner = partners[n % len(partners)]
        pid = partner.id
        if pid not in writers:
            files[pid] = (directory / f"{pid}.csv").open("w", newline="")
            writers[pid] = csv.DictWriter(files[pid], FIELDS)
            writers[pid].writeheader()
        child = rng.randrange(len(children))
        themes = [c.value for c in partner.themes or Category]
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


def partner_send(stack: Stack, pid: str, export: Path) -> tuple[list[str], dict[str, str]]:
    """`vroegsignaal partner send` of partner `pid`'s export against `stack`, as its
    administrator runs it (none of the services' settings), saying in English what it
    did: the command and its environment."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VS_")},
        "KAFKA_BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
        "VS_LANGUAGE": "en",
    }
    config = stack.secrets.partner_config(pid)
    command = [sys.executable, "-m", "vroegsignaal", "partner", "send", str(export),
               "--config", str(config)]  # fmt: skip
    return command, env


def send_all(stack: Stack, exports: dict[str, Path], said: Callable[[str], None]) -> None:
    """Each partner sends its export with `vroegsignaal partner send`; a run that fails
    (the broker or the pseudonymiser went away) is run again: the journal sends only what
    is missing."""

    def one(pid: str, path: Path) -> None:
        command, env = partner_send(stack, pid, path)
        for attempt in range(1, 40):
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if done.returncode == 0:
                said(f"{pid}: {'; '.join(done.stdout.strip().splitlines())} (run {attempt})")
                return
            said(f"{pid}: run {attempt} failed ({done.stderr.strip()[-160:]}); again")
            time.sleep(2)
        raise RuntimeError(f"{pid}: the export could not be sent in 40 runs")

    threads = [threading.Thread(target=one, args=item) for item in exports.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


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


def run(plan: Plan, data: Path, say: Callable[[str], None] = print) -> Figures:
    """The whole run: start, load, chaos, settle, count."""
    events: list[str] = []

    def said(line: str) -> None:
        events.append(line)
        say(time.strftime("%H:%M:%S ") + line)

    with running(data) as stack:
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
                left = asyncio.run(measure_backlog(admin, list(exports))).waiting
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
