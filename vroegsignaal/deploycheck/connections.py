"""Connections: at full scale every replica of every service holds its pools open, so
their sum (the most replicas KEDA and a rolling update run at once, times each
process's pool) must fit each PostgreSQL cluster's max_connections, and each role's
share its connectionLimit. Otherwise the last replicas to start fail to connect at
exactly the moment the load is highest."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from shared.settings import Settings
from vroegsignaal.deploycheck.manifests import Manifest, container_env, ident
from vroegsignaal.deploycheck.model import SERVICES, Finding

# Held apart from the services' pools: the superuser's reserved connections
# (PostgreSQL's default 3), the operator's and the metrics exporter's, the migration
# Job's two (it may run during a rollout).
RESERVED = 3 + 4 + 2
# Services with a connection of their own besides their pool: notification's inbox
# stream LISTENs on one (services/notification/api.py).
OWN_CONNECTIONS = {"notification": 1}
_URL = re.compile(r"^postgres(?:ql)?://(?P<role>[^:@/]+)(?::[^@]*)?@(?P<host>[^:/]+)")


def _peak_replicas(docs: Sequence[Manifest], deployment: Manifest) -> int:
    """The most pods a Deployment runs at once: KEDA's maximum (or its replicas), and
    one more while a rolling update surges."""
    name = deployment["metadata"]["name"]
    scaled = [
        d
        for d in docs
        if d.get("kind") == "ScaledObject"
        and (d["spec"].get("scaleTargetRef") or {}).get("name") == name
    ]
    top = int(scaled[0]["spec"].get("maxReplicaCount", 100)) if scaled else None
    replicas = top if top is not None else int(deployment["spec"].get("replicas", 1))
    rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    surge = rolling.get("maxSurge", "25%")
    extra = -(-replicas * int(surge[:-1]) // 100) if isinstance(surge, str) else int(surge)
    return replicas + extra


def demand(docs: Sequence[Manifest]) -> dict[tuple[str, str], int]:
    """(cluster, role) -> the connections the services may hold at full scale."""
    defaults = Settings.model_fields
    held: dict[tuple[str, str], int] = defaultdict(int)
    for doc in docs:
        name = doc.get("metadata", {}).get("name")
        if doc.get("kind") != "Deployment" or name not in SERVICES:
            continue
        main = next(c for c in doc["spec"]["template"]["spec"]["containers"] if c["name"] == name)
        env = container_env(docs, main)
        pods = _peak_replicas(docs, doc)
        for variable, size_variable, default in (
            ("DATABASE_URL", "VS_DB_POOL_SIZE", defaults["db_pool_size"].default),
            (
                "KEYSTORE_DATABASE_URL",
                "VS_KEYSTORE_POOL_SIZE",
                defaults["keystore_pool_size"].default,
            ),
        ):
            value = env.get(variable, "")
            url = _URL.match(value or "")
            if url is None:
                if variable in env:  # from a Secret, or not a URL this check can read
                    held[("?", f"{name} {variable}")] += pods
                continue
            size = int(env.get(size_variable) or default)
            if variable == "DATABASE_URL":
                size += OWN_CONNECTIONS.get(name, 0)
            cluster = url["host"].removesuffix("-rw").removesuffix("-ro").removesuffix("-r")
            held[(cluster, url["role"])] += pods * size
    return dict(held)


def check_connections(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    findings: list[Finding] = []
    held = demand(docs)
    clusters = {d["metadata"]["name"] for d in docs if d.get("kind") == "Cluster"}
    for place, what in held:
        if place == "?":
            findings.append(
                Finding(
                    "connections",
                    label or "manifests",
                    f"cannot tell which cluster and role {what} reaches (a Secret, or not "
                    "postgresql://<role>:...@<cluster>-rw...): its connections go uncounted",
                )
            )
        elif place not in clusters:
            findings.append(
                Finding(
                    "connections",
                    label or "manifests",
                    f"{what} connects to {place}, which is no PostgreSQL cluster here: its "
                    "connections go uncounted",
                )
            )
    for cluster in (d for d in docs if d.get("kind") == "Cluster"):
        name = cluster["metadata"]["name"]
        where = f"{label} {ident(cluster)}".strip()
        spec = cluster["spec"]
        limit = int(
            ((spec.get("postgresql") or {}).get("parameters") or {}).get("max_connections", 100)
        )
        mine = {role: n for (c, role), n in held.items() if c == name}
        total = sum(mine.values()) + RESERVED
        if total > limit:
            findings.append(
                Finding(
                    "connections",
                    where,
                    f"the services may hold {sum(mine.values())} connections at full scale "
                    f"({', '.join(f'{r} {n}' for r, n in sorted(mine.items()))}), with {RESERVED} "
                    f"kept apart {total}, above max_connections {limit}: raise it, or lower "
                    "VS_DB_POOL_SIZE / VS_KEYSTORE_POOL_SIZE or the replicas",
                )
            )
        for role in (spec.get("managed") or {}).get("roles") or []:
            cap = role.get("connectionLimit")
            wanted = mine.get(role.get("name"), 0)
            if cap is not None and int(cap) >= 0 and wanted > int(cap):
                findings.append(
                    Finding(
                        "connections",
                        where,
                        f"role {role['name']} may need {wanted} connections at full scale, above "
                        f"its connectionLimit {cap}",
                    )
                )
    return findings
