"""deploy-check catches what it is there to catch: each test breaks a rendered manifest
(or the compose file) the way a careless edit would, and expects the check to say so.

The tools come from .venv-tools/, which `make deploy-check` installs (and `make test`
runs it first)."""

from __future__ import annotations

import copy
import json
import re
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


def settings_map(docs: list[Manifest]) -> Manifest:
    """The ConfigMap vroegsignaal-settings, by its generated (hashed) name."""
    (found,) = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("vroegsignaal-settings")
    ]
    return found


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


def test_no_workload_may_hold_the_dead_letter_private_key(production: list[Manifest]) -> None:
    assert not problems(dc.check_split_trust(production, "production"))
    spec = find(production, "Deployment", "audit")["spec"]["template"]["spec"]
    spec["volumes"].append(
        {"name": "dl", "secret": {"secretName": "vroegsignaal-deadletter-private"}}
    )

    found = problems(dc.check_split_trust(production, "production"))

    assert (
        "Deployment/audit: uses vroegsignaal-deadletter-private, which no workload may hold"
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


def test_each_service_logs_in_to_postgres_as_its_own_role_only(
    production: list[Manifest],
) -> None:
    """The migration role's login only in the migration Job; each service its own role;
    the key store only as vs_keystore; no declared role may do more than log in."""
    assert not problems(dc.check_database_roles(production, "production"))
    matching = container(production, "matching")
    for var in matching["env"]:
        if var["name"] == "DATABASE_URL":
            var.pop("value")
            var["valueFrom"] = {"secretKeyRef": {"name": dc.MIGRATOR_SECRET, "key": "uri"}}
        if var["name"] == "KEYSTORE_DATABASE_URL":
            var["value"] = var["value"].replace("vs_keystore", "vs_matching")
    cluster = find(production, "Cluster", "vroegsignaal-db")
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    keys = find(production, "Cluster", "vroegsignaal-keys")
    {r["name"]: r for r in keys["spec"]["managed"]["roles"]}["vs_keystore"]["createrole"] = True
    roles["vs_intake"]["inRoles"] = ["vs_keystore_owner"]
    audit = find(production, "Deployment", "audit")["spec"]["template"]["spec"]
    audit["containers"][0]["env"].append(
        {
            "name": "KEYSTORE_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "vroegsignaal-db-keystore", "key": "password"}},
        }
    )
    jobs = [d for d in production if d.get("kind") == "Job"]
    for job in jobs:
        production.remove(job)

    found = problems(dc.check_database_roles(production, "production"))

    assert "Deployment/matching: uses vroegsignaal-db-app, the migration role's login" in found
    assert "Deployment/matching: DATABASE_URL does not log in as vs_matching" in found
    assert "Deployment/matching: KEYSTORE_DATABASE_URL does not log in as vs_keystore" in found
    assert "role vs_keystore may do more than log in" in found
    assert "role vs_intake is made a member of ['vs_keystore_owner']" in found
    assert "nothing runs 'vroegsignaal migrate'" in found
    assert (
        "Deployment/audit: uses vroegsignaal-db-keystore, another process's database login" in found
    )


def test_the_data_keys_live_in_a_cluster_of_their_own_with_short_backups(
    production: list[Manifest],
) -> None:
    """A backup of the application's data holds no key, and the keys' own backups are kept
    a short time: a restored key undoes every shredding since the backup."""
    keys = find(production, "Cluster", "vroegsignaal-keys")
    store = find(production, "ObjectStore", "vroegsignaal-keys-backups")
    assert keys["spec"]["plugins"][0]["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    assert store["spec"]["retentionPolicy"] == "7d"
    store["spec"]["retentionPolicy"] = "30d"
    keys["spec"]["managed"]["roles"].append({"name": "vs_audit", "login": True})
    main = find(production, "Cluster", "vroegsignaal-db")
    main["spec"]["managed"]["roles"].append({"name": "vs_keystore", "login": True})
    for var in container(production, "notification")["env"]:
        if var["name"] == "KEYSTORE_DATABASE_URL":
            var["value"] = var["value"].replace("vroegsignaal-keys-rw", "vroegsignaal-db-rw")

    found = problems(dc.check_database_roles(production, "production"))

    assert "Cluster/vroegsignaal-keys: keeps backups 30d" in found
    del store["spec"]["retentionPolicy"]
    assert "its ObjectStore sets no retentionPolicy" in problems(
        dc.check_database_roles(production, "production")
    )
    assert "Cluster/vroegsignaal-keys: declares vs_audit, which has no business" in found
    assert "Cluster/vroegsignaal-db: declares vs_keystore, which has no business" in found
    assert (
        "Deployment/notification: KEYSTORE_DATABASE_URL is not the key store's own cluster"
    ) in found


def test_only_the_key_stores_users_reach_its_cluster(production: list[Manifest]) -> None:
    policy = find(production, "NetworkPolicy", "keystore-users-to-keys")
    policy["spec"]["podSelector"]["matchExpressions"][0]["values"].append("audit")

    found = problems(dc.check_network(production, "production"))

    assert "lets audit reach the key store's cluster: only intake, matching, notification" in (
        found
    )


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

    assert (
        "terminationGracePeriodSeconds 10 does not cover a stop of 35 s (preStop 5 s, then "
        "twice the 15 s graceful timeout: HTTP requests, then the drain)"
    ) in found
    assert "automountServiceAccountToken must be false" in found
    assert "readinessProbe must GET /health/ready (has /metrics)" in found
    assert "container matching: no cpu and memory limits" in found


def test_a_service_without_a_prestop_pause_fails(production: list[Manifest]) -> None:
    del container(production, "notification")["lifecycle"]

    found = problems(dc.check_workloads(production))

    (line,) = [line for line in found.splitlines() if "no preStop sleep" in line]
    assert "Deployment/notification" in line
    # Without the pause, 45 s covers the stop itself: the pause is the only finding.
    assert "does not cover" not in found


def test_kafkas_pod_template_must_keep_fs_group_zero(production: list[Manifest]) -> None:
    pool = find(production, "KafkaNodePool", "dual-role")
    del pool["spec"]["template"]["pod"]["securityContext"]["fsGroup"]
    kafka = find(production, "Kafka", "vroegsignaal")
    kafka["spec"]["kafka"]["template"] = {"pod": {"securityContext": {"runAsNonRoot": True}}}

    found = problems(dc.check_placement(production))

    for where in ("KafkaNodePool/dual-role", "Kafka/vroegsignaal"):
        (line,) = [x for x in found.splitlines() if where in x]
        assert "without fsGroup: 0" in line


def test_brokers_instances_and_services_must_spread_over_nodes_and_zones(
    production: list[Manifest],
) -> None:
    pool = find(production, "KafkaNodePool", "dual-role")["spec"]["template"]["pod"]
    pool["topologySpreadConstraints"][0]["whenUnsatisfiable"] = "ScheduleAnyway"
    database = find(production, "Cluster", "vroegsignaal-db")["spec"]
    database["affinity"]["podAntiAffinityType"] = "preferred"
    del database["topologySpreadConstraints"]
    matching = find(production, "Deployment", "matching")["spec"]["template"]["spec"]
    matching["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"] = {
        "app.kubernetes.io/name": "intake"
    }
    audit = find(production, "Deployment", "audit")["spec"]["template"]["spec"]
    audit["topologySpreadConstraints"][1]["whenUnsatisfiable"] = "DoNotSchedule"
    intake = find(production, "Deployment", "intake")["spec"]["template"]["spec"]
    del intake["topologySpreadConstraints"][0]["nodeTaintsPolicy"]

    found = problems(dc.check_placement(production)).splitlines()

    def at(where: str) -> str:
        return "\n".join(x for x in found if where in x)

    assert "must be DoNotSchedule" in at("KafkaNodePool/dual-role")
    assert "podAntiAffinityType required" in at("Cluster/vroegsignaal-db")
    assert "topology.kubernetes.io/zone" in at("Cluster/vroegsignaal-db")
    # A constraint that counts another service's pods spreads nothing of its own.
    assert "over kubernetes.io/hostname that selects its own pods" in at("Deployment/matching")
    assert "must be ScheduleAnyway" in at("Deployment/audit")
    assert "must have nodeTaintsPolicy Honor" in at("Deployment/intake")
    untouched = ("Cluster/vroegsignaal-keys", "Deployment/notification")
    assert not any(at(name) for name in untouched)


def test_an_alert_needs_a_runbook_and_metrics_that_exist(production: list[Manifest]) -> None:
    assert dc.check_alerts(production) == []
    rules = find(production, "PrometheusRule", "vroegsignaal")["spec"]["groups"][0]["rules"]
    lag, stalled, dead_letters = rules[0], rules[1], rules[2]
    # A metric renamed in the code, and the alert left asking for the old name.
    dead_letters["expr"] = dead_letters["expr"].replace("dead_letters_total", "deadletters_total")
    del stalled["annotations"]["runbook"]

    found = problems(dc.check_alerts(production))

    assert (
        "VroegsignaalDeadLetters: asks for vroegsignaal_deadletters_total, which no service "
        "declares"
    ) in found
    assert "VroegsignaalConsumerStalled: needs annotation runbook" in found
    assert lag["alert"] not in found  # Strimzi's exporter's metrics are not the code's
    assert "vroegsignaal_matching_shreds_waiting" in dc.declared_metrics()


def test_each_namespace_has_a_dashboard_of_its_own(rendered: dict[str, list[Manifest]]) -> None:
    boards = {}
    for overlay, docs in copy.deepcopy(rendered).items():
        (board,) = [
            d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("board")
        ]
        assert dc.check_dashboard(docs, overlay) == []
        boards[overlay] = json.loads(board["data"]["vroegsignaal.json"])
        # A namespace renamed after the replacement: its dashboard would collide.
        board["metadata"]["namespace"] = "gemeente-elders"
        assert "must carry the namespace 'gemeente-elders'" in problems(
            dc.check_dashboard(docs, overlay)
        )
    assert boards["dev"]["uid"] == "vs_vroegsignaal-dev_dashboard"
    assert boards["dev"]["templating"]["list"][0] == {
        "name": "namespace",
        "type": "constant",
        "hide": 2,
        "query": "vroegsignaal-dev",
    }
    assert boards["production"]["uid"] != boards["dev"]["uid"]
    assert boards["production"]["panels"] == boards["dev"]["panels"]


def test_a_dashboard_panel_that_sums_every_namespace_is_caught(dev: list[Manifest]) -> None:
    board = next(
        d for d in dev if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("board")
    )
    data = json.loads(board["data"]["vroegsignaal.json"])
    data["panels"][0]["targets"][0]["expr"] = "sum(rate(vroegsignaal_intake_signals_total[5m]))"
    board["data"]["vroegsignaal.json"] = json.dumps(data)

    found = problems(dc.check_dashboard(dev, "dev"))

    assert 'does not filter on namespace="$namespace"' in found


def test_go_only_crd_patterns_and_required_branches_are_read_as_meant() -> None:
    crd = {
        "spec": {
            "group": "example.io",
            "names": {"kind": "Thing"},
            "versions": [
                {
                    "name": "v1",
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "mode": {"type": "string", "pattern": "^(?i)(abort|warn)?$"},
                                "tag": {"type": "string", "pattern": "^(?i)[a-z]+$"},
                                "note": {"type": "string", "pattern": "^\\PC*$"},
                                "ingress": {"type": "array"},
                                "egress": {"type": "array"},
                            },
                            # Cilium's way of saying "ingress or egress": branches that
                            # name a property to require it, not to forbid the rest.
                            "anyOf": [
                                {"properties": {"ingress": {}}, "required": ["ingress"]},
                                {"properties": {"egress": {}}, "required": ["egress"]},
                            ],
                        }
                    },
                }
            ],
        }
    }
    props = dc.crd_json_schema(crd, "v1")["properties"]
    pattern = props["mode"]["pattern"]
    assert re.fullmatch(pattern, "WARN") and re.fullmatch(pattern, "abort")
    assert not re.fullmatch(pattern, "panic")
    assert "pattern" not in props["tag"]  # a bracket expression is left to the API server
    assert "pattern" not in props["note"]  # so is a Unicode class, which ECMA-262 lacks
    schema = dc.crd_json_schema(crd, "v1")
    assert all("additionalProperties" not in branch for branch in schema["anyOf"])
    assert schema["additionalProperties"] is False


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

    found = problems(dc.check_kafka(dev, "dev", stand_in=dc.SIMULATOR_USER))

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
    inbox = find(production, "HTTPRoute", "inbox")
    inbox["spec"]["rules"].append(
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/signals"}}],
            "backendRefs": [{"name": "intake", "port": 8101}],
        }
    )
    egress = find(production, "NetworkPolicy", "services-to-kafka-and-postgres")
    egress["spec"]["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    reach = find(production, "NetworkPolicy", "public-from-gateway")
    reach["spec"]["podSelector"]["matchExpressions"][0]["values"].append("matching")

    found = problems(dc.check_network(production))

    assert "no default-deny NetworkPolicy" in found
    assert "HTTPRoute/inbox: routes to intake" in found
    assert "lets intake reach 0.0.0.0/0 outside the cluster" in found
    assert "lets the Gateway's proxies reach matching" in found


def test_nodelocal_dns_is_reachable_on_port_53_only(production: list[Manifest]) -> None:
    assert dc.check_network(production) == []  # the real policy allows it, on port 53
    dns = find(production, "NetworkPolicy", "dns")
    dns["spec"]["egress"][0]["ports"].append({"protocol": "TCP", "port": 443})

    found = problems(dc.check_network(production))

    assert "lets intake reach NodeLocal DNS (169.254.20.10/32) on more than port 53" in found


def test_connections_at_full_scale_fit_each_clusters_limits(production: list[Manifest]) -> None:
    assert dc.check_connections(production, "production") == []
    held = dc.demand(production)
    # matching: 6 replicas at most (KEDA) and one more in a rollout, 6 connections each.
    assert held[("vroegsignaal-db", "vs_matching")] == 7 * 6
    # The key store: intake (2 + 1), matching and notification (6 + 1 each), 2 each.
    assert held[("vroegsignaal-keys", "vs_keystore")] == (3 + 7 + 7) * 2
    settings = settings_map(production)
    # The key store's pool at its default (5), as before this was checked, and larger
    # pools for the rest: 27 pods at most, 12 each, and notification's stream.
    del settings["data"]["VS_KEYSTORE_POOL_SIZE"]
    settings["data"]["VS_DB_POOL_SIZE"] = "12"

    found = problems(dc.check_connections(production, "production"))

    assert "Cluster/vroegsignaal-db: the services may hold 331 connections" in found
    assert "kept apart 340, above max_connections 300" in found
    assert (
        "role vs_keystore may need 85 connections at full scale, above its connectionLimit 40"
        in found
    )
    # A login this check cannot read is said, not skipped.
    for var in container(production, "audit")["env"]:
        if var["name"] == "DATABASE_URL":
            var["value"] = "postgres://$(DATABASE_USER):$(DATABASE_PASSWORD)@db.internal/vs"
    assert "$(DATABASE_USER) connects to db.internal, which is no PostgreSQL cluster" in (
        problems(dc.check_connections(production, "production"))
    )
    for var in container(production, "audit")["env"]:
        if var["name"] == "DATABASE_URL":
            var["value"] = "$(DATABASE_URL_FROM_ELSEWHERE)"
    assert "cannot tell which cluster and role audit DATABASE_URL reaches" in problems(
        dc.check_connections(production, "production")
    )


def test_the_services_reach_the_tracing_collector_on_otlp_only(production: list[Manifest]) -> None:
    collector = find(production, "Deployment", "otel-collector")
    assert dc.check_workloads(production) == [] and collector  # held to the same rules
    settings = settings_map(production)
    assert settings["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    spans = find(production, "NetworkPolicy", "services-to-tracing")
    spans["spec"]["egress"][0]["ports"].append({"protocol": "TCP", "port": 13133})

    found = problems(dc.check_network(production))

    assert "lets matching reach the tracing collector on more than OTLP/HTTP (4318)" in found


def test_of_audit_only_the_privacy_officers_page_is_reachable_through_the_gateway(
    production: list[Manifest],
) -> None:
    assert dc.check_network(production, "production") == []
    audit = find(production, "HTTPRoute", "audit")
    (rule,) = audit["spec"]["rules"]
    matches = rule["matches"]
    assert {(m["path"]["value"], m["path"]["type"]) for m in matches} == set(
        dc.PUBLIC_PATHS["audit"]
    )
    matches.append({"path": {"type": "Exact", "value": "/audit/v1/tree-head"}})
    matches.append({"path": {"type": "PathPrefix", "value": "/audit"}})
    # A prefix on the search would also route /audit/v1/search/anything.
    matches[1]["path"]["type"] = "PathPrefix"
    # A rule without matches routes every path.
    audit["spec"]["rules"].append({"backendRefs": rule["backendRefs"]})

    found = problems(dc.check_network(production, "production"))

    assert "HTTPRoute/audit: routes /audit/v1/tree-head (Exact) to audit" in found
    assert "routes /audit (PathPrefix) to audit" in found
    assert "routes /audit/v1/search (PathPrefix) to audit" in found
    assert "routes / (PathPrefix) to audit" in found
    assert "routes /audit/ui (PathPrefix)" not in found


def test_the_cilium_component_adds_only_the_api_the_node_dns_and_the_gateway() -> None:
    production_on_cilium = dc.render_variant("production+cilium")
    cilium = [d for d in production_on_cilium if d["kind"] == "CiliumNetworkPolicy"]
    assert {d["metadata"]["name"] for d in cilium} == {
        "kubernetes-api",
        "kubernetes-api-entity-operator",
        "node-local-dns",
        "public-from-cilium-gateway",
    }
    assert dc.check_network(production_on_cilium, "production") == []
    api = find(production_on_cilium, "CiliumNetworkPolicy", "kubernetes-api")
    api["spec"]["egress"][0]["toEntities"].append("world")
    dns = find(production_on_cilium, "CiliumNetworkPolicy", "node-local-dns")
    del dns["spec"]["egress"][1]["toPorts"]
    gateway = find(production_on_cilium, "CiliumNetworkPolicy", "public-from-cilium-gateway")
    gateway["spec"]["endpointSelector"]["matchExpressions"][0]["values"].append("intake")

    found = problems(dc.check_network(production_on_cilium, "production"))

    assert "CiliumNetworkPolicy/kubernetes-api: lets pods reach the entity world" in found
    assert "CiliumNetworkPolicy/node-local-dns: an egress rule without toPorts" in found
    assert "lets Cilium's Gateway reach ['audit', 'intake', 'notification', 'pseudonymiser']" in (
        found
    )


def test_the_gateway_listens_on_https_for_this_namespace_only(production: list[Manifest]) -> None:
    gateway = find(production, "Gateway", "vroegsignaal")
    inbox = gateway["spec"]["listeners"][1]
    inbox["protocol"] = "HTTP"
    del inbox["tls"]
    gateway["spec"]["listeners"][2]["allowedRoutes"]["namespaces"]["from"] = "All"
    production.append(
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "old"}}
    )

    found = problems(dc.check_network(production, "production"))

    assert "Gateway/vroegsignaal: listener inbox is not HTTPS terminated here" in found
    assert "listener inbox has no certificate" in found
    assert "listener audit takes routes from other namespaces (All)" in found
    assert "Ingress/old: an Ingress: routes go through the Gateway" in found


