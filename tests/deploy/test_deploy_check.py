"""deploy-check catches what it is there to catch: each test breaks a rendered manifest
(or the compose file) the way a careless edit would, and expects the check to say so.

The tools come from .venv-tools/, which `make deploy-check` installs (and `make test`
runs it first)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.contracts import Topics
from vroegsignaal import deploycheck as dc

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    if not (dc.TOOLS / "bin" / "kustomize").exists():
        pytest.fail("the deploy tools are not installed: run 'make deploy-check' first")
    return {overlay: dc.render(overlay) for overlay in dc.OVERLAYS}


@pytest.fixture
def dev(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return copy.deepcopy(rendered["dev"])


@pytest.fixture
def production(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return copy.deepcopy(rendered["production"])


def find(docs: list[Manifest], kind: str, name: str) -> Manifest:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def container(docs: list[Manifest], name: str) -> Manifest:
    spec = find(docs, "Deployment", name)["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == name)


def problems(findings: list[dc.Finding]) -> str:
    return "\n".join(map(str, findings))


def test_the_real_manifests_keep_every_rule(rendered: dict[str, list[Manifest]]) -> None:
    for overlay, docs in rendered.items():
        assert dc.rules(docs, overlay) == [], overlay


# -- split trust ---------------------------------------------------------------------------


def test_a_pod_that_mounts_both_secrets_breaks_split_trust(production: list[Manifest]) -> None:
    spec = find(production, "Deployment", "intake")["spec"]["template"]["spec"]
    spec["volumes"].append({"name": "oprf", "secret": {"secretName": dc.PSEUDONYMISER_SECRET}})

    found = problems(dc.check_split_trust(production, "production"))

    assert (
        "Deployment/intake: mounts both vroegsignaal-pseudonymiser and vroegsignaal-gateway"
        in found
    )


def test_split_trust_sees_secrets_through_env_projected_volumes_and_init_containers(
    production: list[Manifest],
) -> None:
    matching = find(production, "Deployment", "matching")["spec"]["template"]["spec"]
    matching["initContainers"] = [
        {"name": "peek", "image": "x", "envFrom": [{"secretRef": {"name": dc.GATEWAY_SECRET}}]}
    ]
    pseudonymiser = find(production, "Deployment", "pseudonymiser")["spec"]["template"]["spec"]
    pseudonymiser["volumes"].append(
        {"name": "p", "projected": {"sources": [{"secret": {"name": dc.GATEWAY_SECRET}}]}}
    )
    audit = container(production, "audit")
    audit["env"].append(
        {
            "name": "X",
            "valueFrom": {"secretKeyRef": {"name": dc.PSEUDONYMISER_SECRET, "key": "k"}},
        }
    )

    found = problems(dc.check_split_trust(production))

    assert "Deployment/matching: uses vroegsignaal-gateway, which only intake may hold" in found
    assert "Deployment/pseudonymiser: mounts both" in found
    assert "Deployment/audit: uses vroegsignaal-pseudonymiser, which only pseudonymiser" in found


def test_a_service_without_its_own_key_is_not_a_pass(production: list[Manifest]) -> None:
    spec = find(production, "Deployment", "pseudonymiser")["spec"]["template"]["spec"]
    spec["volumes"] = [v for v in spec["volumes"] if "secret" not in v]

    assert "lacks vroegsignaal-pseudonymiser" in problems(dc.check_split_trust(production))


def test_compose_gives_no_service_both_keys() -> None:
    compose = yaml.safe_load(dc.COMPOSE_FILE.read_text())
    assert dc.check_compose_split_trust(compose) == []

    compose["services"]["intake"]["secrets"].append("oprf-keyring")
    compose["services"]["matching"]["secrets"].append("gateway-keys")

    found = problems(dc.check_compose_split_trust(compose))
    assert "docker-compose.yml intake" in found
    assert "docker-compose.yml matching" in found


# -- checkov and the workload rules ---------------------------------------------------------


def test_a_deployment_without_read_only_root_filesystem_fails(
    production: list[Manifest], tmp_path: Path
) -> None:
    container(production, "intake")["securityContext"]["readOnlyRootFilesystem"] = False

    result = dc.run_checkov({"production": production}, tmp_path)
    ours = problems(dc.check_workloads(production, "production"))

    assert any(
        "CKV_K8S_22" in f.problem and "Deployment.vroegsignaal.intake" in f.where
        for f in result.failed
    ), problems(result.failed)
    assert "Deployment/intake: container intake: readOnlyRootFilesystem is not true" in ours


def test_the_real_manifests_pass_checkov(
    rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    result = dc.run_checkov(rendered, tmp_path)

    assert result.failed == []
    assert result.passed > 0


def test_a_checkov_skip_needs_a_written_reason(production: list[Manifest]) -> None:
    intake = find(production, "Deployment", "intake")
    intake["metadata"]["annotations"]["checkov.io/skip9"] = "CKV_K8S_22"

    skips, found = dc.checkov_skips(production, "production")

    assert [str(f) for f in found] == [
        "[checkov-skip] production Deployment/intake: CKV_K8S_22 has no reason"
    ]
    assert all(skip.reason for skip in skips)


def test_workload_rules_catch_probes_grace_period_and_token(production: list[Manifest]) -> None:
    deployment = find(production, "Deployment", "matching")
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 10
    deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] = True
    main = container(production, "matching")
    main["readinessProbe"]["httpGet"]["path"] = "/metrics"
    del main["resources"]["limits"]

    found = problems(dc.check_workloads(production))

    assert "terminationGracePeriodSeconds 10 is not above the 15 s graceful timeout" in found
    assert "automountServiceAccountToken must be false" in found
    assert "readinessProbe must GET /health/ready (has /metrics)" in found
    assert "container matching: no cpu and memory limits" in found


# -- schemas -----------------------------------------------------------------------------


def test_kubernetes_schemas_reject_a_wrong_type_and_an_unknown_field(
    production: list[Manifest], tmp_path: Path
) -> None:
    find(production, "Service", "audit")["spec"]["ports"][0]["port"] = "eighty"
    container(production, "intake")["readOnly"] = True  # belongs on a volume mount

    found = dc.validate_core(production, tmp_path, "production")

    text = problems(found)
    assert "service/audit" in text and "'eighty' is not of type 'integer'" in text
    assert "deployment/intake" in text


def test_custom_resources_are_checked_against_their_crds(
    dev: list[Manifest], tmp_path: Path
) -> None:
    find(dev, "KafkaTopic", "matches")["spec"]["partitions"] = "six"
    acls = find(dev, "KafkaUser", "partner-school-de-regenboog")["spec"]["authorization"]["acls"]
    acls[0]["operations"] = ["Steal"]
    find(dev, "ScaledObject", "audit")["spec"]["maxReplicas"] = 4  # it is maxReplicaCount
    dev.append({"apiVersion": "keda.sh/v1alpha1", "kind": "Unknown", "metadata": {"name": "u"}})

    found, counts = dc.validate_custom(dev, tmp_path, "dev")

    text = problems(found)
    assert "KafkaTopic/matches" in text and "'six' is not of type 'integer'" in text
    assert "KafkaUser/partner-school-de-regenboog" in text and "'Steal'" in text
    assert "ScaledObject/audit" in text and "maxReplicas" in text
    assert "no CRD for keda.sh/v1alpha1 Unknown" in text
    partners = yaml.safe_load(dc.PARTNERS_TEMPLATE.read_text())["partners"]
    assert counts["KafkaTopic"] == len(Topics().internal()) + len(partners)


def test_the_real_custom_resources_match_their_crds(
    rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    for overlay, docs in rendered.items():
        found, counts = dc.validate_custom(docs, tmp_path, overlay)
        assert found == [], problems(found)
        assert {"Kafka", "KafkaTopic", "KafkaUser", "Cluster", "ScaledObject"} <= set(counts)


def test_the_compose_file_is_checked_against_the_compose_specification(tmp_path: Path) -> None:
    assert dc.validate_compose() == []
    compose = yaml.safe_load(dc.COMPOSE_FILE.read_text())
    compose["services"]["simulator"]["depends_on"]["intake"]["condition"] = "service_ready"
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(compose))

    found = problems(dc.validate_compose(broken))

    assert "$.services.simulator.depends_on.intake.condition" in found
    assert "'service_ready' is not one of" in found


# -- Kafka, scaling, network -----------------------------------------------------------


def test_a_partner_may_write_only_its_own_topic(dev: list[Manifest]) -> None:
    school = find(dev, "KafkaUser", "partner-school-de-regenboog")
    school["spec"]["authorization"]["acls"].append(
        {
            "resource": {"type": "topic", "name": "signals.jgz-voorbeeldrade"},
            "operations": ["Write"],
        }
    )
    matching = find(dev, "KafkaUser", "svc-matching")
    matching["spec"]["authorization"]["acls"].append(
        {
            "resource": {"type": "topic", "name": "signals.", "patternType": "prefix"},
            "operations": ["Write"],
        }
    )

    found = problems(dc.check_kafka(dev, "dev"))

    assert "KafkaUser/partner-school-de-regenboog: ACL" in found
    assert "signals.jgz-voorbeeldrade: ['partner-school-de-regenboog', 'svc-matching']" in found


def test_every_topic_needs_a_kafka_topic(dev: list[Manifest]) -> None:
    dev.remove(find(dev, "KafkaTopic", "audit.tree-heads"))
    dev.remove(find(dev, "KafkaTopic", "signals.wijkteam-noord"))

    found = problems(dc.check_kafka(dev, "dev", {"wijkteam-noord", "school-de-regenboog"}))

    assert "no KafkaTopic for audit.tree-heads" in found
    assert "no KafkaTopic for signals.wijkteam-noord" in found
    assert "are not the partners of partners.yaml" in found


def test_keda_stays_within_the_partitions_and_alone(production: list[Manifest]) -> None:
    find(production, "ScaledObject", "matching")["spec"]["maxReplicaCount"] = 12
    find(production, "Deployment", "audit")["spec"]["replicas"] = 3
    production.append(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "notification"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "notification"}},
        }
    )

    found = problems(dc.check_scaling(production))

    assert "maxReplicaCount 12 is above the 6 partitions of signals.accepted" in found
    assert "Deployment/audit: sets replicas, which KEDA owns" in found
    assert "HorizontalPodAutoscaler/notification: notification is already scaled by KEDA" in found


def test_network_rules_catch_an_open_namespace_and_extra_reach(production: list[Manifest]) -> None:
    production.remove(find(production, "NetworkPolicy", "default-deny"))
    inbox = find(production, "Ingress", "inbox")
    inbox["spec"]["rules"][0]["http"]["paths"].append(
        {
            "path": "/signals",
            "pathType": "Prefix",
            "backend": {"service": {"name": "intake", "port": {"name": "http"}}},
        }
    )
    egress = find(production, "NetworkPolicy", "services-to-kafka-and-postgres")
    egress["spec"]["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    reach = find(production, "NetworkPolicy", "pseudonymiser-and-inbox-from-ingress")
    reach["spec"]["podSelector"]["matchExpressions"][0]["values"].append("matching")

    found = problems(dc.check_network(production))

    assert "no default-deny NetworkPolicy" in found
    assert "routes /signals to intake" in found
    assert "lets matching reach 0.0.0.0/0 outside the cluster" in found
    assert "lets the ingress controller reach matching" in found


def test_production_needs_three_of_everything_and_backups(production: list[Manifest]) -> None:
    assert dc.check_production(production) == []
    cluster = find(production, "Cluster", "vroegsignaal-db")
    cluster["spec"]["instances"] = 1
    del cluster["spec"]["backup"]

    found = problems(dc.check_production(production))

    assert "fewer than 3 PostgreSQL instances" in found
    assert "no backup to object storage" in found


def test_the_dockerfile_runs_as_a_user_without_a_healthcheck() -> None:
    assert dc.check_dockerfile(dc.DOCKERFILE.read_text()) == []
    as_root = "FROM a AS build\nUSER 10001\nFROM b\nUSER root\nHEALTHCHECK CMD true\n"

    found = problems(dc.check_dockerfile(as_root))

    assert "non-root USER" in found
    assert "no HEALTHCHECK" in found
