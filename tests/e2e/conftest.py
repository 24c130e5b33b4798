"""The four services as real processes, started through the `vroegsignaal serve` entrypoint."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from shared.contracts import Topics
from shared.kafka import create_broker
from shared.settings import Settings
from vroegsignaal.dev.desk import provision_desk_database, write_desk_config
from vroegsignaal.dev.stack.procs import free_port
from vroegsignaal.partner.config import PartnerConfig
from vroegsignaal.partner.producer import PartnerProducer
from vroegsignaal.provision.database import login_of
from vroegsignaal.provision.kafka_access import ADMIN
from vroegsignaal.provision.secrets import Secrets
from vroegsignaal.services import SERVICES


def service_env(
    settings: Settings, trace_file: Path, secrets: Secrets, process: str
) -> dict[str, str]:
    """What `dev up` gives a process: the infrastructure, and only its own secrets."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("VS_") and k not in ("DATABASE_URL", "KEYSTORE_DATABASE_URL")
    }
    env.update(secrets.env_for(process))
    # Each service logs in as its own role, never as the tests' administrator.
    env.update(login_of(settings.database_url, process, secrets.database_passwords()))
    if settings.kafka_sasl_username == ADMIN and process in SERVICES:
        # On the local broker each service logs in as itself, never as the operator.
        env.update(secrets.kafka_env(process))
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "VS_TOPIC_PREFIX": settings.topic_prefix,
            "VS_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "VS_INTAKE_PORT": str(settings.intake_port),
            "VS_MATCHING_PORT": str(settings.matching_port),
            "VS_NOTIFICATION_PORT": str(settings.notification_port),
            "VS_AUDIT_PORT": str(settings.audit_port),
            "VS_PSEUDONYMISER_PORT": str(settings.pseudonymiser_port),
            "VS_ISSUER_PORT": str(settings.issuer_port),
            "VS_OIDC_ISSUER": settings.oidc_issuer,
            "VS_DELIVERY_INTERVAL_SECONDS": "0.2",
            "VS_DIGEST_CHECK_SECONDS": "0.5",
            "VS_DELIVERY_BASE_SECONDS": "0.2",
            "VS_OUTBOX_POLL_SECONDS": str(settings.outbox_poll_seconds),
            "VS_GRACEFUL_TIMEOUT_SECONDS": str(settings.graceful_timeout_seconds),
            "VS_TRACE_FILE": str(trace_file),
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            # Data keys are cached this long in each process: the window after a
            # shredding in which another process may still open the subject's fields.
            "VS_KEYSTORE_CACHE_SECONDS": "1",
            "VS_RETENTION_INTERVAL_SECONDS": "0.5",
            "VS_THEME_COUNTS_RELEASE_SECONDS": "1",
            "VS_THEME_COUNTS_MAX_HOLD_SECONDS": "1",
            "VS_AUDIT_HEAD_INTERVAL_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Until the process at `url` answers /health/ready; fail with its log if it exits or
    takes longer than `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{url} did not get ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture
def extra_env() -> dict[str, dict[str, str]]:
    """More environment per process (a test module overrides this fixture)."""
    return {}


@pytest.fixture
def services(
    settings: Settings, secrets: Secrets, tmp_path: Path, extra_env: dict[str, dict[str, str]]
) -> Iterator[dict[str, str]]:
    """Start the local OIDC issuer and every service; yield name -> base URL; stop each
    with SIGTERM, as Kubernetes does, and check that it shut down gracefully (uvicorn
    re-raises the signal afterwards, so the exit status is the signal's)."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}
    urls: dict[str, str] = {}
    commands = {"issuer": ["issuer", "serve"]} | {name: ["serve", name] for name in SERVICES}
    for name, command in commands.items():
        logs[name] = tmp_path / f"{name}.log"
        env = service_env(settings, tmp_path / "traces.jsonl", secrets, name)
        env.update(extra_env.get(name, {}))
        with logs[name].open("wb") as out:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "vroegsignaal", *command],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        port = settings.issuer_port if name == "issuer" else SERVICES[name].port_of(settings)
        urls[name] = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        for name, url in urls.items():
            while True:
                if procs[name].poll() is not None:
                    pytest.fail(f"{name} exited early:\n{logs[name].read_text()[-3000:]}")
                probe = "/.well-known/openid-configuration" if name == "issuer" else "/health/ready"
                try:
                    if httpx.get(f"{url}{probe}", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} not ready:\n{logs[name].read_text()[-3000:]}")
                time.sleep(0.2)
        yield urls
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in procs.items():
            try:
                codes[name] = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = "killed"
        unclean = {
            n: c
            for n, c in codes.items()
            if c not in (0, -signal.SIGTERM)
            or (n != "issuer" and "shut down gracefully" not in logs[n].read_text())
        }
        tails = {n: logs[n].read_text()[-2000:] for n in unclean}
        assert not unclean, f"services did not stop cleanly: {unclean}; their logs end: {tails}"


Producers = Callable[[str], PartnerProducer]


def partner_config(secrets: Secrets, settings: Settings, partner: str) -> PartnerConfig:
    """A simulated partner's configuration, pointed at this test run's pseudonymiser."""
    config = PartnerConfig.load(secrets.partner_config(partner))
    access = config.pseudonymiser.model_copy(update={"url": settings.pseudonymiser_url})
    return config.model_copy(update={"pseudonymiser": access})


@pytest.fixture
async def partners(settings: Settings, secrets: Secrets) -> AsyncIterator[Producers]:
    """The partner producer of any partner of the test run, as a partner runs it: one
    broker and one HTTP client, started for the test and stopped after it."""
    topics = Topics(settings.topic_prefix)
    broker, _ = create_broker(
        settings, client_id="partners", tracer_provider=TracerProvider(),
        registry=CollectorRegistry(),
    )  # fmt: skip
    await broker.start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:

            def producer(partner: str) -> PartnerProducer:
                config = partner_config(secrets, settings, partner)
                return PartnerProducer(config, broker, topics, http)

            yield producer
    finally:
        await broker.stop()


@pytest.fixture
def desk_port() -> int:
    return free_port()


@dataclass(frozen=True)
class Desk:
    url: str
    log: Path
    database_url: str


def start(log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`vroegsignaal partner desk`, its output in `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vroegsignaal", "partner", "desk"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
async def desk(
    settings: Settings,
    secrets: Secrets,
    services: dict[str, str],
    tmp_path: Path,
    desk_port: int,
    extra_env: dict[str, dict[str, str]],
) -> AsyncIterator[Desk]:
    """The partners' registration desk (`vroegsignaal partner desk`) as a partner runs it:
    its own database login, the demo partners' files, the municipality's inbox; stopped
    with SIGTERM afterwards, gracefully."""
    database_url = await provision_desk_database(settings.database_url, secrets)
    config = write_desk_config(secrets, settings, tmp_path / "desk", services["notification"])
    port = desk_port
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("VS_") and k not in ("DATABASE_URL", "KEYSTORE_DATABASE_URL")
        },
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "VS_TOPIC_PREFIX": settings.topic_prefix,
        "VS_OIDC_ISSUER": settings.oidc_issuer,
        "VS_DESK_PORT": str(port),
        "VS_DESK_DATABASE_URL": database_url,
        "VS_DESK_CONFIG": str(config),
        "VS_GRACEFUL_TIMEOUT_SECONDS": "5",
        "PYTHONUNBUFFERED": "1",
        **extra_env.get("desk", {}),
    }
    log = tmp_path / "desk.log"
    proc = await asyncio.to_thread(start, log, env)
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_ready, url, proc, log)
        yield Desk(url, log, database_url)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code: int | None
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = None
    assert code in (0, -signal.SIGTERM), log.read_text()[-3000:]
    assert "the desk shut down gracefully" in log.read_text(), log.read_text()[-3000:]
