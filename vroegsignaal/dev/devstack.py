"""`vroegsignaal dev up`: the whole system on this machine, in the foreground.

Starts Kafka and PostgreSQL (unless external ones are configured), creates the topics,
applies every service's migrations, starts the four services and the simulated
municipality as separate processes, prints where to look, and on Ctrl-C stops
everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from services.intake.app import load_partners
from shared.contracts import Topics
from shared.db import redact
from shared.kafka import ensure_topics
from shared.settings import REPO_ROOT, Settings
from vroegsignaal.dev.desk import provision_desk_database, write_desk_config
from vroegsignaal.dev.stack.local import Infrastructure, Ports, infrastructure
from vroegsignaal.dev.stack.procs import stop_process, wait_for_port, write_pidfile
from vroegsignaal.dev.stack.supervisor import CrashLoop, Process, Supervisor
from vroegsignaal.provision import kafka_access
from vroegsignaal.provision.database import login_of, provision
from vroegsignaal.provision.errors import StackError
from vroegsignaal.provision.kafka_access import ADMIN
from vroegsignaal.provision.secrets import Secrets, init_secrets
from vroegsignaal.services import SERVICES

DATA_DIR = Path(os.environ.get("VS_DATA_DIR", REPO_ROOT / ".local"))


def as_kafka_admin(settings: Settings, secrets: Secrets) -> Settings:
    """`settings` logged in as the local broker's operator (topics, users, ACLs)."""
    return settings.model_copy(
        update={
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_username": ADMIN,
            "kafka_sasl_password_file": secrets.kafka_password_file(ADMIN),
        }
    )


def prepare_infrastructure(settings: Settings, secrets: Secrets, infra: Infrastructure) -> None:
    """Topics, Kafka principals and ACLs (on the local broker), database roles, schemas and
    grants, idempotently: what every start needs before the services (`vroegsignaal
    migrate` as the database's administrator)."""
    partners = [p.partner_id for p in load_partners(settings)]
    if infra.kafka_admin_password is not None:
        settings = as_kafka_admin(settings, secrets)
        kafka_access.provision(
            infra.kafka_bootstrap_servers,
            infra.kafka_admin_password,
            secrets.kafka_passwords(),
            kafka_access.principals(Topics(settings.topic_prefix), partners),
        )

    async def _prepare() -> None:
        await ensure_topics(settings, partners)
        await provision(settings.database_url, secrets.database_passwords())

    asyncio.run(_prepare())


def service_env(
    infra: Infrastructure, trace_file: Path, secrets: Secrets, process: str
) -> dict[str, str]:
    """The environment of one process: where the infrastructure is, and its own secrets
    only (the pseudonymiser never sees the gateway's key, and the other way round), its
    own database login (never the administrator's)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_FILE") and k not in ("DATABASE_URL", "KEYSTORE_DATABASE_URL")
    }
    env.update(secrets.env_for(process))
    env["KAFKA_BOOTSTRAP_SERVERS"] = infra.kafka_bootstrap_servers
    if infra.kafka_local and process in SERVICES:
        # Its own Kafka principal on the local broker; partners log in as themselves.
        env.update(secrets.kafka_env(process))
    env.update(login_of(infra.database_url, process, secrets.database_passwords()))
    env.setdefault("VS_TRACE_FILE", str(trace_file))
    env["PYTHONUNBUFFERED"] = "1"
    return env


# What a container gets of a process's environment: its settings, logins and key files;
# nothing of the host's own (PATH, HOME, ...).
CONTAINER_ENV = ("VS_", "KAFKA_", "DATABASE_URL", "KEYSTORE_DATABASE_URL", "OTEL_")


def container_command(name: str, args: list[str], env: dict[str, str], image: str) -> list[str]:
    """`docker run` of one service from `image`, as the Kubernetes pod runs it (read-only
    root, a /tmp of its own, no root) but on the host's network and with the local data
    directory (its key files, the trace file) at the same path. Each variable is passed by
    name only: its value comes from the docker client's environment, never a command line."""
    data = str(DATA_DIR.resolve())
    passed = sorted(k for k in env if k.startswith(CONTAINER_ENV))
    return [
        "docker", "run", "--rm", "--init", "--name", f"vroegsignaal-{name}",
        "--network", "host", "--read-only", "--tmpfs", "/tmp",  # noqa: S108 - its own tmpfs
        "--user", f"{os.getuid()}:{os.getgid()}", "--volume", f"{data}:{data}",
        *[option for key in passed for option in ("--env", key)],
        image, *args,
    ]  # fmt: skip


