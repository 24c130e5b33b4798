"""`vroegsignaal dev up` (what `make run` runs) supervises like Kubernetes: a service
killed with SIGKILL is restarted with backoff, the status says so, the stack goes on;
Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from vroegsignaal.dev.stack.procs import free_port

pytestmark = pytest.mark.e2e


class Output:
    """The stack's stdout, read as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if found := re.search(pattern, line):
                    return found
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines))


def test_dev_up_restarts_a_killed_service_and_goes_on(tmp_path: Path) -> None:
    ports = {
        name: free_port()
        for name in (
            "KAFKA", "KAFKA_CONTROLLER", "POSTGRES", "INTAKE", "MATCHING", "NOTIFICATION",
            "AUDIT", "PSEUDONYMISER", "ISSUER", "DEV_MAIL", "DESK",
        )
    }  # fmt: skip
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("VS_") and k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
        },
        **{f"VS_{name}_PORT": str(port) for name, port in ports.items()},
        "VS_DATA_DIR": str(tmp_path / "local"),
        "VS_PSEUDONYMISER_URL": f"http://127.0.0.1:{ports['PSEUDONYMISER']}",
        "VS_OIDC_ISSUER": f"http://127.0.0.1:{ports['ISSUER']}",
        "PYTHONUNBUFFERED": "1",
    }
    stack = subprocess.Popen(
        [sys.executable, "-m", "vroegsignaal", "dev", "up", "--rate", "5", "--bad-every", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    out = Output(stack)
    try:
        out.wait_for(r"vroegsignaal is running", timeout=240)
        out.wait_for(r"signals accepted [1-9]", timeout=120)
        # The partners' registration desk runs beside them, its page where it says.
        desk = out.wait_for(r"REGISTER\s+(\S+)", timeout=5).group(1)
        assert desk == f"http://127.0.0.1:{ports['DESK']}/registratie/"
        page = httpx.get(desk, timeout=5)
        assert page.status_code == 200 and 'id="child-bsn"' in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        intake = tmp_path / "local" / "run" / "intake.pid"
        killed = int(intake.read_text())
        os.kill(killed, signal.SIGKILL)
        out.wait_for(r"intake exited with code -9; restarting in 1 s", timeout=30)
        restarted = int(out.wait_for(r"intake restarted \(pid (\d+)\)", timeout=30).group(1))
        assert restarted != killed
        url = f"http://127.0.0.1:{ports['INTAKE']}/health/ready"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the restarted intake never became ready"
            time.sleep(0.5)
        out.wait_for(r"\| restarts: intake 1$", timeout=30)
        assert stack.poll() is None  # the stack went on
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        try:
            stack.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            raise
    assert "vroegsignaal: stopped" in "\n".join(out.lines)
