"""The production overlay: placeholders the municipality replaces, the image."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from vroegsignaal.deploycheck.manifests import Manifest, ident
from vroegsignaal.deploycheck.model import BARMAN_CLOUD, HOST_PLACEHOLDER, PLACEHOLDER, Finding


def check_production(docs: Sequence[Manifest]) -> list[Finding]:
    """What production needs beyond the shape: three of everything, and backups."""
    findings = []
    for pool in (d for d in docs if d.get("kind") == "KafkaNodePool"):
        if int(pool["spec"]["replicas"]) < 3:
            findings.append(Finding("production", ident(pool), "fewer than 3 Kafka nodes"))
    clusters = [d for d in docs if d.get("kind") == "Cluster"]
    for cluster in clusters:
        if int(cluster["spec"]["instances"]) < 3:
            findings.append(
                Finding("production", ident(cluster), "fewer than 3 PostgreSQL instances")
            )
        if cluster["spec"].get("backup"):
            findings.append(
                Finding(
                    "production",
                    ident(cluster),
                    "backs up with the in-tree barmanObjectStore, deprecated and gone in "
                    f"CloudNativePG 1.31: use the {BARMAN_CLOUD} plugin and an ObjectStore",
                )
            )
        if backup_store(docs, cluster) is None:
            findings.append(
                Finding(
                    "production",
                    ident(cluster),
                    f"no backup to object storage: a {BARMAN_CLOUD} plugin entry with "
                    "isWALArchiver true whose barmanObjectName is an ObjectStore here",
                )
            )
        name = cluster["metadata"]["name"]
        scheduled = [
            d
            for d in docs
            if d.get("kind") == "ScheduledBackup"
            and (d["spec"].get("cluster") or {}).get("name") == name
        ]
        if not scheduled:
            findings.append(Finding("production", ident(cluster), "no ScheduledBackup"))
        for backup in scheduled:
            spec = backup["spec"]
            if (
                spec.get("method") != "plugin"
                or (spec.get("pluginConfiguration") or {}).get("name") != BARMAN_CLOUD
            ):
                findings.append(
                    Finding(
                        "production",
                        ident(backup),
                        f"must back up with method plugin, pluginConfiguration {BARMAN_CLOUD}",
                    )
                )
    if not clusters:
        findings.append(Finding("production", "manifests", "no PostgreSQL Cluster"))
    return findings


def backup_store(docs: Sequence[Manifest], cluster: Manifest) -> Manifest | None:
    """The ObjectStore a CloudNativePG cluster archives its WAL to and is backed up
    into through the Barman Cloud plugin, if it has one among `docs`."""
    for plugin in cluster["spec"].get("plugins") or []:
        if plugin.get("name") == BARMAN_CLOUD and plugin.get("isWALArchiver") is True:
            store = (plugin.get("parameters") or {}).get("barmanObjectName")
            for doc in docs:
                if doc.get("kind") == "ObjectStore" and doc["metadata"].get("name") == store:
                    return doc
    return None


def placeholders(docs: Sequence[Manifest]) -> list[str]:
    """Every REPLACE-... placeholder left in rendered manifests, as `Kind/name field:
    value` (a multi-line value, such as a policy file in a ConfigMap, by its first line
    with REPLACE): the municipality's values still to fill in."""
    found: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}" if where else str(key))
        elif isinstance(node, list):
            for n, value in enumerate(node):
                walk(value, f"{where}[{n}]")
        elif isinstance(node, str) and (PLACEHOLDER in node or HOST_PLACEHOLDER.search(node)):
            line = next(
                x for x in node.splitlines() if PLACEHOLDER in x or HOST_PLACEHOLDER.search(x)
            ).strip()
            found.append(f"{where}: {line[:100]}")

    for doc in docs:
        before = len(found)
        walk(doc, "")
        found[before:] = [f"{ident(doc)} {item}" for item in found[before:]]
    return found


def check_placeholders(docs: Sequence[Manifest], label: str = "production") -> list[Finding]:
    """--strict-production: a placeholder left is a failure (the rendered manifests are
    about to be applied)."""
    return [
        Finding("placeholder", label, f"{item}: replace it (docs/operator.md, Deploying)")
        for item in placeholders(docs)
    ]


def check_dockerfile(text: str) -> list[Finding]:
    """The default image (the final stage) runs as a non-root user, has no HEALTHCHECK, and
    holds no dev-only code: its virtualenv comes from a stage that removed vroegsignaal/dev
    before installing, and it carries no demo users."""
    stages: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if start := re.match(r"(?i)FROM\s+\S+(?:\s+AS\s+(\S+))?", line):
            name = (start.group(1) or f"#{len(stages)}").lower()
        stages[name] = stages.get(name, "") + line + "\n"
    final = re.split(r"(?im)^FROM\s", text)[-1]
    findings = []
    user = re.findall(r"(?im)^USER\s+(\S+)", final)
    if not user or user[-1].split(":")[0] in ("root", "0"):
        findings.append(
            Finding("image", "Dockerfile", "the final stage must end as a non-root USER")
        )
    if re.search(r"(?im)^HEALTHCHECK\s", text):
        findings.append(Finding("image", "Dockerfile", "no HEALTHCHECK: Kubernetes probes do that"))
    sources = re.findall(r"(?im)^COPY\s+--from=(\S+)\s+/opt/venv\b", final)
    built = stages.get(sources[-1].lower(), "") if sources else ""
    removed = re.search(r"rm\s+-rf\s+vroegsignaal/dev\b[\s\S]*pip\s+install\s", built)
    if not removed or re.search(r"pip\s+install\s+['\"]?\.\[", built):
        findings.append(
            Finding(
                "image",
                "Dockerfile",
                "the final stage's virtualenv must come from a stage that removes "
                "vroegsignaal/dev before `pip install .` (no extra): the production image "
                "holds no dev-only code",
            )
        )
    if re.search(r"demo-users", final):
        findings.append(
            Finding("image", "Dockerfile", "the final stage must not carry the demo users")
        )
    return findings
