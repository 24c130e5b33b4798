"""The whole pipeline under load (`make bench`, its `pipeline` part): the stack as the
soak starts it (Kafka, PostgreSQL, the five services, every partner through the real
partner producer of the simulated municipality), measured twice.

1. A backlog: `rows` registrations sent at `--backlog-rate`, faster than the stack takes
   them (sent as fast as the producers go, their CPU would be the stack's too). Every
   second each consumer group's committed offsets, each service's resident memory.
   Per hop (intake, matching, notification, audit) its sustained rate: the messages it
   committed over the time from its first to its last commit. End to end: the
   registrations intake took over the time from the first send until nothing waits.
2. A steady load (`--steady-rate` a second for `--steady-seconds`): from the traces, for
   each signal that raised an alert, the time from intake taking it to the alert
   stored (notification's span ending). The wait on the partner's topic before intake
   is not in it: the partner's trace ends at its topic by design (shared.telemetry),
   so nothing links a send to its processing; it is the intake group's lag, reported
   with it.

The backlog also reports, by database role, the PostgreSQL statements run per
registration and the time they took to execute (pg_stat_statements, loaded when the
stack is started with `count_statements`): next to each process's CPU, that says where a
registration's cost goes. The role `keystore` is the key store's: intake, matching and
notification seal and open through it.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from aiokafka.errors import KafkaError

from vroegsignaal.dev.harness import Backlog, Stack, measure_backlog
from vroegsignaal.services import SERVICES

HOPS = ("intake", "matching", "notification", "audit")
MIB = 1024 * 1024
STUCK_SECONDS = 60.0


@dataclass
class Run:
    """What one load measured: samples of (seconds, committed per group) and the peak
    resident memory of each service."""

    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    peak_rss: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # from the first send until nothing waits
    deliveries_sent: int = 0
    intake_waiting: list[int] = field(default_factory=list)
    stuck_since: float | None = None
    stuck_waiting: int = 0
    left: Backlog | None = None  # what still waited when nothing moved any more
    # Statements and their execution milliseconds, by service (see _statements).
    statements: dict[str, tuple[int, float]] = field(default_factory=dict)
    # CPU seconds of each process (and its children: PostgreSQL's backends), by pid.
    cpu: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict)

    def sample_cpu(self, processes: dict[str, int | None]) -> None:
        for name, pid in processes.items():
            if not pid:
                continue
            try:
                root = psutil.Process(pid)
                family = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            seen = self.cpu.setdefault(name, {})
            for process in family:
                try:
                    times = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                used = times.user + times.system
                first = seen.get(process.pid, (used, used))[0]
                seen[process.pid] = (first, used)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU each process used during the run (a process that ended between samples
        counts up to its last sample)."""
        return {
            name: sum(last - first for first, last in by_pid.values())
            for name, by_pid in self.cpu.items()
        }

    def hop(self, group: str) -> tuple[int, float]:
        """Messages `group` committed in this run, and its sustained rate."""
        series = [(t, done.get(group, 0)) for t, done in self.samples]
        first, last = series[0][1], series[-1][1]
        if last == first:
            return 0, 0.0
        began = next(t for t, n in series if n > first)
        # The sample before the first that moved: the work began after it.
        before = max((t for t, n in series if t < began), default=0.0)
        ended = next(t for t, n in series if n == last)
        return last - first, (last - first) / max(ended - before, 1e-9)


def _load(
    stack: Stack,
    partner_ids: list[str],
    args: list[str],
    say: Callable[[str], None],
    limit: float,
) -> Run:
    run = Run()
    admin = stack.admin_settings()
    counting = stack.postgres.count_statements
    if counting:
        asyncio.run(_statements(stack.postgres.url(), reset=True))
    sent_before = asyncio.run(_deliveries_sent(stack.settings.database_url))
    simulator = stack.simulator(args)
    run.sample_cpu(_processes(stack, simulator.pid))
    started = time.monotonic()
    while True:
        try:
            backlog: Backlog = asyncio.run(measure_backlog(admin, partner_ids))
        except KafkaError:  # a group's coordinator not chosen yet, at the start
            time.sleep(1.0)
            continue
        now = time.monotonic() - started
        run.samples.append((now, dict(backlog.done)))
        run.intake_waiting.append(backlog.lag.get("intake", 0))
        for name, rss in stack.rss().items():
            run.peak_rss[name] = max(run.peak_rss.get(name, 0), rss)
        run.sample_cpu(_processes(stack, simulator.pid))
        for event in stack.supervisor.poll():
            say(event)
        finished = simulator.poll() is not None
        if finished and simulator.returncode != 0:
            tail = (stack.logs / "simulator.log").read_text(errors="replace").strip()[-1500:]
            raise RuntimeError(f"the simulator exited with code {simulator.returncode}:\n{tail}")
        if finished and backlog.waiting == 0:
            break
        if finished and run.stuck_since is not None and backlog.waiting == run.stuck_waiting:
            if now - run.stuck_since > STUCK_SECONDS:
                # Nothing moves: what is left will not go by waiting (it is reported).
                run.left = backlog
                break
        else:
            run.stuck_since, run.stuck_waiting = now, backlog.waiting
        if now > limit:
            simulator.kill()
            raise RuntimeError(f"the stack did not drain within {limit:.0f} s: {backlog}")
        time.sleep(1.0)
    run.seconds = time.monotonic() - started
    run.deliveries_sent = asyncio.run(_deliveries_sent(stack.settings.database_url)) - sent_before
    if counting:
        run.statements = asyncio.run(_statements(stack.postgres.url()))
    return run


