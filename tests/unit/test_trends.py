"""Wijk trends: the Poisson test, the baseline windows, and k suppression."""

from __future__ import annotations

from datetime import date

import pytest

from services.matching.trends import detect, poisson_tail, previous_windows, shown, window_of
from shared.policy import Policy

POLICY = Policy.parse(
    """
version: t-1
municipality: Voorbeeldrade
authorised_categories: [jgz]
coordinating_categories: [jgz]
aggregates: {k: 10, baseline_windows: 4, alpha: 0.01}
"""
)


def test_poisson_tail_matches_known_values() -> None:
    assert poisson_tail(0, 3.0) == 1.0
    assert poisson_tail(1, 2.0) == pytest.approx(1 - 0.1353352832, rel=1e-9)
    assert poisson_tail(10, 3.0) == pytest.approx(0.0011024, rel=1e-3)


def test_a_clear_rise_above_the_baseline_is_a_trend() -> None:
    trend = detect(14, [3, 4, 2, 3], POLICY)
    assert trend is not None
    assert trend.baseline == 4.5  # weeks under k count as the middle of 0..k-1
    assert trend.p_value < 0.01
    assert "Poisson" in trend.test


def test_the_published_baseline_gives_back_nothing_of_the_weeks_under_k() -> None:
    """Baseline and p-value are published: two histories that differ only in weeks
    under k (never shown) give the same ones."""
    quiet = detect(14, [0, 1, 0, 2, 12, 10, 0, 3], POLICY)
    busier = detect(14, [9, 8, 7, 9, 12, 10, 5, 9], POLICY)
    assert quiet is not None and busier is not None
    assert (quiet.baseline, quiet.p_value) == (busier.baseline, busier.p_value)
    assert quiet.baseline == (6 * 4.5 + 12 + 10) / 8


def test_an_ordinary_week_is_no_trend() -> None:
    assert detect(12, [10, 11, 12, 13], POLICY) is None


def test_fewer_than_k_children_are_never_a_trend_and_never_shown() -> None:
    assert detect(9, [0, 0, 0, 0], POLICY) is None
    assert shown(9, POLICY) is None
    assert shown(10, POLICY) == 10


def test_windows_are_iso_weeks_across_the_year_end() -> None:
    assert window_of(date(2026, 1, 1)) == "2026-W01"
    assert previous_windows("2026-W02", 3) == ["2026-W01", "2025-W52", "2025-W51"]
