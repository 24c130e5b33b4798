"""The gauge of a partner's budget use reads today's share, and 0 once the day is over:
yesterday's 85% must not keep the alert firing after the budget renewed at midnight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from services.pseudonymiser.app import used_today


def gauge(partner: str) -> float | None:
    return REGISTRY.get_sample_value(
        "vroegsignaal_pseudonymiser_budget_used_ratio", {"partner": partner}
    )


def test_the_share_used_today_is_read_and_yesterdays_is_not() -> None:
    today = datetime.now(UTC).date()
    used_today("school-de-regenboog", today, 0.85)
    used_today("ggd-voorbeeldrade", today - timedelta(days=1), 0.9)
    assert gauge("school-de-regenboog") == 0.85
    assert gauge("ggd-voorbeeldrade") == 0.0
    used_today("ggd-voorbeeldrade", today, 0.1)
    assert gauge("ggd-voorbeeldrade") == 0.1