async def _statements(url: str, reset: bool = False) -> dict[str, tuple[int, float]]:
    """Statements run and milliseconds spent executing them, by service (its database
    role), since the last reset; a reset clears them."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if reset:
            await conn.execute("SELECT pg_stat_statements_reset()")
            return {}
        rows = await conn.fetch(
            "SELECT r.rolname AS role, sum(s.calls) AS calls, sum(s.total_exec_time) AS ms"
            " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
            " WHERE r.rolname LIKE 'vs\\_%' GROUP BY r.rolname ORDER BY ms DESC"
        )
        return {r["role"].removeprefix("vs_"): (int(r["calls"]), float(r["ms"])) for r in rows}
    finally:
        await conn.close()


def _left(run: Run) -> dict[str, int]:
    """What still waited when nothing moved any more, where it waited."""
    if run.left is None:
        return {}
    left = run.left
    return {
        **{f"lag {group}": n for group, n in left.lag.items() if n},
        **{f"outbox {schema}": n for schema, n in left.outbox.items() if n},
        **({"pending lifecycle notices": left.pending_lifecycle} if left.pending_lifecycle else {}),
    }


def _processes(stack: Stack, simulator: int) -> dict[str, int | None]:
    kafka, postgres = stack.kafka.process, stack.postgres.process
    return {
        **{name: stack.supervisor.processes[name].pid for name in SERVICES},
        "simulator (partner producers)": simulator,
        "kafka": kafka.pid if kafka else None,
        "postgresql": postgres.pid if postgres else None,
    }


async def _deliveries_sent(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM notification.deliveries WHERE state='sent'")
        )
    finally:
        await conn.close()


def backlog(
    stack: Stack, partner_ids: list[str], rows: int, rate: float, say: Callable[[str], None]
) -> dict[str, Any]:
    """`rows` registrations sent at `rate` a second (above what the stack takes, so a
    backlog builds); each hop's rate and each service's memory."""
    run = _load(
        stack,
        partner_ids,
        ["--rate", f"{rate:g}", "--count", str(rows), "--families", "2200", "--at-risk", "9000",
         "--seed", "1"],
        say,
        limit=max(600.0, rows / 20),
    )  # fmt: skip
    hops = {
        name: dict(zip(("messages", "per_second"), run.hop(name), strict=True)) for name in HOPS
    }
    return {
        "rows": rows,
        "seconds": run.seconds,
        "end_to_end_per_second": hops["intake"]["messages"] / run.seconds,
        "hops": hops,
        "deliveries_sent": run.deliveries_sent,
        "left_waiting": _left(run),
        "peak_rss_mib": {name: rss / MIB for name, rss in sorted(run.peak_rss.items())},
        # Where the two cores went: CPU milliseconds per registration, by process.
        "cpu_ms_per_row": {
            name: 1000 * seconds / max(hops["intake"]["messages"], 1)
            for name, seconds in sorted(run.cpu_seconds().items(), key=lambda kv: -kv[1])
        },
        "statements_per_row": _per_row(run, hops["intake"]["messages"]),
    }


def _per_row(run: Run, rows: float) -> dict[str, tuple[float, float]]:
    """Each service's statements and their execution milliseconds per registration."""
    return {
        name: (calls / max(rows, 1), ms / max(rows, 1))
        for name, (calls, ms) in run.statements.items()
    }


