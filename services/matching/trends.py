"""Wijk trends for collective prevention: pure rules. Per wijk x theme and ISO week, the
number of distinct children; a trend when this week rises clearly above the wijk's own
baseline; cells under k never shown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from shared.policy import Policy

# Below this the baseline is taken as this: a theme new to a wijk still needs k children.
MIN_BASELINE = 1.0


@dataclass(frozen=True)
class Trend:
    count: int
    baseline: float
    p_value: float
    test: str


def window_of(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def monday_of(window: str) -> date:
    year, week = window.split("-W")
    return date.fromisocalendar(int(year), int(week), 1)


def previous_windows(window: str, n: int) -> list[str]:
    start = monday_of(window)
    return [window_of(start - timedelta(weeks=i)) for i in range(1, n + 1)]


def poisson_tail(count: int, mean: float) -> float:
    """P(X >= count) for X ~ Poisson(mean)."""
    if count <= 0:
        return 1.0
    term = math.exp(-mean)
    below = term
    for i in range(1, count):
        term *= mean / i
        below += term
    return max(0.0, 1.0 - below)


def as_shown(count: int, k: int) -> float:
    """A past week as the baseline may count it: as shown when at least k, else the middle
    of what it could have been (0 to k-1). The baseline and the p-value are published,
    and either would give back the total of the weeks under k if those counted as is."""
    return float(count) if count >= k else (k - 1) / 2


def detect(count: int, baseline_counts: Sequence[int], policy: Policy) -> Trend | None:
    """A trend when the window's count is at least k and improbably high against the mean
    of the previous windows, each as it may be shown (one-sided Poisson test at the
    policy's alpha)."""
    k = policy.aggregates.k
    if count < k:
        return None
    weeks = [as_shown(c, k) for c in baseline_counts]
    mean = max(MIN_BASELINE, sum(weeks) / max(1, len(weeks)))
    p = poisson_tail(count, mean)
    if p >= policy.aggregates.alpha:
        return None
    test = (
        f"one-sided Poisson: P(X >= {count} | mean {mean:.2f} over "
        f"{len(baseline_counts)} weeks) = {p:.2e} < alpha {policy.aggregates.alpha}"
    )
    return Trend(count, mean, p, test)


def shown(count: int, policy: Policy) -> int | None:
    """A cell's count as it may be shown: None (suppressed) under k."""
    return count if count >= policy.aggregates.k else None
