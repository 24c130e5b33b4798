"""A service whose start fails (Kafka not there) stops, so that it is started again by
whoever supervises it (`dev up`, Kubernetes): it never hangs half-started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.e2e.conftest import service_env
from vroegsignaal.dev.stack.procs import free_port
from vroegsignaal.provision.secrets import Secrets

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("service", ["matching", "intake", "audit"])
def test_a_service_that_cannot_reach_kafka_exits_instead_of_hanging(
    settings: Settings, secrets: Secrets, tmp_path: Path, service: str
) -> None:
    env = service_env(settings, tmp_path / "traces.jsonl", secrets, service)
    env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = subprocess.run(
        [sys.executable, "-m", "vroegsignaal", "serve", service],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert started.returncode == 3  # uvicorn's "startup failed"
    out = started.stdout + started.stderr
    assert "cannot reach Kafka" in out and "Application startup failed" in out