def steady(
    stack: Stack, partner_ids: list[str], rate: float, seconds: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """A steady `rate` for `seconds`: intake-to-alert latency from the traces. The same
    families as the backlog's (the same seed): the synthetic BSN block is nearly used up
    by one population, so another seed's would make parents of its children, and join
    every family into one."""
    traces = stack.data / "traces.jsonl"
    skip = traces.stat().st_size if traces.exists() else 0
    run = _load(
        stack,
        partner_ids,
        ["--rate", f"{rate:g}", "--count", str(int(rate * seconds)), "--families", "2200",
         "--at-risk", "9000", "--seed", "1"],
        say,
        limit=seconds + 600.0,
    )  # fmt: skip
    time.sleep(6)  # the services' span processors export every five seconds
    latencies, steps = _intake_to_alert(traces, skip)
    return {
        "rate": rate,
        "seconds": seconds,
        "alerts_traced": len(latencies),
        "left_waiting": _left(run),
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * _percentile(latencies, 0.99) if latencies else None,
        "steps_p50_ms": {
            step: 1000 * statistics.median(values) for step, values in steps.items() if values
        },
        # Registrations waiting on the partners' topics, at the worst sample.
        "intake_waiting_max": max(run.intake_waiting, default=0),
        "peak_rss_mib": {name: rss / MIB for name, rss in sorted(run.peak_rss.items())},
    }


def _intake_to_alert(traces: Path, skip: int) -> tuple[list[float], dict[str, list[float]]]:
    """Seconds from intake taking a signal to the last alert of it stored, per trace; and
    the same time in steps: until matching takes it, until notification takes the match,
    notification's own work."""
    began: dict[str, int] = {}
    taken: dict[str, dict[str, int]] = {"matching": {}, "notification": {}}
    alerted: dict[str, int] = {}
    with traces.open("rb") as spans:
        spans.seek(skip)
        for line in spans:
            try:
                span = json.loads(line)
            except ValueError:
                continue  # a line cut by a service still writing
            trace = span["trace_id"]
            service = span["service"]
            if service == "intake" and span["name"] == "intake: partner message":
                began[trace] = span["start"]
            elif service in taken and span["kind"] == "CONSUMER":
                first = taken[service].get(trace)
                taken[service][trace] = (
                    span["start"] if first is None else min(first, span["start"])
                )
                if service == "notification":
                    alerted[trace] = max(alerted.get(trace, 0), span["end"])
    done = [t for t in alerted if t in began and t in taken["matching"]]
    steps = {
        "to matching": [(taken["matching"][t] - began[t]) / 1e9 for t in done],
        "to notification": [(taken["notification"][t] - taken["matching"][t]) / 1e9 for t in done],
        "in notification": [(alerted[t] - taken["notification"][t]) / 1e9 for t in done],
    }
    return sorted((alerted[t] - began[t]) / 1e9 for t in done), steps


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(result: dict[str, Any], ceilings: dict[str, float] | None) -> str:
    """The table for the README: per hop its rate and its share of the raw ceiling."""
    consume = (ceilings or {}).get("consume_commit_per_second")
    lines = [
        f"{result['rows']:,} rows sent by the partners, {result['hops']['intake']['messages']:,} "
        "of them new registrations (a row a partner had sent already is not sent again), "
        f"end to end in {result['seconds']:.0f} s: {result['end_to_end_per_second']:,.0f}/s",
        "| hop | messages | sustained /s | of the consume ceiling | peak RSS |",
        "|---|---|---|---|---|",
    ]
    for name, hop in result["hops"].items():
        share = f"{hop['per_second'] / consume:.1%}" if consume else "-"
        rss = result["peak_rss_mib"].get(name, 0.0)
        lines.append(
            f"| {name} | {hop['messages']:,} | {hop['per_second']:,.0f} | {share} | {rss:.0f} MiB |"
        )
    lines.append(
        f"| pseudonymiser | | | | {result['peak_rss_mib'].get('pseudonymiser', 0.0):.0f} MiB |"
    )
    if result["left_waiting"]:
        lines.append(f"never drained: {result['left_waiting']}")
    lines.append(
        "CPU per registration: "
        + ", ".join(f"{name} {ms:.1f} ms" for name, ms in result["cpu_ms_per_row"].items())
    )
    if result["statements_per_row"]:
        lines.append(
            "PostgreSQL statements per registration (executing): "
            + ", ".join(
                f"{name} {calls:.1f} ({ms:.2f} ms)"
                for name, (calls, ms) in result["statements_per_row"].items()
            )
        )
    return "\n".join(lines)
