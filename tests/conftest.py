"""Fixtures: the same local Kafka and PostgreSQL as `make run`, started once per test run.

`KAFKA_BOOTSTRAP_SERVERS` / `DATABASE_URL` point the tests at external infrastructure
instead. Each test that needs state gets its own database and its own topic prefix,
so tests never see each other's messages or rows.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from services.intake.app import load_partners
from shared.auth import Role
from shared.contracts import Topics
from shared.i18n import unchosen
from shared.kafka import ensure_topics
from shared.keystore import keys_database_url
from shared.settings import REPO_ROOT, Settings
from tests.postgres import scratch_database
from vroegsignaal.dev.devstack import as_kafka_admin
from vroegsignaal.dev.stack.issuer import DemoUser, load_demo_users, mint_token
from vroegsignaal.dev.stack.local import Infrastructure, Ports, infrastructure
from vroegsignaal.dev.stack.procs import free_port
from vroegsignaal.provision import kafka_access
from vroegsignaal.provision.database import provision
from vroegsignaal.provision.secrets import Secrets, init_secrets


@pytest.fixture(autouse=True)
def _no_language_carried_over() -> Iterator[None]:
    """A command run in-process chooses its language for the rest of its context: none
    of that reaches the next test."""
    with unchosen():
        yield


NO_INFRA = "VS_TESTS_NO_INFRA"  # `make unit`: the fast tests, without Kafka or PostgreSQL


@pytest.fixture(scope="session")
def infra(secrets: Secrets) -> Iterator[Infrastructure]:
    if os.environ.get(NO_INFRA):
        pytest.fail(
            f"{NO_INFRA} is set (make unit) and this test needs Kafka and PostgreSQL: "
            "it belongs in tests/integration or tests/e2e, or should not ask for them"
        )
    data_dir = Path(tempfile.mkdtemp(prefix="vroegsignaal-test-"))
    data_dir.chmod(0o755)
    ports = Ports(kafka=free_port(), kafka_controller=free_port(), postgres=free_port())
    admin = secrets.kafka_passwords()[kafka_access.ADMIN]
    try:
        with infrastructure(data_dir, ports, heap="384m", kafka_admin_password=admin) as started:
            if started.kafka_local:
                # Every principal's credential, once; their ACLs come per test (prefix).
                kafka_access.provision(
                    started.kafka_bootstrap_servers, admin, secrets.kafka_passwords(), {}
                )
            yield started
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def database_url(infra: Infrastructure) -> AsyncIterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    async with scratch_database(infra.database_url) as url:
        yield url


def keys_url(settings: Settings) -> str:
    """The test's key store database, as its administrator (beside the test's own)."""
    return keys_database_url(settings.database_url)


async def keys_fetchval(settings: Settings, query: str, *args: object) -> object:
    """One value from the test's key store database (its administrator's view)."""
    conn = await asyncpg.connect(keys_url(settings))
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Secrets:
    """Keys and credentials of a local stack: pseudonymiser, gateway, KEK, each partner."""
    directory = tmp_path_factory.mktemp("secrets")
    return init_secrets(directory / "secrets", pseudonymiser_url="http://127.0.0.1:1")


@pytest.fixture
async def settings(infra: Infrastructure, database_url: str, secrets: Secrets) -> Settings:
    """Settings of an isolated environment: own database, own topics, free ports."""
    pseudonymiser_port = free_port()
    issuer_port = free_port()
    configured = Settings(
        KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap_servers,
        DATABASE_URL=database_url,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        topic_partitions=3,
        intake_port=free_port(),
        matching_port=free_port(),
        notification_port=free_port(),
        audit_port=free_port(),
        pseudonymiser_port=pseudonymiser_port,
        pseudonymiser_url=f"http://127.0.0.1:{pseudonymiser_port}",
        partners_file=secrets.partners,
        gateway_keys_file=secrets.gateway_keys,
        oprf_keyring_file=secrets.oprf_keyring,
        pseudonymiser_credentials_file=secrets.pseudonymiser_credentials,
        kek_file=secrets.kek,
        audit_signing_key_file=secrets.audit_signing_key,
        issuer_port=issuer_port,
        oidc_issuer=f"http://127.0.0.1:{issuer_port}",
        issuer_key_file=secrets.issuer_key,
        outbox_poll_seconds=0.5,
        graceful_timeout_seconds=5.0,
    )
    partner_ids = [p.partner_id for p in load_partners(configured)]
    if infra.kafka_admin_password is not None:
        # The tests' own clients are the local broker's operator; each service started
        # by a test logs in as itself, with the ACLs of this test's topics.
        configured = as_kafka_admin(configured, secrets)
        await asyncio.to_thread(
            kafka_access.provision,
            infra.kafka_bootstrap_servers,
            infra.kafka_admin_password,
            secrets.kafka_passwords(),
            kafka_access.principals(Topics(configured.topic_prefix), partner_ids),
            users=False,
        )
    await ensure_topics(configured, partner_ids)
    # What `vroegsignaal migrate` does before services start: roles, schemas, grants.
    await provision(database_url, secrets.database_passwords())
    return configured


DEMO_USERS = REPO_ROOT / "config" / "demo-users.yaml"


# The organisations of the partner workers that the tests' own files name.
ORGANISATIONS = {
    "juf-anouk": "Basisschool De Regenboog",
    "jgz-fleur": "JGZ Voorbeeldrade",
    "jgz-bos": "JGZ Voorbeeldrade",
    "dokter-bos": "Huisartsenpraktijk Centrum",
}


def token_for(
    settings: Settings, user_id: str, *roles: Role, organisation: str | None = None
) -> str:
    """A bearer token of the test run's local issuer: a demo user, or (with roles) anyone,
    such as the partner workers of a test's own files (at their organisation)."""
    assert settings.issuer_key_file is not None
    user = (
        DemoUser(
            user_id,
            user_id,
            f"{user_id}@voorbeeldrade.example",
            roles,
            organisation or ORGANISATIONS.get(user_id),
        )
        if roles
        else load_demo_users(DEMO_USERS)[user_id]
    )
    return mint_token(settings.issuer_key_file, settings.oidc_issuer, settings.oidc_audience, user)


def auth(
    settings: Settings, user_id: str, *roles: Role, organisation: str | None = None
) -> dict[str, str]:
    token = token_for(settings, user_id, *roles, organisation=organisation)
    return {"Authorization": f"Bearer {token}"}


async def run_cli(
    settings: Settings, *args: str, operator: str = "", env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """`vroegsignaal ARGS` as a user runs it against this test's broker and topics (and,
    for an `operator`, this test's database): (exit status, stdout, stderr)."""
    extra = env or {}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VS_")},
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "VS_TOPIC_PREFIX": settings.topic_prefix,
    }
    if settings.kafka_sasl_username:
        # The operator's Kafka login (a partner's command uses the partner's own).
        env |= {
            "VS_KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol,
            "VS_KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
            "VS_KAFKA_SASL_PASSWORD_FILE": str(settings.kafka_sasl_password_file),
        }
    if operator:
        env |= {"DATABASE_URL": settings.database_url, "VS_OPERATOR": operator}
    env |= extra
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vroegsignaal",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def eventually(check, *, timeout: float = 30.0, interval: float = 0.25):  # type: ignore[no-untyped-def]
    """Poll the async `check` until it returns a truthy value; fail with its last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
