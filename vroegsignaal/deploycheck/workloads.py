"""Workloads: probes, resources, security contexts, services around them, scaling."""

from __future__ import annotations

from collections.abc import Sequence

from vroegsignaal.deploycheck.kafka import topic_name
from vroegsignaal.deploycheck.manifests import (
    Manifest,
    containers,
    graceful_timeout,
    ident,
    pod_labels,
    selects,
    workloads,
)
from vroegsignaal.deploycheck.model import KEDA_SCALED, SERVICES, Finding

STOP_MARGIN_SECONDS = 5


def check_workloads(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    """Security context, resources, service account and, for the five services, probes on
    the health endpoints and a grace period above the graceful timeout."""
    findings: list[Finding] = []
    accounts = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ServiceAccount"}
    seen = set()

    def bad(doc: Manifest, problem: str) -> None:
        findings.append(Finding("workload", f"{label} {ident(doc)}".strip(), problem))

    for doc, spec in workloads(docs):
        name = doc["metadata"]["name"]
        seen.add(name)
        pod_sc = spec.get("securityContext") or {}
        if spec.get("automountServiceAccountToken") is not False:
            bad(doc, "automountServiceAccountToken must be false")
        account = accounts.get(spec.get("serviceAccountName", ""))
        if account is None:
            bad(doc, "runs as no ServiceAccount of its own")
        elif account.get("automountServiceAccountToken") is not False:
            bad(doc, f"ServiceAccount {account['metadata']['name']} automounts its token")
        for container in containers(spec):
            sc = container.get("securityContext") or {}
            cname = container.get("name")
            if sc.get("readOnlyRootFilesystem") is not True:
                bad(doc, f"container {cname}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                bad(doc, f"container {cname}: allowPrivilegeEscalation is not false")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                bad(doc, f"container {cname}: capabilities do not drop ALL")
            if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                bad(doc, f"container {cname}: runAsNonRoot is not set")
            seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                bad(doc, f"container {cname}: seccompProfile is not RuntimeDefault")
            resources = container.get("resources") or {}
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(part) or {}):
                    bad(doc, f"container {cname}: no cpu and memory {part}")
        if doc.get("kind") != "Deployment" or name not in SERVICES:
            continue
        main = next((c for c in spec.get("containers") or [] if c.get("name") == name), None)
        if main is None:
            bad(doc, f"has no container named {name}")
            continue
        if main.get("args") != ["serve", name]:
            bad(doc, f"container {name} must run 'vroegsignaal serve {name}'")
        for probe, path in (("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")):
            got = ((main.get(probe) or {}).get("httpGet") or {}).get("path")
            if got != path:
                bad(doc, f"{probe} must GET {path} (has {got})")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        timeout = graceful_timeout(docs, main)
        pause = ((main.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}
        paused = float(pause.get("seconds", 0))
        # The preStop pause, then open HTTP requests (uvicorn's graceful timeout), then
        # the drain (shared/service.py ShutdownBudget), each at most the graceful timeout.
        stop = paused + 2 * timeout
        if not grace >= stop + STOP_MARGIN_SECONDS:
            bad(
                doc,
                f"terminationGracePeriodSeconds {grace} does not cover a stop of {stop:g} s "
                f"(preStop {paused:g} s, then twice the {timeout:g} s graceful timeout: "
                f"HTTP requests, then the drain) and {STOP_MARGIN_SECONDS} s more: in-flight "
                "messages and the outbox would be cut off",
            )
        if paused < 1:
            bad(
                doc,
                "no preStop sleep: the pod stops taking requests before the endpoints and "
                "the gateway have forgotten it, and those in between fail",
            )
    for name in SERVICES:
        if name not in seen:
            findings.append(Finding("workload", f"{label} Deployment/{name}".strip(), "missing"))
    return findings


def check_services_around(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    """Each service has a Service, a PodDisruptionBudget and is scraped by a ServiceMonitor."""
    findings = []
    deployments = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Deployment"}
    services = [d for d in docs if d.get("kind") == "Service"]
    budgets = [d for d in docs if d.get("kind") == "PodDisruptionBudget"]
    monitors = [d for d in docs if d.get("kind") == "ServiceMonitor"]
    for name in SERVICES:
        if name not in deployments:
            continue
        labels = pod_labels(deployments[name])
        where = f"{label} Deployment/{name}".strip()
        ours = [
            s
            for s in services
            if s["spec"].get("selector") and selects({"matchLabels": s["spec"]["selector"]}, labels)
        ]
        if not ours:
            findings.append(Finding("workload", where, "no Service selects its pods"))
        if not any(selects(b["spec"].get("selector"), labels) for b in budgets):
            findings.append(Finding("workload", where, "no PodDisruptionBudget"))
        scraped = any(
            selects(m["spec"].get("selector"), s["metadata"].get("labels") or {})
            for m in monitors
            for s in ours
        )
        if not scraped:
            findings.append(Finding("monitoring", where, "no ServiceMonitor scrapes its Service"))
    return findings


def check_scaling(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    """KEDA scales matching, notification and audit on lag, never above the partitions of
    a topic it watches; no HPA of its own on the same Deployment; `replicas` left to KEDA."""
    findings = []
    where = label or "manifests"
    partitions = {
        topic_name(d): int(d["spec"]["partitions"]) for d in docs if d.get("kind") == "KafkaTopic"
    }
    deployments = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Deployment"}
    scaled = {}
    for obj in (d for d in docs if d.get("kind") == "ScaledObject"):
        target = obj["spec"]["scaleTargetRef"]["name"]
        scaled[target] = obj
        top = int(obj["spec"].get("maxReplicaCount", 100))
        for trigger in obj["spec"].get("triggers") or []:
            if trigger.get("type") != "kafka":
                continue
            topic = trigger["metadata"].get("topic")
            if topic not in partitions:
                findings.append(
                    Finding("scaling", f"{where} {ident(obj)}", f"watches unknown topic {topic}")
                )
            elif top > partitions[topic]:
                findings.append(
                    Finding(
                        "scaling",
                        f"{where} {ident(obj)}",
                        f"maxReplicaCount {top} is above the {partitions[topic]} partitions of "
                        f"{topic}: the extra consumers would sit idle",
                    )
                )
        if target in deployments and "replicas" in deployments[target]["spec"]:
            findings.append(
                Finding("scaling", f"{where} Deployment/{target}", "sets replicas, which KEDA owns")
            )
    for name in KEDA_SCALED:
        if name not in scaled:
            findings.append(Finding("scaling", where, f"no ScaledObject for {name}"))
    for hpa in (d for d in docs if d.get("kind") == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        if target in scaled:
            findings.append(
                Finding("scaling", f"{where} {ident(hpa)}", f"{target} is already scaled by KEDA")
            )
    return findings
