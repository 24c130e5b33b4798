"""The registration desk as `make run` and the tests run it: its database login (a role
that owns the schema `desk` and reaches nothing else), and its configuration from
config/desk.yaml with the demo partners' own files, pointed at this run's services."""

from __future__ import annotations

import secrets
from pathlib import Path

import asyncpg
import yaml

from shared.dbroles import role_url
from shared.settings import REPO_ROOT, Settings
from vroegsignaal.partner.desk.store import SCHEMA
from vroegsignaal.provision.secrets import Secrets, write_private

TEMPLATE = REPO_ROOT / "config" / "desk.yaml"
ROLE = "vs_desk"


def _password(secrets_: Secrets) -> str:
    """The desk role's password, made once per secrets directory (so that two runs on one
    server never change it under each other)."""
    path = secrets_.directory / "desk-database.password"
    if not path.exists():
        write_private(path, secrets.token_hex(24))
    return path.read_text().strip()


async def provision_desk_database(admin_url: str, secrets_: Secrets) -> str:
    """The desk's login on the database of `admin_url`: the role `vs_desk`, owner of the
    schema `desk` only; its URL."""
    password = _password(secrets_)
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", ROLE)
        verb = "ALTER" if exists else "CREATE"
        # A hex password: nothing in it to quote.
        await conn.execute(f"{verb} ROLE {ROLE} LOGIN PASSWORD '{password}'")
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {ROLE}')
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}" AUTHORIZATION {ROLE}')
    finally:
        await conn.close()
    return role_url(admin_url, ROLE, password)


def write_desk_config(
    secrets_: Secrets, settings: Settings, directory: Path, inbox_url: str
) -> Path:
    """config/desk.yaml for this run, in `directory`: each partner's own file copied
    beside it with this run's pseudonymiser, the postcodes file, the inbox."""
    template = yaml.safe_load(TEMPLATE.read_text())
    (directory / "partners").mkdir(parents=True, exist_ok=True)
    for partner in template["partners"]:
        source = secrets_.partner_config(Path(partner["config"]).stem)
        config = yaml.safe_load(source.read_text())
        config["pseudonymiser"]["url"] = settings.pseudonymiser_url
        write_private(directory / partner["config"], yaml.safe_dump(config))
    template["postcodes"] = str(TEMPLATE.parent / template["postcodes"])
    template["inbox_url"] = inbox_url
    path = directory / "desk.yaml"
    path.write_text(yaml.safe_dump(template))
    return path
