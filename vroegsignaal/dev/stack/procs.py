"""Process plumbing for the local stack: ports, pid files, waiting and stopping."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil

from vroegsignaal.provision.errors import StackError


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_free_port(port: int, what: str, setting: str) -> None:
    if not port_is_free(port):
        owner = ""
        with contextlib.suppress(psutil.Error):
            for conn in psutil.net_connections("tcp"):
                if conn.laddr and conn.laddr.port == port and conn.pid:
                    owner = f" by {psutil.Process(conn.pid).name()} (pid {conn.pid})"
                    break
        raise StackError(
            f"port {port} for {what} is taken{owner}. Stop that program, run "
            f"'vroegsignaal dev down' if it is left from an earlier run, or set {setting}."
        )


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode}; see {log}:\n{tail(log)}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise StackError(f"{what} did not listen on port {port} within {timeout:.0f}s; see {log}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def write_pidfile(path: Path, pid: int) -> None:
    path.write_text(f"{pid}\n")


def stale_process(pidfile: Path, marker: str) -> psutil.Process | None:
    """The process a pid file names, if it still runs and its command line has `marker`."""
    try:
        pid = int(pidfile.read_text().split()[0])
        proc = psutil.Process(pid)
        if marker in " ".join(proc.cmdline()):
            return proc
    except (OSError, ValueError, psutil.Error):
        pass
    return None


def stop_process(
    proc: subprocess.Popen[bytes] | psutil.Process,
    timeout: float = 20.0,
    sig: signal.Signals = signal.SIGTERM,
) -> None:
    """`sig`, wait, then SIGKILL: the process and any children are gone afterwards."""
    try:
        ps = psutil.Process(proc.pid)
        children = ps.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for p in [ps, *children]:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(sig)
    _, alive = psutil.wait_procs([ps, *children], timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    if isinstance(proc, subprocess.Popen):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)


def run_checked(cmd: list[str], what: str, fix: str, **kwargs: object) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    except FileNotFoundError:
        raise StackError(f"{what}: {cmd[0]} not found. {fix}") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()[-12:]
        raise StackError(f"{what} failed (exit {done.returncode}). {fix}\n" + "\n".join(output))
    return str(done.stdout)
