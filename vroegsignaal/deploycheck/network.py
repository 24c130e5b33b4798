"""Network policies and the ingress: who may reach whom."""

from __future__ import annotations

from collections.abc import Sequence

from vroegsignaal.deploycheck.manifests import (
    Manifest,
    _namespace_is,
    ident,
    pod_labels,
    selects,
    workloads,
)
from vroegsignaal.deploycheck.model import (
    DNS_NAMESPACE,
    FROM_INGRESS,
    INGRESS_NAMESPACE,
    KAFKA_POD,
    KEYS_POD,
    MAY_LEAVE_CLUSTER,
    NODE_LOCAL_DNS,
    POSTGRES_POD,
    PUBLIC,
    PUBLIC_PATHS,
    SERVICES,
    Finding,
)
from vroegsignaal.deploycheck.trust import KEYSTORE_USERS


def _ingress_path_problem(path: Manifest) -> str | None:
    """Why this Ingress path may not be routed, or None: the pseudonymiser and the inbox
    may be, and of audit exactly the privacy officer's page (PUBLIC_PATHS)."""
    backend = path["backend"]["service"]["name"]
    route = (path.get("path"), path.get("pathType"))
    if backend in PUBLIC:
        return None
    allowed = PUBLIC_PATHS.get(backend)
    if allowed is not None:
        if route in allowed:
            return None
        return (
            f"routes {route[0]} ({route[1]}) to {backend}: of {backend} only "
            + ", ".join(f"{p} ({kind})" for p, kind in allowed)
            + " may be reachable from outside"
        )
    return (
        f"routes {route[0]} to {backend}: only {', '.join(PUBLIC)} and the privacy "
        "officer's page on audit may be reachable from outside"
    )


def check_network(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    """Default deny; the Ingresses reach only the pseudonymiser, the inbox and, of audit,
    the privacy officer's page (PUBLIC_PATHS), and the ingress controller only those three
    services; each service reaches only Kafka, PostgreSQL and DNS (notification and audit
    also HTTPS/SMTP outside the cluster: the OIDC issuer, mail, webhooks)."""
    findings = []
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    where = label or "manifests"
    deny = [
        p
        for p in policies
        if p["spec"].get("podSelector") == {}
        and {"Ingress", "Egress"} <= set(p["spec"].get("policyTypes") or [])
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not deny:
        findings.append(Finding("network", where, "no default-deny NetworkPolicy (all pods)"))
    for ingress in (d for d in docs if d.get("kind") == "Ingress"):
        for rule in ingress["spec"].get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                problem = _ingress_path_problem(path)
                if problem:
                    findings.append(
                        Finding("network", f"{label} {ident(ingress)}".strip(), problem)
                    )
        default = (ingress["spec"].get("defaultBackend") or {}).get("service")
        if default:
            findings.append(
                Finding(
                    "network",
                    f"{label} {ident(ingress)}".strip(),
                    f"has a defaultBackend ({default.get('name')}): every path would reach it",
                )
            )
    pods = {doc["metadata"]["name"]: pod_labels(doc) for doc, _ in workloads(docs)}
    for policy in policies:
        selected = [
            n for n, labels in pods.items() if selects(policy["spec"].get("podSelector"), labels)
        ]
        for rule in policy["spec"].get("ingress") or []:
            if any(_namespace_is(peer, INGRESS_NAMESPACE) for peer in rule.get("from") or []):
                for name in selected:
                    if name not in FROM_INGRESS:
                        findings.append(
                            Finding(
                                "network",
                                f"{label} {ident(policy)}".strip(),
                                f"lets the ingress controller reach {name}",
                            )
                        )
        for rule in policy["spec"].get("egress") or []:
            ports = {(p.get("protocol", "TCP"), p.get("port")) for p in rule.get("ports") or []}
            for name in selected:
                if name not in SERVICES:
                    continue
                for peer in rule.get("to") or []:
                    problem = _egress_problem(name, peer, ports)
                    if problem:
                        findings.append(
                            Finding("network", f"{label} {ident(policy)}".strip(), problem)
                        )
    return findings


def _egress_problem(service: str, peer: Manifest, ports: set[tuple[str, object]]) -> str | None:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        if block.get("cidr") == NODE_LOCAL_DNS and not block.get("except"):
            if ports and ports <= {("UDP", 53), ("TCP", 53)}:
                return None
            return f"lets {service} reach NodeLocal DNS ({NODE_LOCAL_DNS}) on more than port 53"
        if service in MAY_LEAVE_CLUSTER:
            return None
        return f"lets {service} reach {peer['ipBlock'].get('cidr')} outside the cluster"
    if "namespaceSelector" in peer:
        if _namespace_is(peer, DNS_NAMESPACE):
            return None
        return f"lets {service} reach another namespace ({peer['namespaceSelector']})"
    pod = peer.get("podSelector") or {}
    labels = pod.get("matchLabels") or {}
    if all(labels.get(k) == v for k, v in KAFKA_POD.items()):
        return None
    if all(labels.get(k) == v for k, v in POSTGRES_POD.items()):
        return None
    if all(labels.get(k) == v for k, v in KEYS_POD.items()):
        if service in KEYSTORE_USERS:
            return None
        return f"lets {service} reach the key store's cluster: only {', '.join(KEYSTORE_USERS)}"
    return f"lets {service} reach pods {pod or 'all'}: only Kafka, PostgreSQL and DNS"
