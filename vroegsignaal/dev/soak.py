"""The soak (`make soak`): the whole stack on this machine under a steady load from the
simulated municipality (every partner through the real partner producer) for a long
time, sampled every minute: each service's resident memory, each consumer group's lag,
each service's outbox, the lifecycle notices and deliveries waiting. It fails when a
service's memory grows more than 10% after the warm-up, when any backlog keeps growing
(the stack does not keep up, or leaks work), when the load could not be held, or when
the stack does not drain once the load stops.

`python -m vroegsignaal.dev.soak --rate 50 --minutes 30`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka.errors import KafkaError

from vroegsignaal.dev.harness import Backlog, Stack, measure_backlog, running
from vroegsignaal.services import SERVICES

MIB = 1024 * 1024
STARTUP = 15.0  # seconds the simulator may take to start before its load begins


@dataclass(frozen=True)
class Plan:
    rate: float = 50.0  # signals per second
    minutes: int = 30
    warmup_minutes: int = 5  # memory is compared with its size at the end of the warm-up
    rss_growth: float = 0.10  # the most a service's memory may grow after the warm-up
    growth_seconds: float = 10.0  # a backlog growing by more than this much load fails
    drain_seconds: float = 600.0
    # The synthetic BSN block holds 9,091 valid numbers (four per family at most): about
    # 2,900 children, every one of them drawing signals alike (no small at-risk group
    # whose matches would grow without bound).
    families: int = 2_200
    at_risk: int = 9_000
    seed: int = 1
    sample_seconds: float = 60.0


@dataclass(frozen=True)
class Sample:
    minute: float
    rss: dict[str, int]
    backlog: Backlog
    registrations: int
    alerts: int
    deliveries_sent: int


@dataclass
class Outcome:
    plan: Plan
    samples: list[Sample] = field(default_factory=list)
    sent: int = 0
    load_seconds: float = 0.0
    drain_seconds: float | None = None  # None: did not drain
    restarts: str = ""

    def series(self) -> dict[str, list[tuple[float, int]]]:
        """Every backlog over time: lag per group, outbox per service, waiting work."""
        found: dict[str, list[tuple[float, int]]] = {}
        for s in self.samples:
            points = {
                **{f"lag {g}": n for g, n in s.backlog.lag.items()},
                **{f"outbox {n}": v for n, v in s.backlog.outbox.items()},
                "lifecycle notices waiting": s.backlog.pending_lifecycle,
                "deliveries pending": s.backlog.deliveries_pending,
            }
            for name, value in points.items():
                found.setdefault(name, []).append((s.minute, value))
        return found

    def problems(self) -> list[str]:
        plan = self.plan
        found = []
        held = self.sent / self.load_seconds if self.load_seconds else 0.0
        if not self.load_seconds or self.load_seconds > self.sent / plan.rate * 1.02 + STARTUP:
            found.append(
                f"the load was not held: {held:.1f} signals/s against {plan.rate:g} "
                "(the simulator is the bottleneck, not the stack; see logs/simulator.log)"
            )
        after = [s for s in self.samples if s.minute >= plan.warmup_minutes]
        if len(after) < 2:
            found.append("too few samples after the warm-up to judge; run longer")
            return found
        for name in SERVICES:
            base = after[0].rss[name]
            peak = max(s.rss[name] for s in after)
            if base and peak > base * (1 + plan.rss_growth):
                found.append(
                    f"{name}'s memory grew {100 * (peak / base - 1):.0f}% after the warm-up "
                    f"({base / MIB:.0f} -> {peak / MIB:.0f} MiB)"
                )
        allowed = plan.rate * plan.growth_seconds
        for name, points in self.series().items():
            window = [(m, v) for m, v in points if m >= plan.warmup_minutes]
            grew = growth(window)
            if grew > allowed:
                found.append(
                    f"{name} keeps growing: {grew:.0f} more over the run after the warm-up "
                    f"(more than {plan.growth_seconds:g} s of load)"
                )
        if self.drain_seconds is None:
            found.append(f"the stack did not drain within {plan.drain_seconds:.0f} s of the end")
        return found

    def table(self) -> str:
        head = ["min", *(f"{n} MiB" for n in SERVICES), "lag", "outbox", "lifecycle"]
        head += ["deliveries pending", "registrations", "alerts"]
        rows = [head]
        for s in self.samples:
            rows.append(
                [
                    f"{s.minute:.0f}",
                    *(f"{s.rss[n] / MIB:.0f}" for n in SERVICES),
                    str(sum(s.backlog.lag.values())),
                    str(sum(s.backlog.outbox.values())),
                    str(s.backlog.pending_lifecycle),
                    str(s.backlog.deliveries_pending),
                    str(s.registrations),
                    str(s.alerts),
                ]
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join(
            "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows
        )

    def report(self) -> str:
        held = self.sent / self.load_seconds if self.load_seconds else 0.0
        drained = f"{self.drain_seconds:.0f} s" if self.drain_seconds is not None else "not drained"
        lines = [
            self.table(),
            "",
            f"signals sent                {self.sent} in {self.load_seconds:.0f} s "
            f"({held:.1f}/s with the simulator's start; asked {self.plan.rate:g}/s)",
            f"drained after the load in   {drained}",
            f"restarts                    {self.restarts or 'none'}",
        ]
        for name, points in self.series().items():
            window = [(m, v) for m, v in points if m >= self.plan.warmup_minutes]
            peak = max((v for _, v in points), default=0)
            lines.append(f"{name:<32} peak {peak:>7}  growth after warm-up {growth(window):>8.0f}")
        problems = self.problems()
        lines.append(
            "PASSED: memory flat, every backlog steady, drained"
            if not problems
            else "FAILED: " + "; ".join(problems)
        )
        return "\n".join(lines)

    def write_csv(self, path: Path) -> None:
        names = sorted(self.series())
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(
                ["minute", *(f"rss_mib_{n}" for n in SERVICES), *names, "registrations", "alerts"]
            )
            series = self.series()
            for i, s in enumerate(self.samples):
                writer.writerow(
                    [
                        f"{s.minute:.1f}",
                        *(f"{s.rss[n] / MIB:.1f}" for n in SERVICES),
                        *(series[n][i][1] for n in names),
                        s.registrations,
                        s.alerts,
                    ]
                )


def growth(points: list[tuple[float, int]]) -> float:
    """How much a backlog grew over the window, by its least-squares trend (one bad
    minute is noise; a backlog that keeps growing has a slope)."""
    if len(points) < 2:
        return 0.0
    minutes = [m for m, _ in points]
    values = [float(v) for _, v in points]
    if len(set(minutes)) < 2:
        return 0.0
    slope = statistics.linear_regression(minutes, values).slope
    return slope * (minutes[-1] - minutes[0])


async def counts(database_url: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return (
            await conn.fetchval("SELECT count(*) FROM matching.registrations"),
            await conn.fetchval("SELECT count(*) FROM notification.alerts"),
            await conn.fetchval(
                "SELECT count(*) FROM notification.deliveries WHERE state = 'sent'"
            ),
        )
    finally:
        await conn.close()


def sample(stack: Stack, partner_ids: list[str], minute: float) -> Sample | None:
    admin = stack.admin_settings()
    try:
        backlog = asyncio.run(measure_backlog(admin, partner_ids))
        registrations, alerts, sent = asyncio.run(counts(stack.settings.database_url))
    except (OSError, asyncpg.PostgresError, KafkaError):
        return None
    return Sample(minute, stack.rss(), backlog, registrations, alerts, sent)


def run(plan: Plan, data: Path, say: Callable[[str], None] = print) -> Outcome:
    outcome = Outcome(plan)

    def said(line: str) -> None:
        say(time.strftime("%H:%M:%S ") + line)

    with running(data) as stack:
        partner_ids = sorted(
            p.stem for p in stack.secrets.partner_config("x").parent.glob("*.yaml")
        )
        said(f"the stack is up; {plan.rate:g} signals/s for {plan.minutes} minutes")
        said(outcome.table().splitlines()[0])
        count = int(plan.rate * plan.minutes * 60)
        simulator = stack.simulator(
            ["--rate", f"{plan.rate:g}", "--count", str(count), "--families", str(plan.families),
             "--at-risk", str(plan.at_risk), "--seed", str(plan.seed)]
        )  # fmt: skip
        started = time.monotonic()
        next_sample = started + plan.sample_seconds
        while simulator.poll() is None:
            for event in stack.supervisor.poll():
                said(event)
            if time.monotonic() >= next_sample:
                next_sample += plan.sample_seconds
                taken = sample(stack, partner_ids, (time.monotonic() - started) / 60)
                if taken is not None:
                    outcome.samples.append(taken)
                    said(outcome.table().splitlines()[-1])
            time.sleep(0.5)
        outcome.load_seconds = time.monotonic() - started
        if simulator.returncode != 0:
            tail = (stack.logs / "simulator.log").read_text(errors="replace").strip()[-1500:]
            raise RuntimeError(f"the simulator exited with code {simulator.returncode}:\n{tail}")
        outcome.sent = count
        said("the load is over; waiting for the stack to drain")
        ended = time.monotonic()
        while time.monotonic() - ended < plan.drain_seconds:
            for event in stack.supervisor.poll():
                said(event)
            taken = sample(stack, partner_ids, (time.monotonic() - started) / 60)
            if taken is not None and taken.backlog.waiting == 0:
                outcome.drain_seconds = time.monotonic() - ended
                break
            if taken is not None and time.monotonic() >= next_sample:
                next_sample += plan.sample_seconds
                said(f"draining: {taken.backlog.waiting} still waiting")
            time.sleep(2)
        outcome.restarts = stack.supervisor.summary()
        return outcome


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=Plan.rate, help="signals per second")
    parser.add_argument("--minutes", type=int, default=Plan.minutes)
    parser.add_argument("--warmup", type=int, default=Plan.warmup_minutes, help="minutes")
    parser.add_argument("--csv", type=Path, help="write the samples here as well")
    args = parser.parse_args(argv)
    plan = Plan(rate=args.rate, minutes=args.minutes, warmup_minutes=args.warmup)
    with tempfile.TemporaryDirectory(prefix="vroegsignaal-soak-") as data:
        Path(data).chmod(0o755)
        outcome = run(plan, Path(data))
    print("\n" + outcome.report())
    if args.csv:
        outcome.write_csv(args.csv)
    raise SystemExit(1 if outcome.problems() else 0)


if __name__ == "__main__":
    main()