def start_process(
    name: str,
    args: list[str],
    env: dict[str, str],
    logs: Path,
    run_dir: Path,
    image: str | None = None,
) -> subprocess.Popen[bytes]:
    """One process of the stack, or with `image` its container."""
    logs.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    command = (
        container_command(name, args, env, image)
        if image
        else [sys.executable, "-m", "vroegsignaal", *args]
    )
    with (logs / f"{name}.log").open("ab") as out:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    write_pidfile(run_dir / f"{name}.pid", proc.pid)
    return proc


def fetch_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


def status_line(settings: Settings) -> str:
    base = f"http://{settings.http_host}"
    try:
        intake = fetch_json(f"{base}:{settings.intake_port}/signals/summary")
        matching = fetch_json(f"{base}:{settings.matching_port}/matches/summary")
        alerts = fetch_json(f"{base}:{settings.notification_port}/alerts/summary")
        audit = fetch_json(f"{base}:{settings.audit_port}/audit/summary")
    except (OSError, ValueError):
        return "waiting for the services..."
    assert isinstance(intake, dict) and isinstance(matching, dict)
    assert isinstance(alerts, dict) and isinstance(audit, dict)
    entries = sum(int(row["entries"]) for row in audit["entries"])
    return (
        f"signals accepted {intake['accepted']}, rejected {intake['rejected']} | "
        f"registrations {matching['registrations']}, matches {matching['open_matches']} | "
        f"alerts {alerts['alerts']} to {alerts['recipients']} workers | audit entries {entries}"
    )


def local_mail(settings: Settings, logs: Path, run_dir: Path, supervisor: Supervisor) -> bool:
    """A real SMTP server for the dev stack, delivering into a Maildir under .local/, unless
    VS_SMTP_HOST names a relay to use instead; whether it runs."""
    if settings.smtp_host:
        return False
    maildir = DATA_DIR / "mail"
    for part in ("tmp", "new", "cur"):  # a Maildir, as the server's handler expects it
        (maildir / part).mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    args = ["dev", "mail", "--listen", f"{settings.http_host}:{settings.dev_mail_port}"]
    proc = supervisor.add(
        "mail",
        lambda: start_process("mail", [*args, str(maildir)], dict(os.environ), logs, run_dir),
        str(logs / "mail.log"),
    )
    wait_for_port(settings.dev_mail_port, proc, "mail", logs / "mail.log", 30)
    return True


def desk_env(
    settings: Settings, infra: Infrastructure, traces: Path, secrets: Secrets
) -> dict[str, str]:
    """The registration desk's environment: its own database login (the schema `desk`
    only) and its configuration, with the demo partners' files beside it."""
    inbox = f"http://{settings.http_host}:{settings.notification_port}"
    config = write_desk_config(secrets, settings, DATA_DIR / "run" / "desk", inbox)
    database_url = asyncio.run(provision_desk_database(infra.database_url, secrets))
    return service_env(infra, traces, secrets, "desk") | {
        "VS_DESK_DATABASE_URL": database_url,
        "VS_DESK_CONFIG": str(config),
    }


