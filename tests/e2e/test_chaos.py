"""The short form of the chaos suite (`make chaos` is the long one): partner rows through
the real producer while every service is killed with SIGKILL, Kafka and PostgreSQL each
killed and started again; nothing may be lost, duplicated or missing from the audit log,
and the log must verify."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vroegsignaal.dev.chaos import Plan, run

pytestmark = pytest.mark.e2e


@pytest.fixture
def data() -> Iterator[Path]:
    """The stack's own folder under /tmp: the embedded PostgreSQL may run as another user,
    who cannot enter pytest's folders (pytest keeps them its owner's only)."""
    folder = Path(tempfile.mkdtemp(prefix="vroegsignaal-chaos-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_nothing_is_lost_or_duplicated_when_everything_is_killed(data: Path) -> None:
    lines: list[str] = []
    result = run(Plan(rows=180, kills=1, settle_seconds=240), data, say=lines.append)
    report = result.report() + "\n" + "\n".join(lines)
    assert result.rows_sent == 180
    # The chaos did happen: each service was killed and came back, Kafka and PostgreSQL
    # were restarted.
    for service in ("intake", "matching", "notification", "audit", "pseudonymiser"):
        assert any(f"{service} restarted" in line for line in lines), report
    assert any("restart Kafka" in line for line in lines), report
    assert any("restart PostgreSQL" in line for line in lines), report
    assert result.problems() == [], report
    assert result.registrations == 180
    assert result.audit_verify == "ok"
