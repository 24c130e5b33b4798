"""`make deploy-check`: the deployment validated without a cluster or a Docker engine.

It renders both kustomize overlays (deploy/k8s/overlays/dev and production), validates
every core object against Kubernetes' own schemas (kubernetes-validate, strict) and every
custom resource against its operator's CRD (Strimzi, CloudNativePG and its Barman Cloud
plugin, KEDA, prometheus-operator, the Gateway API), runs checkov on the rendered
manifests (zero failed checks; every skip must carry its reason in the manifest),
validates docker-compose.yml against the Compose Specification, and asserts the
deployment's own rules on the rendered output: split trust first (no pod ever holds
both the pseudonymiser's and the gateway's key), every Kafka client logging in as its
own KafkaUser, SCRAM-SHA-512 over TLS, on a Kafka without a listener that lets anyone in
unauthenticated, only the Gateway's routes from outside, pods spread over nodes and
zones, a grace period that covers each service's stop, alerts that each name a runbook
and only metrics that exist, and database connections at full scale within each
cluster's and each role's limits.

The production overlay's municipality values are literal REPLACE-... placeholders in the
repository: every one left in the production render is listed as a warning, and
`--strict-production` (what an operator runs before applying) fails on them.

The tools live in .venv-tools/ (deploy/tools/install.sh puts them there, pinned). Each
rule is a function from rendered manifests to findings, so the tests can feed it a
broken manifest and see it caught.
"""

from __future__ import annotations

from vroegsignaal.deploycheck.alerts import check_alerts, check_dashboard, declared_metrics
from vroegsignaal.deploycheck.connections import check_connections, demand
from vroegsignaal.deploycheck.kafka import (
    AclEntry,
    KafkaLogin,
    acls_of,
    bootstrap_listener,
    check_kafka,
    check_kafka_login,
    describe_kafka,
    describe_listener,
    kafka_clusters,
    kafka_logins,
    listeners_of,
    mounted_secret,
    partner_ids,
    topic_name,
)
from vroegsignaal.deploycheck.manifests import (
    Manifest,
    container_env,
    containers,
    graceful_timeout,
    ident,
    pod_labels,
    pod_spec,
    pod_template,
    secrets_of,
    selects,
    workloads,
)
from vroegsignaal.deploycheck.model import (
    BARMAN_CLOUD,
    BOOTSTRAP_ENV,
    COMPOSE_FILE,
    COMPOSE_SECRET_OWNERS,
    CUSTOM_GROUPS,
    DNS_NAMESPACE,
    DOCKERFILE,
    FROM_GATEWAY,
    GATEWAY_NAMESPACE_LABEL,
    GATEWAY_SECRET,
    HOST_PLACEHOLDER,
    K8S,
    KAFKA_POD,
    KAFKA_USER_PREFIX,
    KEDA_SCALED,
    KEYS_BACKUP_MAX_DAYS,
    KEYS_CLUSTER,
    KEYS_POD,
    KUBERNETES_VERSION,
    MAY_LEAVE_CLUSTER,
    NOBODYS_SECRETS,
    NODE_LOCAL_DNS,
    NOT_CHECKED,
    OVERLAYS,
    PARTNERS_TEMPLATE,
    PLACEHOLDER,
    POSTGRES_POD,
    PSEUDONYMISER_SECRET,
    PUBLIC,
    PUBLIC_PATHS,
    SECRET_OWNERS,
    SERVICES,
    SIMULATOR_USER,
    SKIP_ANNOTATION,
    TOOLS,
    VARIANTS,
    WORKLOAD_KINDS,
    Finding,
    Report,
)
from vroegsignaal.deploycheck.network import check_network
from vroegsignaal.deploycheck.placement import check_placement
from vroegsignaal.deploycheck.production import (
    check_dockerfile,
    check_placeholders,
    check_production,
    placeholders,
)
from vroegsignaal.deploycheck.runner import main, rules, run
from vroegsignaal.deploycheck.tools import (
    CheckovResult,
    Skip,
    ToolMissing,
    checkov_skips,
    crd_json_schema,
    describe_skips,
    is_custom,
    load_crds,
    render,
    render_variant,
    run_checkov,
    validate_compose,
    validate_core,
    validate_custom,
)
from vroegsignaal.deploycheck.trust import (
    KEYS_MIGRATOR_SECRET,
    KEYSTORE_USERS,
    MIGRATOR_SECRET,
    check_compose_split_trust,
    check_database_roles,
    check_split_trust,
)
from vroegsignaal.deploycheck.workloads import check_scaling, check_services_around, check_workloads

__all__ = [
    "BARMAN_CLOUD",
    "BOOTSTRAP_ENV",
    "COMPOSE_FILE",
    "COMPOSE_SECRET_OWNERS",
    "CUSTOM_GROUPS",
    "DNS_NAMESPACE",
    "DOCKERFILE",
    "FROM_GATEWAY",
    "GATEWAY_NAMESPACE_LABEL",
    "GATEWAY_SECRET",
    "HOST_PLACEHOLDER",
    "K8S",
    "KAFKA_POD",
    "KAFKA_USER_PREFIX",
    "KEDA_SCALED",
    "KEYSTORE_USERS",
    "KEYS_BACKUP_MAX_DAYS",
    "KEYS_CLUSTER",
    "KEYS_MIGRATOR_SECRET",
    "KEYS_POD",
    "KUBERNETES_VERSION",
    "MAY_LEAVE_CLUSTER",
    "MIGRATOR_SECRET",
    "NOBODYS_SECRETS",
    "NODE_LOCAL_DNS",
    "NOT_CHECKED",
    "OVERLAYS",
    "PARTNERS_TEMPLATE",
    "PLACEHOLDER",
    "POSTGRES_POD",
    "PSEUDONYMISER_SECRET",
    "PUBLIC",
    "PUBLIC_PATHS",
    "SECRET_OWNERS",
    "SERVICES",
    "SIMULATOR_USER",
    "SKIP_ANNOTATION",
    "TOOLS",
    "VARIANTS",
    "WORKLOAD_KINDS",
    "AclEntry",
    "CheckovResult",
    "Finding",
    "KafkaLogin",
    "Manifest",
    "Report",
    "Skip",
    "ToolMissing",
    "acls_of",
    "bootstrap_listener",
    "check_alerts",
    "check_compose_split_trust",
    "check_connections",
    "check_dashboard",
    "check_database_roles",
    "check_dockerfile",
    "check_kafka",
    "check_kafka_login",
    "check_network",
    "check_placeholders",
    "check_placement",
    "check_production",
    "check_scaling",
    "check_services_around",
    "check_split_trust",
    "check_workloads",
    "checkov_skips",
    "container_env",
    "containers",
    "crd_json_schema",
    "declared_metrics",
    "demand",
    "describe_kafka",
    "describe_listener",
    "describe_skips",
    "graceful_timeout",
    "ident",
    "is_custom",
    "kafka_clusters",
    "kafka_logins",
    "listeners_of",
    "load_crds",
    "main",
    "mounted_secret",
    "partner_ids",
    "placeholders",
    "pod_labels",
    "pod_spec",
    "pod_template",
    "render",
    "render_variant",
    "rules",
    "run",
    "run_checkov",
    "secrets_of",
    "selects",
    "topic_name",
    "validate_compose",
    "validate_core",
    "validate_custom",
    "workloads",
]
