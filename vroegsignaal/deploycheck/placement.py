"""Placement: where pods run and what they may write. Losing one node (or one zone)
must not take two of Kafka's three brokers (replication 3, min.insync 2: every write
stops), two PostgreSQL instances or every replica of a service; and Kafka's pods must
keep Strimzi's fsGroup 0, or on block storage they cannot write their volumes."""

from __future__ import annotations

from collections.abc import Sequence

from vroegsignaal.deploycheck.manifests import Manifest, ident, pod_labels, selects
from vroegsignaal.deploycheck.model import SERVICES, Finding

HOST = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def _spread(constraints: Sequence[Manifest], labels: dict[str, str], hard_host: bool) -> list[str]:
    """What a pod's topologySpreadConstraints lack: one per node (hard if `hard_host`)
    and one per zone (soft: a cluster without zones must still schedule), each
    selecting the pod's own labels."""
    problems = []
    own = [c for c in constraints if selects(c.get("labelSelector"), labels)]
    by_key = {c.get("topologyKey"): c for c in own}
    host = by_key.get(HOST)
    if host is None:
        problems.append(f"no topologySpreadConstraint over {HOST} that selects its own pods")
    elif hard_host and host.get("whenUnsatisfiable") != "DoNotSchedule":
        problems.append(f"its spread over {HOST} must be DoNotSchedule, not a preference")
    elif hard_host and host.get("nodeTaintsPolicy") != "Honor":
        problems.append(
            f"its spread over {HOST} must have nodeTaintsPolicy Honor: tainted nodes it "
            "cannot use would count as empty ones and hold its replicas Pending"
        )
    zone = by_key.get(ZONE)
    if zone is None:
        problems.append(f"no topologySpreadConstraint over {ZONE} that selects its own pods")
    elif zone.get("whenUnsatisfiable") != "ScheduleAnyway":
        problems.append(
            f"its spread over {ZONE} must be ScheduleAnyway: nodes without a zone label "
            "could take none of its pods"
        )
    for c in own:
        if int(c.get("maxSkew", 0)) != 1:
            problems.append(f"its spread over {c.get('topologyKey')} allows a skew above 1")
    return problems


def check_placement(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    findings: list[Finding] = []

    def bad(doc: Manifest, problem: str) -> None:
        findings.append(Finding("placement", f"{label} {ident(doc)}".strip(), problem))

    for doc in docs:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        spec = doc.get("spec") or {}
        if kind == "KafkaNodePool":
            cluster = (doc.get("metadata", {}).get("labels") or {}).get("strimzi.io/cluster")
            pod = ((spec.get("template") or {}).get("pod")) or {}
            labels = {"strimzi.io/cluster": str(cluster), "strimzi.io/pool-name": str(name)}
            for problem in _spread(pod.get("topologySpreadConstraints") or [], labels, True):
                bad(doc, problem)
            for problem in _fs_group(pod):
                bad(doc, problem)
        elif kind == "Kafka":
            pod = ((spec.get("kafka") or {}).get("template") or {}).get("pod") or {}
            for problem in _fs_group(pod):
                bad(doc, problem)
        elif kind == "Cluster" and str(doc.get("apiVersion", "")).startswith("postgresql.cnpg"):
            affinity = spec.get("affinity") or {}
            if not (
                affinity.get("enablePodAntiAffinity") is True
                and affinity.get("podAntiAffinityType") == "required"
                and affinity.get("topologyKey") == HOST
            ):
                bad(
                    doc,
                    "its instances must be kept apart per node: affinity.enablePodAntiAffinity "
                    f"true, podAntiAffinityType required, topologyKey {HOST}",
                )
            labels = {"cnpg.io/cluster": str(name), "cnpg.io/podRole": "instance"}
            for problem in _spread(spec.get("topologySpreadConstraints") or [], labels, False):
                if ZONE in problem:
                    bad(doc, problem)
        elif kind == "Deployment" and name in SERVICES:
            pod_spec = ((spec.get("template") or {}).get("spec")) or {}
            constraints = pod_spec.get("topologySpreadConstraints") or []
            for problem in _spread(constraints, pod_labels(doc), True):
                bad(doc, problem)
    return findings


def _fs_group(pod: Manifest) -> list[str]:
    """A pod securityContext given to Strimzi replaces its default (fsGroup 0, the
    group of the image's kafka user that may write the volumes): it must say it again."""
    context = pod.get("securityContext")
    if context is None or context.get("fsGroup") == 0:
        return []
    return [
        "its pod securityContext replaces Strimzi's default without fsGroup: 0: on block "
        "storage the brokers cannot write their volumes and crash-loop"
    ]
