"""Split trust and least privilege in the database: which pod holds which key and login."""

from __future__ import annotations

from collections.abc import Sequence

from shared.dbroles import KEYSTORE, KEYSTORE_OWNER, MIGRATOR, SERVICE_ROLES
from vroegsignaal.deploycheck.manifests import (
    Manifest,
    container_env,
    containers,
    ident,
    secrets_of,
    workloads,
)
from vroegsignaal.deploycheck.model import (
    COMPOSE_SECRET_OWNERS,
    GATEWAY_SECRET,
    KEYS_BACKUP_MAX_DAYS,
    KEYS_CLUSTER,
    NOBODYS_SECRETS,
    PSEUDONYMISER_SECRET,
    SECRET_OWNERS,
    SERVICES,
    Finding,
)
from vroegsignaal.deploycheck.production import backup_store


def check_split_trust(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    """No pod holds both the pseudonymiser's and the gateway's Secret; each is held by its
    own service only (matching holds neither); and each service does hold its own."""
    findings = []
    holders: dict[str, set[str]] = {secret: set() for secret in SECRET_OWNERS}
    for doc, spec in workloads(docs):
        secrets = secrets_of(spec)
        where = f"{label} {ident(doc)}".strip()
        if {PSEUDONYMISER_SECRET, GATEWAY_SECRET} <= secrets:
            findings.append(
                Finding(
                    "split-trust",
                    where,
                    f"mounts both {PSEUDONYMISER_SECRET} and {GATEWAY_SECRET}: one pod would "
                    "hold both keys, and could link a BSN to its matching pseudonym",
                )
            )
        for secret in sorted(secrets & set(NOBODYS_SECRETS)):
            findings.append(
                Finding("split-trust", where, f"uses {secret}, which no workload may hold")
            )
        for secret, owner in SECRET_OWNERS.items():
            if secret not in secrets:
                continue
            holders[secret].add(doc["metadata"]["name"])
            if doc["metadata"]["name"] != owner:
                findings.append(
                    Finding("split-trust", where, f"uses {secret}, which only {owner} may hold")
                )
    for secret, owner in SECRET_OWNERS.items():
        if owner not in holders[secret]:
            findings.append(
                Finding("split-trust", f"{label} Deployment/{owner}".strip(), f"lacks {secret}")
            )
    return findings


# The processes that seal or open personal fields, and so log in to the key store.
KEYSTORE_USERS = ("intake", "matching", "notification")


# The Secret (its name, not its content) of the migration role's login.
MIGRATOR_SECRET = "vroegsignaal-db-app"  # noqa: S105


KEYS_MIGRATOR_SECRET = "vroegsignaal-keys-app"  # noqa: S105


def check_database_roles(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    """Least privilege in PostgreSQL (shared/dbroles.py): the database owner is the
    migration role, which only the migration Job logs in as; each service logs in as its
    own role with its own Secret, and reaches the key store only as vs_keystore, in the
    key store's own cluster (which declares the key store's roles only, and keeps its
    backups at most KEYS_BACKUP_MAX_DAYS); every role is declared without superuser,
    role or database creation."""
    findings = []

    def bad(where: str, problem: str) -> None:
        findings.append(Finding("database", f"{label} {where}".strip(), problem))

    migrations = 0
    for doc, spec in workloads(docs):
        name = doc["metadata"]["name"]
        where = ident(doc)
        runs_migrate = any(c.get("args") == ["migrate"] for c in containers(spec))
        migrations += doc.get("kind") == "Job" and runs_migrate
        held = secrets_of(spec)
        # A database login is its own process's only: the key store's only where it seals
        # or opens (intake, matching, notification), a service's only in that service.
        logins = {f"vroegsignaal-db-{n}" for n in (*SERVICE_ROLES, "keystore")} & held
        allowed = {f"vroegsignaal-db-{name}"} | (
            {"vroegsignaal-db-keystore"} if name in KEYSTORE_USERS else set()
        )
        for secret in sorted(logins - allowed):
            bad(where, f"uses {secret}, another process's database login")
        for secret in sorted({MIGRATOR_SECRET, KEYS_MIGRATOR_SECRET} & held):
            if not runs_migrate:
                bad(where, f"uses {secret}, the migration role's login, which only the "
                    "migration Job may hold")  # fmt: skip
        if doc.get("kind") != "Deployment" or name not in SERVICES:
            continue
        main = next((c for c in containers(spec) if c.get("name") == name), None)
        if main is None:
            continue
        env = container_env(docs, main)
        url = env.get("DATABASE_URL") or ""
        if not url.startswith(f"postgresql://{SERVICE_ROLES[name]}:"):
            bad(where, f"DATABASE_URL does not log in as {SERVICE_ROLES[name]}")
        if f"vroegsignaal-db-{name}" not in secrets_of(spec):
            bad(where, f"lacks its database login, the Secret vroegsignaal-db-{name}")
        keystore_url = env.get("KEYSTORE_DATABASE_URL")
        if keystore_url is not None and not keystore_url.startswith(f"postgresql://{KEYSTORE}:"):
            bad(where, f"KEYSTORE_DATABASE_URL does not log in as {KEYSTORE}")
        if keystore_url is not None and f"@{KEYS_CLUSTER}-rw:" not in keystore_url:
            bad(where, f"KEYSTORE_DATABASE_URL is not the key store's own cluster {KEYS_CLUSTER}")
    if not migrations:
        bad("Job/vroegsignaal-migrate", "missing: nothing runs 'vroegsignaal migrate'")
    clusters = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Cluster"}
    if KEYS_CLUSTER not in clusters:
        bad(f"Cluster/{KEYS_CLUSTER}", "missing: the data keys need a cluster of their own")
    for name, cluster in clusters.items():
        where = ident(cluster)
        owner = ((cluster["spec"].get("bootstrap") or {}).get("initdb") or {}).get("owner")
        if owner != MIGRATOR:
            bad(where, f"the database owner is {owner!r}, not the migration role {MIGRATOR}")
        managed = (cluster["spec"].get("managed") or {}).get("roles") or []
        roles = {r.get("name"): r for r in managed}
        keys = name == KEYS_CLUSTER
        # The keys' cluster knows the key store's roles only; the application's none of them.
        # (The application's cluster may keep the owner role, without login: an earlier
        # version's keys move out as it.)
        wanted = {KEYSTORE, KEYSTORE_OWNER} if keys else set(SERVICE_ROLES.values())
        unwanted = set(SERVICE_ROLES.values()) if keys else {KEYSTORE}
        for role in sorted(wanted - set(roles)):
            bad(where, f"declares no managed role {role}")
        for role in sorted(unwanted & set(roles)):
            bad(where, f"declares {role}, which has no business in this cluster")
        store = backup_store(docs, cluster)
        backup = ((store or {}).get("spec") or {}).get("retentionPolicy") or (
            cluster["spec"].get("backup") or {}
        ).get("retentionPolicy")
        if keys and store is not None and backup is None:
            bad(where, "keeps backups for ever: its ObjectStore sets no retentionPolicy")
        if keys and backup is not None and _days(str(backup)) > KEYS_BACKUP_MAX_DAYS:
            bad(
                where,
                f"keeps backups {backup}: a restored key undoes a shredding, so at most "
                f"{KEYS_BACKUP_MAX_DAYS}d",
            )
        if (roles.get(KEYSTORE_OWNER) or {}).get("login"):
            bad(where, f"{KEYSTORE_OWNER} owns the key store and must not log in")
        for role_name, role in roles.items():
            granted = set(role.get("inRoles") or []) - (
                {KEYSTORE_OWNER} if role_name == MIGRATOR else set()
            )
            if granted:
                bad(where, f"role {role_name} is made a member of {sorted(granted)}")
        for role_name, role in roles.items():
            if any(role.get(a) for a in ("superuser", "createrole", "createdb", "bypassrls")):
                bad(where, f"role {role_name} may do more than log in")
    return findings


def _days(retention: str) -> float:
    """CloudNativePG's retention policy (`30d`, `4w`, `1m`) in days."""
    unit = {"d": 1, "w": 7, "m": 31}.get(retention[-1:], 0)
    try:
        return float(retention[:-1]) * unit if unit else float("inf")
    except ValueError:
        return float("inf")


def check_compose_split_trust(compose: Manifest) -> list[Finding]:
    """The same rule in docker-compose.yml: the pseudonymiser's and the gateway's key
    files go to their own service only, so no container gets both and matching neither."""
    findings = []
    for name, service in (compose.get("services") or {}).items():
        secrets = {s if isinstance(s, str) else s.get("source") for s in service.get("secrets", [])}
        for secret in sorted(secrets & set(COMPOSE_SECRET_OWNERS)):
            owner = COMPOSE_SECRET_OWNERS[secret]
            if name != owner:
                findings.append(
                    Finding(
                        "split-trust",
                        f"docker-compose.yml {name}",
                        f"gets {secret}, which only {owner} may have",
                    )
                )
    return findings
