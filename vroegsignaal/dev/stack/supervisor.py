"""Keeping the local stack's processes running, as Kubernetes keeps pods: a process that
exits is started again after a backoff that grows with each restart (1, 2, 4 ... 30 s),
and one that keeps failing (CRASH_LOOP restarts within CRASH_WINDOW seconds) stops the
stack with the name of its log, rather than restarting for ever."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
CRASH_LOOP = 5
CRASH_WINDOW = 300.0

Process = subprocess.Popen[bytes]


class CrashLoop(RuntimeError):
    """A process failed too often in too short a time; the message says which and where
    its log is."""


@dataclass
class Supervised:
    name: str
    start: Callable[[], Process]
    log: str
    process: Process | None = None
    restarts: list[float] = field(default_factory=list)  # when each restart was scheduled
    due: float | None = None  # when the pending restart is due
    last_exit: int | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class Supervisor:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.processes: dict[str, Supervised] = {}

    def add(self, name: str, start: Callable[[], Process], log: str) -> Process:
        supervised = Supervised(name, start, log, process=start())
        self.processes[name] = supervised
        assert supervised.process is not None
        return supervised.process

    def poll(self) -> list[str]:
        """Restart what exited once its backoff has passed; say what happened. Raises
        CrashLoop for a process that keeps failing."""
        now = self._clock()
        said = []
        for p in self.processes.values():
            if p.process is not None and p.process.poll() is not None:
                p.last_exit = p.process.returncode
                p.process = None
                p.restarts = [t for t in p.restarts if now - t < CRASH_WINDOW] + [now]
                if len(p.restarts) > CRASH_LOOP:
                    raise CrashLoop(
                        f"{p.name} exited {len(p.restarts)} times within "
                        f"{CRASH_WINDOW:.0f} s (last with code {p.last_exit}): it is "
                        f"crash-looping; see {p.log}"
                    )
                delay = BACKOFF[min(len(p.restarts), len(BACKOFF)) - 1]
                p.due = now + delay
                said.append(f"{p.name} exited with code {p.last_exit}; restarting in {delay:.0f} s")
            if p.process is None and p.due is not None and now >= p.due:
                p.process = p.start()
                p.due = None
                said.append(f"{p.name} restarted (pid {p.process.pid})")
        return said

    def summary(self) -> str:
        """Restarts so far, for the status line ('' when none)."""
        counted = [
            f"{p.name} {len(p.restarts)}" + (" (down)" if p.process is None else "")
            for p in self.processes.values()
            if p.restarts
        ]
        return "restarts: " + ", ".join(counted) if counted else ""

    def running(self) -> list[tuple[str, Process]]:
        return [(p.name, p.process) for p in self.processes.values() if p.process is not None]
