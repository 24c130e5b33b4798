"""The infrastructure a stack needs: local Kafka and PostgreSQL, or external ones.

`KAFKA_BOOTSTRAP_SERVERS` / `DATABASE_URL` in the environment point at external
infrastructure, and then nothing of that kind is started here.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vroegsignaal.dev.stack.kafka import KafkaNode
from vroegsignaal.dev.stack.postgres import PostgresNode
from vroegsignaal.dev.stack.procs import stale_process, stop_process


@dataclass(frozen=True)
class Infrastructure:
    kafka_bootstrap_servers: str
    database_url: str
    kafka_local: bool
    postgres_local: bool
    # The local broker's operator (SCRAM): None when Kafka is external.
    kafka_admin_password: str | None = None
    # What was started here, to watch: (name, process, its log).
    started: tuple[tuple[str, subprocess.Popen[bytes], Path], ...] = ()


@dataclass(frozen=True)
class Ports:
    kafka: int = 19092
    kafka_controller: int = 19093
    postgres: int = 15432

    @classmethod
    def from_env(cls) -> Ports:
        return cls(
            kafka=int(os.environ.get("VS_KAFKA_PORT", cls.kafka)),
            kafka_controller=int(os.environ.get("VS_KAFKA_CONTROLLER_PORT", cls.kafka_controller)),
            postgres=int(os.environ.get("VS_POSTGRES_PORT", cls.postgres)),
        )


@contextlib.contextmanager
def infrastructure(
    data_dir: Path, ports: Ports, *, kafka_admin_password: str, heap: str = "512m"
) -> Iterator[Infrastructure]:
    """Start what is not external, yield where everything is, stop what was started.
    A local broker's operator logs in with `kafka_admin_password`."""
    kafka_env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    db_env = os.environ.get("DATABASE_URL")
    started: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    with contextlib.ExitStack() as stack:
        if db_env:
            database_url = db_env
        else:
            pg = PostgresNode(data_dir / "postgres", ports.postgres)
            stack.callback(pg.stop)
            pg.start()
            database_url = pg.url()
            assert pg.process is not None
            started.append(("PostgreSQL", pg.process, pg.data_dir / "postgres.log"))
        if kafka_env:
            bootstrap = kafka_env
        else:
            kafka = KafkaNode(
                data_dir / "kafka",
                ports.kafka,
                ports.kafka_controller,
                admin_password=kafka_admin_password,
                heap=heap,
            )
            stack.callback(kafka.stop)
            kafka.start()
            bootstrap = kafka.bootstrap_servers
            assert kafka.process is not None
            started.append(("Kafka", kafka.process, kafka.data_dir / "server.log"))
        yield Infrastructure(
            bootstrap,
            database_url,
            not kafka_env,
            not db_env,
            None if kafka_env else kafka_admin_password,
            tuple(started),
        )


def stop_leftovers(data_dir: Path) -> list[str]:
    """Stop processes a killed run left behind, found through their pid files."""
    stopped = []
    # Services first, so they can still flush their outboxes to Kafka.
    services_dir = data_dir / "run"
    for pidfile in sorted(services_dir.glob("*.pid")):
        proc = stale_process(pidfile, "vroegsignaal")
        if proc is not None:
            stop_process(proc)
            stopped.append(f"{pidfile.stem} (pid {proc.pid})")
        pidfile.unlink(missing_ok=True)
    kafka = stale_process(data_dir / "kafka" / "kafka.pid", "kafka.Kafka")
    if kafka is not None:
        stop_process(kafka, timeout=30)
        stopped.append(f"Kafka (pid {kafka.pid})")
    (data_dir / "kafka" / "kafka.pid").unlink(missing_ok=True)
    pg_pid = data_dir / "postgres" / "pgdata" / "postmaster.pid"
    postgres = stale_process(pg_pid, "postgres")
    if postgres is not None:
        import signal

        stop_process(postgres, timeout=30, sig=signal.SIGINT)
        stopped.append(f"PostgreSQL (pid {postgres.pid})")
    return stopped