def up(settings: Settings, *, rate: float, bad_every: int, image: str | None = None) -> int:
    logs, run_dir = DATA_DIR / "logs", DATA_DIR / "run"
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    supervisor = Supervisor()
    print(f"vroegsignaal: starting the local stack (data in {DATA_DIR})", flush=True)
    secrets = init_secrets(
        DATA_DIR / "secrets",
        pseudonymiser_url=f"http://{settings.http_host}:{settings.pseudonymiser_port}",
    )
    admin_password = secrets.kafka_passwords()[ADMIN]
    with infrastructure(DATA_DIR, Ports.from_env(), kafka_admin_password=admin_password) as infra:
        try:
            traces = DATA_DIR / "traces.jsonl"
            settings = settings.model_copy(
                update={
                    "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
                    "database_url": infra.database_url,
                    "partners_file": secrets.partners,
                }
            )
            print(
                f"  kafka      {infra.kafka_bootstrap_servers}"
                + ("" if infra.kafka_local else " (external)")
            )
            print(
                f"  postgres   {redact(infra.database_url)}"
                + ("" if infra.postgres_local else " (external)")
            )
            prepare_infrastructure(settings, secrets, infra)

            def launch(
                name: str, args: list[str], env: dict[str, str], image: str | None = None
            ) -> Process:
                return supervisor.add(
                    name,
                    lambda: start_process(name, args, env, logs, run_dir, image),
                    str(logs / f"{name}.log"),
                )

            issuer = launch(
                "issuer", ["issuer", "serve"], service_env(infra, traces, secrets, "issuer")
            )
            wait_for_port(settings.issuer_port, issuer, "issuer", logs / "issuer.log", 30)
            mail = local_mail(settings, logs, run_dir, supervisor)
            for name in SERVICES:
                env = service_env(infra, traces, secrets, name)
                if name == "notification" and mail:
                    env.update(
                        {
                            "VS_SMTP_HOST": settings.http_host,
                            "VS_SMTP_PORT": str(settings.dev_mail_port),
                        }
                    )
                if image:
                    env["VS_HTTP_HOST"] = settings.http_host  # the image's default is 0.0.0.0
                launch(name, ["serve", name], env, image)
            for name, proc in supervisor.running():
                if name in SERVICES:
                    spec = SERVICES[name]
                    wait_for_port(spec.port_of(settings), proc, name, logs / f"{name}.log", 60)
            desk = launch("desk", ["partner", "desk"], desk_env(settings, infra, traces, secrets))
            wait_for_port(settings.desk_port, desk, "desk", logs / "desk.log", 60)
            launch(
                "simulator",
                ["simulate", "--rate", str(rate), "--bad-every", str(bad_every)],
                service_env(infra, traces, secrets, "simulator"),
            )
            base = f"http://{settings.http_host}"
            print("\nvroegsignaal is running. Where to look:")
            for name, spec in SERVICES.items():
                port = spec.port_of(settings)
                pages = "  ".join(f"{base}:{port}{p}" for p in spec.pages)
                print(f"  {name:<13} {pages}")
                print(f"  {'':<13} {base}:{port}/health/ready  {base}:{port}/metrics")
            print(f"  traces        {traces} (one trace per signal)")
            print(f"  secrets       {secrets.directory}/ (local only; each process gets its own)")
            print(f"  logs          {logs}/")
            print(f"  issuer        {settings.oidc_issuer} (local demo OIDC issuer)")
            if image:
                print(f"  image         the services run in containers of {image}")
            if mail:
                print(f"  e-mail        {DATA_DIR / 'mail'}/ (Maildir of the local SMTP server)")
            inbox = f"{base}:{settings.notification_port}/inbox/"
            print(f"\n  THE INBOX     {inbox}")
            print("                log in as a demo user: a partner worker such as")
            print("                jgz-voorbeeldrade-1, a JGT worker (jgt-noord-1), a team lead")
            print("                (teamlead-noord) or the regie role (regie-voorbeeldrade)")
            print(f"\n  REGISTER      {base}:{settings.desk_port}/registratie/")
            print("                a partner's worker registers one youth, the BSN blinded in")
            print("                the browser: log in as school-de-regenboog-1,")
            print("                huisartsen-centrum-1 or jgz-voorbeeldrade-1")
            print("\nPress Ctrl-C to stop everything.\n", flush=True)
            last = 0.0
            while not stopping:
                # Only Kafka or PostgreSQL dying stops the stack (or a crash loop, which
                # the supervisor raises); a service that dies is restarted.
                for what, proc, log in infra.started:
                    if proc.poll() is not None:
                        raise StackError(
                            f"{what} exited with code {proc.returncode}; the stack stops. See {log}"
                        )
                try:
                    events = supervisor.poll()
                except CrashLoop as looping:
                    raise StackError(str(looping)) from None
                for event in events:
                    print(time.strftime("%H:%M:%S ") + event, flush=True)
                if time.monotonic() - last >= 10:
                    restarts = supervisor.summary()
                    line = status_line(settings) + (f" | {restarts}" if restarts else "")
                    print(time.strftime("%H:%M:%S ") + line, flush=True)
                    last = time.monotonic()
                time.sleep(0.5)
        finally:
            print("\nvroegsignaal: stopping...", flush=True)
            for name, proc in reversed(supervisor.running()):
                stop_process(proc, timeout=settings.graceful_timeout_seconds + 5)
                with contextlib.suppress(OSError):
                    (run_dir / f"{name}.pid").unlink()
            if image:
                # Docker's client forwards the stop; a container it left behind goes too.
                containers = [f"vroegsignaal-{name}" for name in SERVICES]
                subprocess.run(
                    ["docker", "rm", "--force", *containers], capture_output=True, check=False
                )
    print("vroegsignaal: stopped; data kept in", DATA_DIR, "('make clean' wipes it)")
    return 0
