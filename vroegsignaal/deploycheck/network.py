"""Network policies and the Gateway: who may reach whom."""

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
    FROM_GATEWAY,
    GATEWAY_NAMESPACE_LABEL,
    KAFKA_POD,
    KEYS_POD,
    MAY_LEAVE_CLUSTER,
    NODE_LOCAL_DNS,
    POSTGRES_POD,
    PUBLIC,
    PUBLIC_PATHS,
    SERVICES,
    TRACING_POD,
    Finding,
)
from vroegsignaal.deploycheck.trust import KEYSTORE_USERS


def _route_problems(route: Manifest) -> list[str]:
    """Why an HTTPRoute's rules may not be routed: the pseudonymiser and the inbox may
    be, and of audit exactly the privacy officer's page (PUBLIC_PATHS); a rule without
    matches routes every path."""
    problems = []
    for rule in route["spec"].get("rules") or []:
        backends = [b.get("name") for b in rule.get("backendRefs") or []]
        paths = [
            (
                (m.get("path") or {}).get("value", "/"),
                (m.get("path") or {}).get("type", "PathPrefix"),
            )
            for m in rule.get("matches") or [{}]
        ]
        for backend in backends:
            if backend in PUBLIC:
                continue
            allowed = PUBLIC_PATHS.get(str(backend))
            if allowed is None:
                problems.append(
                    f"routes to {backend}: only {', '.join(PUBLIC)} and the privacy officer's "
                    "page on audit may be reachable from outside"
                )
                continue
            for path in paths:
                if path not in allowed:
                    problems.append(
                        f"routes {path[0]} ({path[1]}) to {backend}: of {backend} only "
                        + ", ".join(f"{p} ({kind})" for p, kind in allowed)
                        + " may be reachable from outside"
                    )
    return problems


# What a CiliumNetworkPolicy (components/cilium) may add to the plain policies: the
# Kubernetes API, a node's own address and NodeLocal DNS out, Cilium's Gateway in.
CILIUM_EGRESS_ENTITIES = {"kube-apiserver", "host"}
CILIUM_INGRESS_ENTITIES = {"ingress"}


def _cilium_problems(policy: Manifest) -> list[str]:
    problems = []
    spec = policy["spec"]
    for rule in spec.get("egress") or []:
        for entity in set(rule.get("toEntities") or []) - CILIUM_EGRESS_ENTITIES:
            problems.append(f"lets pods reach the entity {entity}")
        for cidr in set(rule.get("toCIDR") or []) - {NODE_LOCAL_DNS}:
            problems.append(f"lets pods reach {cidr}")
        if rule.get("toCIDRSet") or rule.get("toFQDNs") or rule.get("toEndpoints"):
            problems.append("adds egress beyond the API, the node and NodeLocal DNS")
        ports = {
            str(p.get("port")) for to in rule.get("toPorts") or [] for p in to.get("ports") or []
        }
        if not ports:
            problems.append("an egress rule without toPorts allows every port")
    for rule in spec.get("ingress") or []:
        for entity in set(rule.get("fromEntities") or []) - CILIUM_INGRESS_ENTITIES:
            problems.append(f"lets the entity {entity} in")
        if rule.get("fromEndpoints") or rule.get("fromCIDR") or rule.get("fromCIDRSet"):
            problems.append("adds ingress beyond Cilium's Gateway")
        selected = (spec.get("endpointSelector") or {}).get("matchExpressions") or []
        names = {v for e in selected for v in e.get("values") or []}
        if not names or not names <= set(FROM_GATEWAY):
            problems.append(
                f"lets Cilium's Gateway reach {sorted(names) or 'every pod'}: only "
                + ", ".join(FROM_GATEWAY)
            )
    return problems


def _gateway_problems(gateway: Manifest) -> list[str]:
    """Every listener HTTPS, terminated with a certificate, taking routes of this
    namespace only."""
    problems = []
    for listener in gateway["spec"].get("listeners") or []:
        name = listener.get("name")
        tls = listener.get("tls") or {}
        if listener.get("protocol") != "HTTPS" or tls.get("mode", "Terminate") != "Terminate":
            problems.append(f"listener {name} is not HTTPS terminated here")
        if not tls.get("certificateRefs"):
            problems.append(f"listener {name} has no certificate")
        allowed = ((listener.get("allowedRoutes") or {}).get("namespaces") or {}).get("from")
        if allowed not in (None, "Same"):
            problems.append(f"listener {name} takes routes from other namespaces ({allowed})")
    return problems


def check_network(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    """Default deny; the Gateway's routes reach only the pseudonymiser, the inbox and, of
    audit, the privacy officer's page (PUBLIC_PATHS), over HTTPS listeners, and its
    proxies only those three services; each service reaches only Kafka, PostgreSQL and
    DNS (notification and audit also HTTPS/SMTP outside the cluster: the OIDC issuer,
    mail, webhooks)."""
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
    for doc in docs:
        kind = doc.get("kind")
        problems = (
            _route_problems(doc)
            if kind == "HTTPRoute"
            else _gateway_problems(doc)
            if kind == "Gateway"
            else ["an Ingress: routes go through the Gateway (gateway.yaml)"]
            if kind == "Ingress"
            else _cilium_problems(doc)
            if kind == "CiliumNetworkPolicy"
            else []
        )
        for issue in problems:
            findings.append(Finding("network", f"{label} {ident(doc)}".strip(), issue))
    pods = {doc["metadata"]["name"]: pod_labels(doc) for doc, _ in workloads(docs)}
    for policy in policies:
        selected = [
            n for n, labels in pods.items() if selects(policy["spec"].get("podSelector"), labels)
        ]
        for rule in policy["spec"].get("ingress") or []:
            if any(_from_gateway(peer) for peer in rule.get("from") or []):
                for name in selected:
                    if name not in FROM_GATEWAY:
                        findings.append(
                            Finding(
                                "network",
                                f"{label} {ident(policy)}".strip(),
                                f"lets the Gateway's proxies reach {name}",
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


def _from_gateway(peer: Manifest) -> bool:
    selector = peer.get("namespaceSelector")
    return selector is not None and selects(selector, GATEWAY_NAMESPACE_LABEL)


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
    if labels and all(labels.get(k) == v for k, v in TRACING_POD.items()):
        if ports <= {("TCP", 4318)} and ports:
            return None
        return f"lets {service} reach the tracing collector on more than OTLP/HTTP (4318)"
    if all(labels.get(k) == v for k, v in KEYS_POD.items()):
        if service in KEYSTORE_USERS:
            return None
        return f"lets {service} reach the key store's cluster: only {', '.join(KEYSTORE_USERS)}"
    return (
        f"lets {service} reach pods {pod or 'all'}: only Kafka, PostgreSQL, DNS and the "
        "tracing collector"
    )
