"""The local stack's supervisor, with real processes and a clock of its own: a process
that exits is started again after a backoff that grows, the status says so, and one
that keeps failing stops the stack naming its log."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from vroegsignaal.dev.stack.supervisor import CRASH_LOOP, CrashLoop, Process, Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def exits(code: int) -> Process:
    return subprocess.Popen([sys.executable, "-c", f"import sys; sys.exit({code})"])


def runs() -> Process:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def wait_exit(process: Process | None) -> None:
    assert process is not None
    process.wait(timeout=30)


def test_a_process_that_dies_is_restarted_after_a_growing_backoff() -> None:
    clock = Clock()
    supervisor = Supervisor(clock)
    started: list[Process] = []

    def start() -> Process:
        started.append(exits(3) if len(started) < 3 else runs())
        return started[-1]

    supervisor.add("intake", start, "logs/intake.log")
    steady = supervisor.add("matching", runs, "logs/matching.log")
    try:
        wait_exit(started[0])
        assert supervisor.poll() == ["intake exited with code 3; restarting in 1 s"]
        assert supervisor.poll() == []  # not before its backoff has passed
        clock.now += 1
        (said,) = supervisor.poll()
        assert said == f"intake restarted (pid {started[1].pid})"
        wait_exit(started[1])
        assert supervisor.poll() == ["intake exited with code 3; restarting in 2 s"]
        clock.now += 2
        supervisor.poll()
        wait_exit(started[2])
        assert supervisor.poll() == ["intake exited with code 3; restarting in 4 s"]
        assert supervisor.summary() == "restarts: intake 3 (down)"
        clock.now += 4
        supervisor.poll()
        assert started[3].poll() is None  # the fourth start stays up
        assert supervisor.summary() == "restarts: intake 3"
        assert dict(supervisor.running()) == {"intake": started[3], "matching": steady}
    finally:
        for _, process in supervisor.running():
            process.kill()


def test_a_process_that_keeps_failing_stops_the_stack_naming_its_log() -> None:
    clock = Clock()
    supervisor = Supervisor(clock)
    supervisor.add("audit", lambda: exits(1), "logs/audit.log")
    with pytest.raises(
        CrashLoop, match=r"audit exited 6 times within 300 s .* see logs/audit\.log"
    ):
        for _ in range(CRASH_LOOP + 1):
            deadline = time.monotonic() + 30
            while not any("exited" in e for e in supervisor.poll()):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            clock.now += 31  # past any backoff, well within the crash window
            supervisor.poll()


def test_restarts_long_ago_do_not_count_towards_a_crash_loop() -> None:
    clock = Clock()
    supervisor = Supervisor(clock)
    supervisor.add("notification", lambda: exits(1), "logs/notification.log")
    for _ in range(CRASH_LOOP * 2):
        deadline = time.monotonic() + 30
        while not any("exited" in e for e in supervisor.poll()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        clock.now += 301  # each failure long after the one before
        supervisor.poll()