def test_production_placeholders_are_listed_and_fail_only_when_strict(
    rendered: dict[str, list[Manifest]], production: list[Manifest]
) -> None:
    left = "\n".join(dc.placeholders(production))
    # The repository's overlay is a template: each municipality value is a placeholder.
    for expected in (
        "ConfigMap/vroegsignaal-settings",
        "data.VS_OIDC_ISSUER: https://REPLACE-",
        "data.VS_INBOX_URL: https://REPLACE-",
        "data.VS_SMTP_HOST: REPLACE-",
        "data.VS_SMTP_PORT: REPLACE-",
        "data.VS_SMTP_SENDER: REPLACE-",
        "data.VS_SMTP_USERNAME: REPLACE-",
        "data.VS_SMTP_STARTTLS: REPLACE-",
        "Gateway/vroegsignaal spec.gatewayClassName: REPLACE-",
        "Gateway/vroegsignaal spec.listeners[1].hostname: replace-inbox-host.invalid",
        "HTTPRoute/pseudonymiser spec.hostnames[0]: replace-pseudonymiser-host.invalid",
        "HTTPRoute/audit spec.hostnames[0]: replace-audit-host.invalid",
        "ObjectStore/vroegsignaal-db-backups spec.configuration.destinationPath: s3://REPLACE-",
        "Deployment/matching spec.template.spec.containers[0].image: REPLACE-",
        "data.policy.yaml: # REPLACE:",
        "data.roster.yaml: # REPLACE:",
    ):
        assert expected in left, expected
    assert dc.placeholders(rendered["dev"]) == []
    assert dc.check_placeholders(production)

    for doc in production:
        _fill_in(doc)
    assert dc.placeholders(production) == []
    assert dc.check_placeholders(production) == []


