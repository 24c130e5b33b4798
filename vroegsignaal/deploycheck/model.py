"""The deployment check's shared vocabulary: the constants of the deployment's rules, a
finding, the report."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.settings import REPO_ROOT

TOOLS = REPO_ROOT / ".venv-tools"


K8S = REPO_ROOT / "deploy" / "k8s"


COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"


DOCKERFILE = REPO_ROOT / "Dockerfile"


PARTNERS_TEMPLATE = REPO_ROOT / "config" / "partners.yaml"


OVERLAYS = ("dev", "production")


KUBERNETES_VERSION = "1.33.0"


SERVICES = ("pseudonymiser", "intake", "matching", "notification", "audit")


KEDA_SCALED = ("matching", "notification", "audit")


# Reachable through the Gateway: the pseudonymiser and the inbox (notification) wholly;
# of audit only the privacy officer's page and the calls it makes (path, match type).
PUBLIC = ("pseudonymiser", "notification")


PUBLIC_PATHS = {
    "audit": (
        ("/audit/ui", "PathPrefix"),
        ("/audit/v1/search", "Exact"),
        ("/audit/v1/me", "Exact"),
        ("/audit/v1/erasures", "PathPrefix"),
        ("/audit/v1/integrity", "Exact"),
        ("/audit/v1/verifications", "Exact"),
        ("/audit/v1/reports", "PathPrefix"),
        ("/audit/v1/export", "Exact"),
    )
}


FROM_GATEWAY = (*PUBLIC, *PUBLIC_PATHS)


# What the municipality must replace in the production overlay (docs/operator.md, Deploying).
PLACEHOLDER = "REPLACE"
# Where a value must be a host name (lower case, a DNS name): replace-<what>.invalid
# (.invalid is reserved, RFC 2606: it never resolves).
HOST_PLACEHOLDER = re.compile(r"\breplace-[a-z0-9-]+\.invalid\b")


# The names of the two Secrets (not their content).
PSEUDONYMISER_SECRET = "vroegsignaal-pseudonymiser"  # noqa: S105


GATEWAY_SECRET = "vroegsignaal-gateway"  # noqa: S105


# Who may hold which key (BRIEF §4: split trust). Matching holds neither.
SECRET_OWNERS = {PSEUDONYMISER_SECRET: "pseudonymiser", GATEWAY_SECRET: "intake"}


# Keys no workload may hold: the dead-letter key's private half is the operator's alone
# (services hold only the public half, vroegsignaal-deadletter, to seal originals to).
NOBODYS_SECRETS = ("vroegsignaal-deadletter-private",)


# The same rule on the compose file: the names of its `secrets`.
COMPOSE_SECRET_OWNERS = {
    "oprf-keyring": "pseudonymiser",
    "pseudonymiser-credentials": "pseudonymiser",
    "gateway-keys": "intake",
    "intake-keys": "intake",
}


# Outside the namespace, by `kubernetes.io/metadata.name` (network-policies.yaml).
# The namespace where the Gateway's proxies run carries this label (the operator sets it).
GATEWAY_NAMESPACE_LABEL = {"vroegsignaal.nl/gateway": "true"}


# Hosts outside the cluster that only these may reach (OIDC issuer, SMTP, webhooks).
MAY_LEAVE_CLUSTER = ("notification", "audit", "matching")


KAFKA_POD = {"strimzi.io/cluster": "vroegsignaal"}


POSTGRES_POD = {"cnpg.io/cluster": "vroegsignaal-db"}


# The OpenTelemetry collector every service sends its spans to (tracing.yaml).
TRACING_POD = {"app.kubernetes.io/name": "otel-collector"}


# The key store's own cluster (shared/keystore.py): only its users reach it.
KEYS_CLUSTER = "vroegsignaal-keys"


KEYS_POD = {"cnpg.io/cluster": KEYS_CLUSTER}


# A restored backup of the keys undoes the shreddings since: kept this long at most.
KEYS_BACKUP_MAX_DAYS = 14


DNS_NAMESPACE = "kube-system"
# NodeLocal DNSCache's link-local address (the Kubernetes add-on's default).
NODE_LOCAL_DNS = "169.254.20.10/32"


# CloudNativePG's backup plugin (plugin-barman-cloud), by the name clusters use it.
BARMAN_CLOUD = "barman-cloud.cloudnative-pg.io"


CUSTOM_GROUPS = (
    "kafka.strimzi.io",
    "postgresql.cnpg.io",
    "barmancloud.cnpg.io",
    "keda.sh",
    "monitoring.coreos.com",
    "gateway.networking.k8s.io",
    "cilium.io",
)


# Overlays rendered with a component added, checked as the overlay itself is: name ->
# (overlay, components). Production on Cilium.
VARIANTS = {"production+cilium": ("production", ("cilium",))}


SKIP_ANNOTATION = re.compile(r"^checkov\.io/skip\d+$")


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")


# Kafka clients see this variable; each logs in as the KafkaUser svc-<its workload's name>.
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"


KAFKA_USER_PREFIX = "svc-"


# dev only: the simulated municipality plays every partner with one producer.
SIMULATOR_USER = "svc-simulator"


# What cannot be checked offline, said out loud in the output (never skipped silently).
NOT_CHECKED = (
    "CRD CEL rules (x-kubernetes-validations): evaluating them needs an API server",
    "Secrets: none are rendered (created out of band, docs/operator.md 'Deploying'); their "
    "names are checked where pods use them (split trust, Kafka login)",
    "which topics each service reads and writes: its KafkaUser's ACLs must equal the "
    "table the local broker enforces (vroegsignaal/provision/kafka_access.py), which is kept "
    "to the handlers by hand and proven by the tests that run every service under it",
    "what the CNI makes of the network policies: on Cilium an ipBlock does not match the "
    "API server or a node's own address (components/cilium, checked, says it by entity)",
    "what the Gateway API leaves to its controller: the pseudonymiser's 8 MiB bodies and "
    "the inbox's unbuffered event stream (docs/operator.md, prerequisites)",
    "that the Gateway's proxies run in the namespace labelled vroegsignaal.nl/gateway=true, "
    "and that the GatewayClass named exists",
    "the images' digests and that the nodes can pull them",
)


@dataclass(frozen=True)
class Finding:
    check: str
    where: str
    problem: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.problem}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def say(self, line: str) -> None:
        print(line, flush=True)

    def add(self, found: Iterable[Finding]) -> list[Finding]:
        new = list(found)
        self.findings.extend(new)
        return new
