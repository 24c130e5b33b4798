"""How the soak judges its samples: memory that grows after the warm-up, a backlog with
a rising trend, a load that was not held and a stack that did not drain each fail the
run; a backlog that only goes up and down does not."""

from __future__ import annotations

from vroegsignaal.dev.harness import Backlog
from vroegsignaal.dev.soak import MIB, Outcome, Plan, Sample, growth
from vroegsignaal.services import SERVICES

PLAN = Plan(rate=50, minutes=12, warmup_minutes=2)


def outcome(
    lag: list[int],
    rss: list[float] | None = None,
    *,
    sent: int = 36_000,
    drained: float | None = 30.0,
) -> Outcome:
    rss = rss or [100.0] * len(lag)
    found = Outcome(PLAN, sent=sent, load_seconds=720.0, drain_seconds=drained)
    for minute, (waiting, mib) in enumerate(zip(lag, rss, strict=True), start=1):
        found.samples.append(
            Sample(
                minute=float(minute),
                rss={name: int(mib * MIB) for name in SERVICES},
                backlog=Backlog(lag={"matching": waiting}, outbox={"matching": 3}),
                registrations=minute * 3000,
                alerts=minute * 100,
                deliveries_sent=minute * 100,
            )
        )
    return found


def test_a_steady_run_passes_even_when_its_backlog_goes_up_and_down() -> None:
    steady = outcome([900, 40, 700, 30, 800, 20, 750, 35, 820, 25, 780, 30])
    assert steady.problems() == []
    assert "PASSED" in steady.report()


def test_a_backlog_that_keeps_growing_fails_and_is_named() -> None:
    growing = outcome([100 * n * n for n in range(1, 13)])
    problems = growing.problems()
    assert any(p.startswith("lag matching keeps growing") for p in problems)
    assert "FAILED" in growing.report()


def test_memory_growing_more_than_a_tenth_after_the_warm_up_fails() -> None:
    # Growth during the warm-up (imports, caches, pools) is not judged; after it, 15% is.
    rss = [60.0, 100.0] + [100.0 + 1.5 * n for n in range(10)]
    problems = outcome([10] * 12, rss).problems()
    assert any("memory grew 14%" in p for p in problems), problems
    assert outcome([10] * 12, [60.0, 100.0] + [105.0] * 10).problems() == []


def test_a_load_not_held_and_a_stack_not_drained_fail() -> None:
    problems = outcome([10] * 12, sent=20_000, drained=None).problems()
    assert any(p.startswith("the load was not held: 27.8 signals/s") for p in problems)
    assert any(p.startswith("the stack did not drain") for p in problems)


def test_growth_is_the_trend_over_the_window_not_its_last_point() -> None:
    assert growth([(1.0, 0), (2.0, 100), (3.0, 200)]) == 200.0
    assert growth([(1.0, 500), (2.0, 0), (3.0, 500), (4.0, 0)]) < 0
    assert growth([(1.0, 5)]) == 0.0
