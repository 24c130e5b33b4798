"""Reading rendered manifests: pods, containers, their secrets, environment and labels."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from shared.settings import Settings
from vroegsignaal.deploycheck.model import WORKLOAD_KINDS

Manifest = dict[str, Any]


def ident(doc: Manifest) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def pod_template(doc: Manifest) -> Manifest | None:
    """The pod a workload runs (metadata and spec), or None for anything else."""
    kind = doc.get("kind")
    if kind == "Pod":
        return doc
    spec: Manifest = doc.get("spec") or {}
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    if kind in WORKLOAD_KINDS:
        template: Manifest = spec.get("template") or {}
        return template
    return None


def pod_spec(doc: Manifest) -> Manifest | None:
    template = pod_template(doc)
    if template is None:
        return None
    spec: Manifest | None = template.get("spec")
    return spec


def pod_labels(doc: Manifest) -> dict[str, str]:
    template = pod_template(doc) or {}
    return dict((template.get("metadata") or {}).get("labels") or {})


def workloads(docs: Sequence[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    for doc in docs:
        spec = pod_spec(doc)
        if spec is not None:
            yield doc, spec


def containers(spec: Manifest) -> list[Manifest]:
    return [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]


def secrets_of(spec: Manifest) -> set[str]:
    """Every Secret a pod can read: volumes (also projected), env and envFrom."""
    names = set()
    for volume in spec.get("volumes") or []:
        if "secret" in volume:
            names.add(volume["secret"].get("secretName"))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "secret" in source:
                names.add(source["secret"].get("name"))
    for container in containers(spec):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                names.add(ref.get("name"))
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                names.add(source["secretRef"].get("name"))
    return {n for n in names if n}


def container_env(docs: Sequence[Manifest], container: Manifest) -> dict[str, str | None]:
    """The environment a container sees: its ConfigMaps (envFrom, as rendered here), then
    its own env, which wins; None for a value taken from a Secret or a field."""
    maps = {
        d["metadata"]["name"]: d.get("data") or {} for d in docs if d.get("kind") == "ConfigMap"
    }
    env: dict[str, str | None] = {}
    for source in container.get("envFrom") or []:
        name = (source.get("configMapRef") or {}).get("name")
        for key, value in maps.get(name, {}).items():
            env[f"{source.get('prefix', '')}{key}"] = str(value)
    for var in container.get("env") or []:
        env[var["name"]] = None if "valueFrom" in var else str(var.get("value", ""))
    return env


def graceful_timeout(docs: Sequence[Manifest], container: Manifest) -> float:
    """VS_GRACEFUL_TIMEOUT_SECONDS as the container sees it: its env, its ConfigMaps, or
    the default of shared/settings.py."""
    value = container_env(docs, container).get("VS_GRACEFUL_TIMEOUT_SECONDS")
    if value is not None:
        return float(value)
    return float(Settings.model_fields["graceful_timeout_seconds"].default)


def selects(selector: Manifest | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) against labels."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _namespace_is(peer: Manifest, name: str) -> bool:
    selector = peer.get("namespaceSelector")
    return selector is not None and selects(selector, {"kubernetes.io/metadata.name": name})
