"""Alerts: every PrometheusRule alert says what to do (a runbook in the operators'
guide that exists) and asks only for metrics that exist: the services' own, which are
read here from their code, or those of the components it names (Strimzi's Kafka
exporter, cert-manager). A renamed metric would otherwise leave an alert that never
fires."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from shared.settings import REPO_ROOT
from vroegsignaal.deploycheck.manifests import Manifest, ident
from vroegsignaal.deploycheck.model import Finding

RUNBOOK = "docs/operator.md#alerts"
# Metrics of components outside the code, by prefix: Strimzi's Kafka exporter, the
# brokers' JMX exporter (kafka.yaml), CloudNativePG's exporter, cert-manager.
FOREIGN = ("kafka_consumergroup_", "kafka_server_", "kafka_controller_", "cnpg_", "certmanager_")
_DECLARED = re.compile(r"(?:Counter|Gauge|Histogram|Summary)\(\s*\"(vroegsignaal_[a-z0-9_]+)\"")
_USED = re.compile(r"\b([a-z][a-z0-9_]*_[a-z0-9_]+)\s*(?:\{|\[|\)|$|\s)")
_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def declared_metrics() -> set[str]:
    """The metric names the services declare (prometheus_client, in their code)."""
    names: set[str] = set()
    for folder in ("shared", "services"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            names.update(_DECLARED.findall(path.read_text()))
    return names


def _anchors(markdown: str) -> set[str]:
    return {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in markdown.splitlines()
        if line.startswith("#")
    }


def check_alerts(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    findings: list[Finding] = []
    known = declared_metrics()
    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    if not rules:
        findings.append(Finding("alerts", label or "manifests", "no PrometheusRule"))
    page, _, anchor = RUNBOOK.partition("#")
    anchors = _anchors((REPO_ROOT / page).read_text())
    for doc in rules:
        for group in doc["spec"].get("groups") or []:
            for rule in group.get("rules") or []:
                if "alert" not in rule:
                    continue
                where = f"{label} {ident(doc)} {rule['alert']}".strip()
                if (rule.get("annotations") or {}).get(
                    "runbook"
                ) != RUNBOOK or anchor not in anchors:
                    findings.append(
                        Finding(
                            "alerts",
                            where,
                            f"needs annotation runbook: {RUNBOOK} (a heading there)",
                        )
                    )
                for metric in set(_USED.findall(str(rule.get("expr", "")))):
                    if not metric.startswith("vroegsignaal_") and not metric.startswith(FOREIGN):
                        continue  # a function or a label, not a metric
                    base = next(
                        (metric.removesuffix(s) for s in _SUFFIXES if metric.endswith(s)), metric
                    )
                    if metric.startswith("vroegsignaal_") and not {metric, base} & known:
                        findings.append(
                            Finding(
                                "alerts", where, f"asks for {metric}, which no service declares"
                            )
                        )
    return findings


# Grafana keeps a dashboard's uid unique in all of it, and at most 40 characters.
GRAFANA_UID_MAX = 40


def check_dashboard(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    """The dashboard's uid and title carry its namespace (the overlays' replacements) and
    every query filters on it, so that several namespaces' dashboards live side by side
    in one Grafana, each showing its own."""
    findings: list[Finding] = []
    for doc in docs:
        if (
            doc.get("kind") != "ConfigMap"
            or doc["metadata"].get("name") != "vroegsignaal-dashboard"
        ):
            continue
        where = f"{label} {ident(doc)}".strip()
        namespace = doc["metadata"].get("namespace", "")
        for key, text in (doc.get("data") or {}).items():
            board = json.loads(text)
            uid, title = board.get("uid", ""), board.get("title", "")
            if uid != f"vs_{namespace}_dashboard" or namespace not in title:
                findings.append(
                    Finding(
                        "alerts",
                        where,
                        f"{key}: uid {uid!r} and title {title!r} must carry the namespace "
                        f"{namespace!r} (two namespaces' dashboards would overwrite each other)",
                    )
                )
            constants = {
                v.get("name"): v.get("query")
                for v in (board.get("templating") or {}).get("list") or []
                if v.get("type") == "constant"
            }
            if constants.get("namespace") != namespace:
                findings.append(
                    Finding(
                        "alerts",
                        where,
                        f"{key}: its constant `namespace` is {constants.get('namespace')!r}, "
                        f"not {namespace!r}: its queries would show another namespace",
                    )
                )
            for panel in board.get("panels") or []:
                for target in panel.get("targets") or []:
                    if 'namespace="$namespace"' not in target.get("expr", ""):
                        findings.append(
                            Finding(
                                "alerts",
                                where,
                                f"{key}: panel {panel.get('title')!r} does not filter on "
                                'namespace="$namespace": it would sum every namespace',
                            )
                        )
            if len(uid) > GRAFANA_UID_MAX:
                findings.append(
                    Finding("alerts", where, f"{key}: uid {uid!r} is longer than Grafana takes")
                )
    return findings