def _filled(value: str) -> str:
    value = dc.HOST_PLACEHOLDER.sub("inbox.voorbeeldrade.nl", value)
    return value.replace(dc.PLACEHOLDER, "gemeente")


def _fill_in(node: object) -> None:
    """The operator's edit, done crudely: every placeholder replaced by a real-looking value."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str):
                node[key] = _filled(value)
            else:
                _fill_in(value)
    elif isinstance(node, list):
        for n, value in enumerate(node):
            if isinstance(value, str):
                node[n] = _filled(value)
            else:
                _fill_in(value)


def test_production_mounts_the_municipalitys_policy_and_roster(production: list[Manifest]) -> None:
    config = next(
        d
        for d in production
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("vroegsignaal-config")
    )
    assert set(config["data"]) == {"policy.yaml", "roster.yaml"}
    for name in ("matching", "notification", "audit"):
        spec = find(production, "Deployment", name)["spec"]["template"]["spec"]
        main = container(production, name)
        env = {e["name"]: e.get("value") for e in main["env"]}
        assert env["VS_POLICY_FILE"] == "/etc/vroegsignaal/policy.yaml", name
        assert env["VS_ROSTER_FILE"] == "/etc/vroegsignaal/roster.yaml", name
        mount = next(m for m in main["volumeMounts"] if m["mountPath"] == "/etc/vroegsignaal")
        assert mount["readOnly"] is True
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        assert volume["configMap"]["name"] == config["metadata"]["name"]


def test_dev_never_pulls_the_locally_built_image(dev: list[Manifest]) -> None:
    for doc in dev:
        if doc["kind"] != "Deployment":
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            if c["image"].startswith("vroegsignaal"):  # not the tracing collector's
                assert c["imagePullPolicy"] == "IfNotPresent", f"{dc.ident(doc)} {c['name']}"


def test_compose_keeps_kafkas_data_in_its_volume() -> None:
    kafka = yaml.safe_load(dc.COMPOSE_FILE.read_text())["services"]["kafka"]
    data = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert any(str(v).endswith(f":{data}") for v in kafka["volumes"])


def test_production_needs_three_of_everything_and_backups(production: list[Manifest]) -> None:
    assert dc.check_production(production) == []
    cluster = find(production, "Cluster", "vroegsignaal-db")
    cluster["spec"]["instances"] = 1
    production.remove(find(production, "ObjectStore", "vroegsignaal-db-backups"))
    keys = find(production, "Cluster", "vroegsignaal-keys")
    keys["spec"]["backup"] = {"barmanObjectStore": {"destinationPath": "s3://b/keys"}}
    del find(production, "ScheduledBackup", "vroegsignaal-keys-nightly")["spec"]["method"]

    found = problems(dc.check_production(production))

    assert "fewer than 3 PostgreSQL instances" in found
    # Its plugin names an ObjectStore that is not there: no backup at all.
    assert "Cluster/vroegsignaal-db: no backup to object storage" in found
    assert "Cluster/vroegsignaal-keys: backs up with the in-tree barmanObjectStore" in found
    assert "ScheduledBackup/vroegsignaal-keys-nightly: must back up with method plugin" in found


def test_the_dockerfile_runs_as_a_user_without_a_healthcheck_or_dev_code() -> None:
    real = dc.DOCKERFILE.read_text()
    assert dc.check_dockerfile(real) == []
    as_root = "FROM a AS build\nUSER 10001\nFROM b\nUSER root\nHEALTHCHECK CMD true\n"

    found = problems(dc.check_dockerfile(as_root))

    assert "non-root USER" in found
    assert "no HEALTHCHECK" in found
    # The default image built from the stage that keeps the dev-only package, or with the
    # demo users: both refused.
    assert real.rstrip().endswith("USER 10001:10001")
    from_dev = real.replace(
        "FROM runtime AS production\nCOPY --from=build /opt/venv",
        "FROM runtime AS production\nCOPY --from=build-dev /opt/venv",
    )
    assert from_dev != real
    assert "removes vroegsignaal/dev" in problems(dc.check_dockerfile(from_dev))
    kept = real.replace("RUN rm -rf vroegsignaal/dev \\\n    && ", "RUN ")
    assert kept != real
    assert "removes vroegsignaal/dev" in problems(dc.check_dockerfile(kept))
    demo = real.rstrip() + "\nCOPY config/demo-users.yaml ./config/\n"
    assert "demo users" in problems(dc.check_dockerfile(demo))


# -- Kafka login ---------------------------------------------------------------------------


def kafka_volume(docs: list[Manifest], name: str) -> Manifest:
    spec = find(docs, "Deployment", name)["spec"]["template"]["spec"]
    return next(v for v in spec["volumes"] if v["name"] == "kafka")


def set_env(docs: list[Manifest], name: str, variable: str, value: str) -> None:
    env = container(docs, name)["env"]
    env[:] = [e for e in env if e["name"] != variable] + [{"name": variable, "value": value}]


def login_problems(docs: list[Manifest], label: str) -> str:
    return problems(dc.check_kafka_login(docs, label))


def test_every_kafka_client_logs_in_as_its_own_user(rendered: dict[str, list[Manifest]]) -> None:
    for overlay, docs in rendered.items():
        logins, found = dc.kafka_logins(docs, overlay)

        assert found == [], problems(found)
        clients = {login.workload: login.user for login in logins}
        expected = {*dc.SERVICES, *(("simulator",) if overlay == "dev" else ())}
        assert clients == {name: f"svc-{name}" for name in expected}, overlay
        assert {login.bootstrap for login in logins} == {"vroegsignaal-kafka-bootstrap:9093"}
        # The demo issuer beside notification and audit is no Kafka client at all.
        assert len(logins) == len(expected)


def test_a_service_without_its_password_file_fails(production: list[Manifest]) -> None:
    sources = kafka_volume(production, "intake")["projected"]["sources"]
    sources[:] = [s for s in sources if s["secret"]["name"] != "svc-intake"]

    found = login_problems(production, "production")

    assert (
        "Deployment/intake container intake: VS_KAFKA_SASL_PASSWORD_FILE "
        "/var/run/secrets/vroegsignaal/kafka/password must be its password, key password of "
        "the Secret svc-intake mounted as a file; there is no Secret"
    ) in found
    assert "KafkaUser/svc-intake" not in found  # its user is still named: only the file is gone


def test_a_service_pointed_at_another_services_user_fails(production: list[Manifest]) -> None:
    set_env(production, "matching", "VS_KAFKA_SASL_USERNAME", "svc-notification")
    kafka_volume(production, "matching")["projected"]["sources"][0]["secret"]["name"] = (
        "svc-notification"
    )

    found = login_problems(production, "production")

    assert (
        "Deployment/matching container matching: logs in as svc-notification: each workload "
        "logs in as its own KafkaUser, svc-matching"
    ) in found
    assert "KafkaUser/svc-matching: no workload logs in as it" in found


def test_a_username_without_its_kafka_user_or_with_another_login_fails(
    production: list[Manifest],
) -> None:
    production.remove(find(production, "KafkaUser", "svc-audit"))
    find(production, "KafkaUser", "svc-intake")["spec"]["authentication"] = {"type": "tls"}

    found = login_problems(production, "production")

    assert "Deployment/audit container audit: there is no KafkaUser svc-audit" in found
    assert "KafkaUser svc-intake authenticates by tls: not scram-sha-512" in found


def test_plaintext_or_an_unauthenticated_listener_fails(dev: list[Manifest]) -> None:
    # The way it was before: a plain listener, ANONYMOUS a super user, a service on it.
    kafka = find(dev, "Kafka", "vroegsignaal")["spec"]["kafka"]
    kafka["listeners"].append({"name": "plain", "port": 9092, "type": "internal", "tls": False})
    kafka["authorization"]["superUsers"] = ["ANONYMOUS"]
    set_env(dev, "audit", "KAFKA_BOOTSTRAP_SERVERS", "vroegsignaal-kafka-bootstrap:9092")
    set_env(dev, "notification", "VS_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")

    found = login_problems(dev, "dev")

    assert "Kafka/vroegsignaal: listener plain 9092 (internal, no TLS, NO authentication)" in found
    assert "superUsers has ANONYMOUS" in found
    assert (
        "Deployment/audit container audit: KAFKA_BOOTSTRAP_SERVERS "
        "vroegsignaal-kafka-bootstrap:9092 is the listener plain 9092" in found
    )
    assert "container audit: no NetworkPolicy lets it reach the Kafka brokers on port 9092" in found
    assert "container notification: VS_KAFKA_SECURITY_PROTOCOL is PLAINTEXT" in found
    lines = dc.describe_kafka(dev)
    assert "without authentication: plain 9092 (internal, no TLS, NO authentication)" in lines[0]


def test_the_ca_must_be_the_cluster_ca(production: list[Manifest]) -> None:
    ca = kafka_volume(production, "notification")["projected"]["sources"][1]["secret"]
    ca["name"] = "vroegsignaal-clients-ca-cert"  # Strimzi's other CA: not the brokers'

    found = login_problems(production, "production")

    assert (
        "container notification: VS_KAFKA_CA_FILE /var/run/secrets/vroegsignaal/kafka/ca.crt "
        "must be the cluster CA, key ca.crt of the Secret vroegsignaal-cluster-ca-cert mounted "
        "as a file; there is key ca.crt of Secret vroegsignaal-clients-ca-cert"
    ) in found


def test_another_layout_of_the_same_login_passes(production: list[Manifest]) -> None:
    # A plain secret volume per file, mounted with subPath, is as good as the projected one.
    spec = find(production, "Deployment", "audit")["spec"]["template"]["spec"]
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] != "kafka"] + [
        {"name": "kafka-password", "secret": {"secretName": "svc-audit"}},
        {"name": "kafka-ca", "secret": {"secretName": "vroegsignaal-cluster-ca-cert"}},
    ]
    main = container(production, "audit")
    main["volumeMounts"] = [m for m in main["volumeMounts"] if m["name"] != "kafka"] + [
        {"name": "kafka-password", "mountPath": "/run/kafka/password", "subPath": "password"},
        {"name": "kafka-ca", "mountPath": "/run/kafka-ca"},
    ]
    set_env(production, "audit", "VS_KAFKA_SASL_PASSWORD_FILE", "/run/kafka/password")
    set_env(production, "audit", "VS_KAFKA_CA_FILE", "/run/kafka-ca/ca.crt")

    assert dc.check_kafka_login(production, "production") == []


def test_a_ca_mounted_by_sub_path_is_caught(production: list[Manifest]) -> None:
    # A subPath mount is frozen at the container's start: a renewed CA never arrives.
    spec = find(production, "Deployment", "audit")["spec"]["template"]["spec"]
    spec["volumes"].append(
        {"name": "kafka-ca", "secret": {"secretName": "vroegsignaal-cluster-ca-cert"}}
    )
    container(production, "audit")["volumeMounts"].append(
        {"name": "kafka-ca", "mountPath": "/run/kafka-ca.crt", "subPath": "ca.crt"}
    )
    set_env(production, "audit", "VS_KAFKA_CA_FILE", "/run/kafka-ca.crt")

    found = login_problems(production, "production")

    assert (
        "container audit: VS_KAFKA_CA_FILE /run/kafka-ca.crt is mounted by subPath: the "
        "kubelet never updates such a file"
    ) in found
    assert "container notification: VS_KAFKA_CA_FILE" not in found


def test_the_network_must_let_each_client_reach_its_listener(dev: list[Manifest]) -> None:
    egress = find(dev, "NetworkPolicy", "services-to-kafka-and-postgres")
    egress["spec"]["egress"][0]["ports"][0]["port"] = 9092  # a stale port
    peers = find(dev, "Kafka", "vroegsignaal")["spec"]["kafka"]["listeners"][0]
    peers["networkPolicyPeers"] = [
        p for p in peers["networkPolicyPeers"] if "simulator" not in str(p)
    ]

    found = login_problems(dev, "dev")

    for name in dc.SERVICES:
        assert (
            f"Deployment/{name} container {name}: no NetworkPolicy lets it reach the Kafka "
            "brokers on port 9093"
        ) in found
    assert (
        "Deployment/simulator container simulator: the listener scram's networkPolicyPeers "
        "do not select its pods"
    ) in found
    assert "Deployment/simulator container simulator: no NetworkPolicy" not in found


def test_a_service_user_gets_no_create_and_only_its_own_groups(production: list[Manifest]) -> None:
    acls = find(production, "KafkaUser", "svc-matching")["spec"]["authorization"]["acls"]
    acls += [
        {"resource": {"type": "topic", "name": "matches"}, "operations": ["Create"]},
        {
            "resource": {"type": "group", "name": "vroegsignaal-notification"},
            "operations": ["Read"],
        },
        {"resource": {"type": "topic", "name": "matchs"}, "operations": ["Write"]},
        {"resource": {"type": "cluster"}, "operations": ["Alter"]},
    ]

    found = login_problems(production, "production")

    assert "KafkaUser/svc-matching: ACL {'type': 'topic', 'name': 'matches'} ['Create']" in found
    assert "ACL on group vroegsignaal-notification: matching's consumer groups are" in found
    assert "ACL on topic matchs (literal): no KafkaTopic is that" in found
    assert "KafkaUser/svc-matching: ACL {'type': 'cluster'} ['Alter']" in found


def test_keda_reads_the_lag_over_a_listener_that_authenticates(
    production: list[Manifest],
) -> None:
    trigger = find(production, "ScaledObject", "audit")["spec"]["triggers"][0]["metadata"]
    trigger["bootstrapServers"] = "vroegsignaal-kafka-bootstrap.vroegsignaal.svc:9092"
    del find(production, "ScaledObject", "matching")["spec"]["triggers"][0]["metadata"]["sasl"]

    found = login_problems(production, "production")

    assert "ScaledObject/audit: KEDA's lag: " in found and "no listener on port 9092" in found
    assert "ScaledObject/matching: KEDA's lag: set sasl: scram_sha512 and tls: enable" in found


def test_the_simulator_may_write_the_partners_topics_and_nothing_else(
    dev: list[Manifest],
) -> None:
    assert dc.check_kafka(dev, "dev", stand_in=dc.SIMULATOR_USER) == []
    # Without the dev exception its writes are what they are: someone else's topics.
    assert "['svc-simulator'] may write it" in problems(dc.check_kafka(dev, "dev"))

    acls = find(dev, "KafkaUser", dc.SIMULATOR_USER)["spec"]["authorization"]["acls"]
    acls[:] = [a for a in acls if a["resource"].get("name") != "signals.wijkteam-noord"]
    acls.append({"resource": {"type": "topic", "name": "signals.accepted"}, "operations": ["Read"]})

    found = problems(dc.check_kafka(dev, "dev", stand_in=dc.SIMULATOR_USER))

    assert "signals.wijkteam-noord: svc-simulator may not write it" in found
    assert (
        "KafkaUser/svc-simulator: ACL {'type': 'topic', 'name': 'signals.accepted'} ['Read']: "
        "the simulator may only write the partners' topics"
    ) in found


def test_a_service_user_holds_exactly_what_its_code_needs(production: list[Manifest]) -> None:
    """The KafkaUsers grant what the local broker grants (vroegsignaal/provision/kafka_access.py):
    one more ACL, or one fewer, is a finding."""
    notification = find(production, "KafkaUser", "svc-notification")
    notification["spec"]["authorization"]["acls"].append(
        {
            "resource": {"type": "topic", "name": "signals.accepted", "patternType": "literal"},
            "operations": ["Write"],
        }
    )
    matching = find(production, "KafkaUser", "svc-matching")
    matching["spec"]["authorization"]["acls"] = [
        acl
        for acl in matching["spec"]["authorization"]["acls"]
        if acl["resource"].get("name") != "erasures.approved"
    ]

    found = login_problems(production, "production")

    assert (
        "KafkaUser/svc-notification: the ACL ('topic', 'signals.accepted', 'literal', 'Write', "
        "False) is more than notification's code needs"
    ) in found
    assert (
        "KafkaUser/svc-matching: missing the ACL ('topic', 'erasures.approved', 'literal', "
        "'Read', False) that matching's code needs"
    ) in found
