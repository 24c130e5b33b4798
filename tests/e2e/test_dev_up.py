"""`vroegsignaal dev up` (what `make run` runs), as a new user would use it: it starts
its own Kafka and PostgreSQL, shows matches within a minute, stops everything on Ctrl-C,
and keeps its data for the next start."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from vroegsignaal.stack.procs import free_port

pytestmark = pytest.mark.e2e

STATUS = re.compile(r"signals accepted (\d+).*matches (\d+) \| alerts (\d+)")


def dev_up(data_dir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vroegsignaal", "dev", "up", "--rate", "8", "--bad-every", "10"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class Output:
    """Collects a process's output lines on a thread, so waiting never blocks on a read."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        stream = proc.stdout
        self._reader = threading.Thread(
            target=lambda: [self.lines.put(x) for x in stream], daemon=True
        )
        self._reader.start()

    def until_matches(self, timeout: float) -> str:
        """Output up to the first status line that shows at least one match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            found = STATUS.search(line)
            if found and int(found.group(2)) > 0:
                return "".join(self.seen)
        raise AssertionError("no match appeared; output:\n" + "".join(self.seen))

    def rest(self, timeout: float) -> str:
        """Everything up to the end of the output (the process has exited)."""
        self._reader.join(timeout)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=90)


def processes_using(data_dir: Path) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            environ = proc.info["environ"] or {}
        except psutil.Error:
            continue
        if str(data_dir) in cmdline or environ.get("VS_DATA_DIR") == str(data_dir):
            found.append(f"{proc.info['pid']}: {cmdline[:120]}")
    return found


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """The stack's data folder, outside pytest's private temporary tree: PostgreSQL runs
    as its own system user when the tests run as root, and must reach it."""
    path = Path(tempfile.mkdtemp(prefix="vroegsignaal-devup-"))
    path.chmod(0o755)
    yield path / "local"
    shutil.rmtree(path, ignore_errors=True)


def test_make_run_shows_matches_and_stops_cleanly(data_dir: Path) -> None:
    issuer_port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL") and not k.startswith("VS_")
    }
    env.update(
        {
            "VS_DATA_DIR": str(data_dir),
            "VS_KAFKA_PORT": str(free_port()),
            "VS_KAFKA_CONTROLLER_PORT": str(free_port()),
            "VS_POSTGRES_PORT": str(free_port()),
            "VS_INTAKE_PORT": str(free_port()),
            "VS_MATCHING_PORT": str(free_port()),
            "VS_NOTIFICATION_PORT": str(free_port()),
            "VS_AUDIT_PORT": str(free_port()),
            "VS_DEV_MAIL_PORT": str(free_port()),
            "VS_ISSUER_PORT": str(issuer_port),
            "VS_OIDC_ISSUER": f"http://127.0.0.1:{issuer_port}",
        }
    )

    first = dev_up(data_dir, env)
    output = Output(first)
    try:
        output.until_matches(timeout=120)
        # The inbox is served, and the alerts reached the local SMTP server as e-mail.
        inbox = f"http://127.0.0.1:{env['VS_NOTIFICATION_PORT']}/inbox/"
        assert "Vroegsignaal" in httpx.get(inbox, timeout=5).text
        mail = data_dir / "mail"
        deadline = time.monotonic() + 30
        while not any((mail / "new").glob("*")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert any((mail / "new").glob("*")), "no e-mail reached the local SMTP server"
    finally:
        code = stop(first)
    text = output.rest(timeout=5)
    assert code == 0, text
    for where in ("/alerts/summary", "/inbox/", "/health/ready", "/metrics", "Ctrl-C", "stopped"):
        assert where in text
    assert processes_using(data_dir) == []
    accepted_first = max(int(m.group(1)) for m in STATUS.finditer(text))

    # The data survives a restart: counts go on from where they were.
    second = dev_up(data_dir, env)
    output = Output(second)
    try:
        text = output.until_matches(timeout=120)
    finally:
        code = stop(second)
    counts = [int(m.group(1)) for m in STATUS.finditer(text)]
    assert counts[-1] >= accepted_first > 0
    assert code == 0, output.rest(timeout=5)
    assert processes_using(data_dir) == []
