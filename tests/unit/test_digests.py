"""When a worker's digest e-mail goes (at most one per interval, a new case sooner if
the policy says so), what it says (counts only), and a policy that cannot hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notification.channels import EmailChannel, digest_text
from services.notification.domain import digest_due
from shared.policy import DigestPolicy, Policy, PolicyError

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOURLY = DigestPolicy(interval_minutes=60, new_case_immediately=False, min_gap_minutes=5)
EAGER = DigestPolicy(interval_minutes=60, new_case_immediately=True, min_gap_minutes=5)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("last_sent", "new_case", "policy", "due"),
    [
        (None, False, HOURLY, True),  # never e-mailed: at once
        (ago(59), False, HOURLY, False),
        (ago(60), False, HOURLY, True),
        (ago(10), True, HOURLY, False),  # a new case waits for the hour without the rule
        (ago(10), True, EAGER, True),  # ... and goes after the gap with it
        (ago(4), True, EAGER, False),  # never within the gap
        (ago(10), False, EAGER, False),  # only a new case goes sooner
    ],
)
def test_a_digest_is_due(
    last_sent: datetime | None, new_case: bool, policy: DigestPolicy, due: bool
) -> None:
    assert digest_due(last_sent, new_case, NOW, policy) is due


def test_nothing_is_due_while_the_last_email_is_unsent() -> None:
    assert digest_due(ago(600), True, NOW, EAGER) is True
    assert digest_due(ago(600), True, NOW, EAGER, unsent=True) is False


def test_the_email_says_how_many_cases_changed_and_nothing_else() -> None:
    dutch, english = digest_text(3, 1)
    assert dutch == "In Vroegsignaal: 3 zaken zijn gewijzigd en 1 melding sinds ons vorige bericht."
    assert english == "In Vroegsignaal: 3 cases changed and 1 notice since our last message."
    assert digest_text(1, 0)[0] == "In Vroegsignaal: 1 zaak is gewijzigd sinds ons vorige bericht."
    channel = EmailChannel("localhost", 25, "vroegsignaal@voorbeeldrade.example", "https://inbox")
    body = channel.message("anna@voorbeeldrade.example", "d-1", 3, 1).get_content()
    assert "3 zaken zijn gewijzigd" in body and "https://inbox" in body
    assert "Open\nyour inbox to read them." in body  # the English below the Dutch, wrapped
    # A team lead's overview: past their period, a count and nothing more.
    dutch, english = digest_text(0, 0, 2)
    assert dutch == (
        "In Vroegsignaal: 2 punten op uw overzicht zijn over de termijn sinds ons vorige bericht."
    )
    assert (
        english
        == "In Vroegsignaal: 2 items on your overview past their period since our last message."
    )
    assert digest_text(1, 2, 1)[0] == (
        "In Vroegsignaal: 1 zaak is gewijzigd, 2 meldingen en 1 punt op uw overzicht is over"
        " de termijn sinds ons vorige bericht."
    )
    assert digest_text(0, 0)[0] == "Er staat iets nieuws voor u klaar in Vroegsignaal."


def test_a_gap_longer_than_the_interval_is_refused_with_the_fix() -> None:
    text = """
version: t
municipality: Testrade
authorised_categories: [school]
coordinating_categories: [school]
notification:
  digest: {interval_minutes: 30, min_gap_minutes: 45}
"""
    with pytest.raises(PolicyError, match="min_gap_minutes must not exceed"):
        Policy.parse(text)
