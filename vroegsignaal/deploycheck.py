"""`make deploy-check`: the deployment validated without a cluster or a Docker engine.

It renders both kustomize overlays (deploy/k8s/overlays/dev and production), validates
every core object against Kubernetes' own schemas (kubernetes-validate, strict) and every
custom resource against its operator's CRD (Strimzi, CloudNativePG, KEDA,
prometheus-operator), runs checkov on the rendered manifests (zero failed checks; every
skip must carry its reason in the manifest), validates docker-compose.yml against the
Compose Specification, and asserts the deployment's own rules on the rendered output:
split trust first (no pod ever holds both the pseudonymiser's and the gateway's key),
and every Kafka client logging in as its own KafkaUser, SCRAM-SHA-512 over TLS, on a
Kafka without a listener that lets anyone in unauthenticated.

The production overlay's municipality values are literal REPLACE-... placeholders in the
repository: every one left in the production render is listed as a warning, and
`--strict-production` (what an operator runs before applying) fails on them.

The tools live in .venv-tools/ (deploy/tools/install.sh puts them there, pinned). Each
rule is a function from rendered manifests to findings, so the tests can feed it a
broken manifest and see it caught.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shared.contracts import Topics
from shared.dbroles import KEYSTORE, KEYSTORE_OWNER, MIGRATOR, SERVICE_ROLES
from shared.settings import REPO_ROOT, Settings
from vroegsignaal.stack import kafka_access

Manifest = dict[str, Any]

TOOLS = REPO_ROOT / ".venv-tools"
K8S = REPO_ROOT / "deploy" / "k8s"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
PARTNERS_TEMPLATE = REPO_ROOT / "config" / "partners.yaml"
OVERLAYS = ("dev", "production")
KUBERNETES_VERSION = "1.33.0"

SERVICES = ("pseudonymiser", "intake", "matching", "notification", "audit")
KEDA_SCALED = ("matching", "notification", "audit")
# Reachable from an Ingress: the pseudonymiser and the inbox (notification) wholly; of
# audit only the privacy officer's page and the two calls it makes (path, pathType).
PUBLIC = ("pseudonymiser", "notification")
PUBLIC_PATHS = {
    "audit": (
        ("/audit/ui", "Prefix"),
        ("/audit/v1/search", "Exact"),
        ("/audit/v1/me", "Exact"),
        ("/audit/v1/erasures", "Prefix"),
        ("/audit/v1/integrity", "Exact"),
        ("/audit/v1/verifications", "Exact"),
        ("/audit/v1/reports", "Prefix"),
        ("/audit/v1/export", "Exact"),
    )
}
FROM_INGRESS = (*PUBLIC, *PUBLIC_PATHS)
# What the municipality must replace in the production overlay (README, Deploying).
PLACEHOLDER = "REPLACE"
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
INGRESS_NAMESPACE = "ingress-nginx"
# Hosts outside the cluster that only these may reach (OIDC issuer, SMTP, webhooks).
MAY_LEAVE_CLUSTER = ("notification", "audit", "matching")
KAFKA_POD = {"strimzi.io/cluster": "vroegsignaal"}
POSTGRES_POD = {"cnpg.io/cluster": "vroegsignaal-db"}
# The key store's own cluster (shared/keystore.py): only its users reach it.
KEYS_CLUSTER = "vroegsignaal-keys"
KEYS_POD = {"cnpg.io/cluster": KEYS_CLUSTER}
# A restored backup of the keys undoes the shreddings since: kept this long at most.
KEYS_BACKUP_MAX_DAYS = 14
DNS_NAMESPACE = "kube-system"
CUSTOM_GROUPS = ("kafka.strimzi.io", "postgresql.cnpg.io", "keda.sh", "monitoring.coreos.com")
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
    "Secrets: none are rendered (created out of band, README 'Deploying'); their "
    "names are checked where pods use them (split trust, Kafka login)",
    "which topics each service reads and writes: its KafkaUser's ACLs must equal the "
    "table the local broker enforces (vroegsignaal/stack/kafka_access.py), which is kept "
    "to the handlers by hand and proven by the tests that run every service under it",
)


class ToolMissing(RuntimeError):
    """A validator is not installed; the message names the command that installs it."""


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


def ident(doc: Manifest) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def _tool(*parts: str) -> Path:
    path = TOOLS.joinpath(*parts)
    if not path.exists():
        raise ToolMissing(f"{path} is missing: run 'make deploy-check' (it installs the tools)")
    return path


# -- rendering -------------------------------------------------------------------------


def render(overlay: str) -> list[Manifest]:
    """The overlay as kustomize renders it, one dict per object."""
    done = subprocess.run(
        [str(_tool("bin", "kustomize")), "build", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kustomize build overlays/{overlay} failed:\n{done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def is_custom(doc: Manifest) -> bool:
    return str(doc.get("apiVersion", "")).split("/")[0] in CUSTOM_GROUPS


def _dump(path: Path, docs: Sequence[Manifest]) -> Path:
    path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
    return path


# -- schemas ---------------------------------------------------------------------------


def validate_core(docs: Sequence[Manifest], workdir: Path, label: str) -> list[Finding]:
    """Core objects against Kubernetes' OpenAPI schemas, strict (no unknown fields)."""
    core = [d for d in docs if not is_custom(d)]
    target = _dump(workdir / f"{label}-core.yaml", core)
    done = subprocess.run(
        [
            str(_tool("validate", "bin", "kubernetes-validate")),
            "--strict",
            "--quiet",
            "-k",
            KUBERNETES_VERSION,
            str(target),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    out = (done.stdout + done.stderr).strip()
    problems = [line for line in out.splitlines() if line.startswith(("ERROR", "WARN"))]
    if done.returncode != 0 and not problems:
        problems = [out or f"kubernetes-validate exited {done.returncode}"]
    return [
        Finding("kubernetes-schema", label, " ".join(line.replace(str(target), "").split()))
        for line in problems
    ]


def crd_json_schema(crd: Manifest, version: str) -> dict[str, Any]:
    """The CRD's openAPIV3Schema for `version` as a JSON Schema, strict as `kubectl apply`
    is: an object that lists its properties allows no others unless the CRD says it
    preserves unknown fields. int-or-string and nullable become JSON Schema types."""
    spec = crd["spec"]
    served = {v["name"]: v for v in spec["versions"]}
    schema = copy.deepcopy(served[version]["schema"]["openAPIV3Schema"])
    strict = _strict(schema)
    props = strict.setdefault("properties", {})
    props["apiVersion"] = {"const": f"{spec['group']}/{version}"}
    props["kind"] = {"const": spec["names"]["kind"]}
    props["metadata"] = {"type": "object"}
    strict["required"] = sorted({*strict.get("required", []), "apiVersion", "kind", "metadata"})
    strict.pop("x-kubernetes-validations", None)
    result: dict[str, Any] = strict
    return result


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-int-or-string"):
        return {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    out = {key: _strict(value) for key, value in node.items() if key != "default"}
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def load_crds(directory: Path) -> dict[tuple[str, str], Manifest]:
    """(apiVersion, kind) -> CRD, for every served version of every CRD in `directory`."""
    crds: dict[tuple[str, str], Manifest] = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for version in doc["spec"]["versions"]:
                if version.get("served", True):
                    key = (
                        f"{doc['spec']['group']}/{version['name']}",
                        doc["spec"]["names"]["kind"],
                    )
                    crds[key] = doc
    return crds


def validate_custom(
    docs: Sequence[Manifest], workdir: Path, label: str
) -> tuple[list[Finding], dict[str, int]]:
    """Custom resources against their operator's CRD; a kind without a CRD is a finding."""
    crds = load_crds(_tool("crds"))
    by_kind: dict[tuple[str, str], list[Manifest]] = {}
    for doc in docs:
        if is_custom(doc):
            by_kind.setdefault((doc["apiVersion"], doc["kind"]), []).append(doc)
    findings: list[Finding] = []
    counts: dict[str, int] = {}
    for (api_version, kind), objects in sorted(by_kind.items()):
        crd = crds.get((api_version, kind))
        if crd is None:
            findings += [
                Finding("crd-schema", f"{label} {ident(d)}", f"no CRD for {api_version} {kind}")
                for d in objects
            ]
            continue
        schema_file = workdir / f"{label}-{kind}.schema.json"
        schema_file.write_text(json.dumps(crd_json_schema(crd, api_version.split("/")[1])))
        files: dict[str, Manifest] = {}
        for n, doc in enumerate(objects):
            path = workdir / f"{label}-{kind}-{n}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            files[str(path)] = doc
        done = subprocess.run(
            [
                str(_tool("validate", "bin", "check-jsonschema")),
                "--output-format",
                "json",
                "--schemafile",
                str(schema_file),
                *files,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        findings += _jsonschema_findings(done, files, "crd-schema", label)
        counts[kind] = counts.get(kind, 0) + len(objects)
    return findings, counts


def _jsonschema_findings(
    done: subprocess.CompletedProcess[str],
    files: dict[str, Manifest] | dict[str, str],
    check: str,
    label: str,
) -> list[Finding]:
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        if done.returncode == 0:
            return []
        return [Finding(check, label, (done.stdout + done.stderr).strip())]
    findings = []
    for error in [*result.get("errors", []), *result.get("parse_errors", [])]:
        source = files.get(error.get("filename", ""))
        where = f"{label} {ident(source) if isinstance(source, dict) else source or ''}".strip()
        deep = error.get("best_deep_match") or error
        findings.append(
            Finding(check, where, f"{deep.get('path', '')}: {deep.get('message', error)}")
        )
    if done.returncode != 0 and not findings:
        findings.append(Finding(check, label, (done.stdout + done.stderr).strip()))
    return findings


def validate_compose(path: Path = COMPOSE_FILE) -> list[Finding]:
    """docker-compose.yml against the Compose Specification (check-jsonschema's copy)."""
    done = subprocess.run(
        [
            str(_tool("validate", "bin", "check-jsonschema")),
            "--output-format",
            "json",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return _jsonschema_findings(done, {str(path): path.name}, "compose-schema", path.name)


# -- checkov ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckovResult:
    passed: int
    failed: list[Finding]
    skipped: list[tuple[str, str]]  # (check id, resource)


def run_checkov(rendered: Mapping[str, Sequence[Manifest]], workdir: Path) -> CheckovResult:
    """checkov's Kubernetes checks on the rendered overlays, offline."""
    target = workdir / "checkov"
    target.mkdir(exist_ok=True)
    for label, docs in rendered.items():
        _dump(target / f"{label}.yaml", docs)
    done = subprocess.run(
        [
            str(_tool("checkov", "bin", "checkov")),
            "--directory",
            str(target),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--compact",
            "--skip-download",
            "--no-fail-on-crash",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        return CheckovResult(
            0, [Finding("checkov", "run", (done.stdout + done.stderr).strip()[-2000:])], []
        )
    reports = result if isinstance(result, list) else [result]
    passed, failed, skipped = 0, [], []
    for report in reports:
        results = report.get("results", {})
        passed += len(results.get("passed_checks", []))
        for check in results.get("failed_checks", []):
            failed.append(
                Finding(
                    "checkov",
                    f"{Path(check['file_path']).stem} {check['resource']}",
                    f"{check['check_id']} {check['check_name']}",
                )
            )
        skipped += [(c["check_id"], c["resource"]) for c in results.get("skipped_checks", [])]
        failed += [
            Finding("checkov", "parse", str(error)) for error in results.get("parsing_errors", [])
        ]
    return CheckovResult(passed, failed, skipped)


@dataclass(frozen=True)
class Skip:
    check_id: str
    resource: str
    overlay: str
    reason: str


def checkov_skips(docs: Sequence[Manifest], label: str) -> tuple[list[Skip], list[Finding]]:
    """Every checkov skip annotation with its reason; a skip without one is a finding."""
    skips, findings = [], []
    for doc in docs:
        annotations = doc.get("metadata", {}).get("annotations") or {}
        for key, value in annotations.items():
            if not SKIP_ANNOTATION.match(key):
                continue
            check_id, _, reason = str(value).partition("=")
            if not reason.strip():
                findings.append(
                    Finding("checkov-skip", f"{label} {ident(doc)}", f"{check_id} has no reason")
                )
            else:
                skips.append(Skip(check_id.strip(), ident(doc), label, reason.strip()))
    return skips, findings


def describe_skips(skips: Sequence[Skip]) -> list[str]:
    """One line per check and reason, naming the objects and overlays it applies to."""
    grouped: dict[tuple[str, str], list[Skip]] = {}
    for skip in skips:
        grouped.setdefault((skip.check_id, skip.reason), []).append(skip)
    lines = []
    for (check_id, reason), group in sorted(grouped.items()):
        objects = sorted({s.resource for s in group})
        overlays = sorted({s.overlay for s in group})
        lines.append(f"{check_id} on {', '.join(objects)} ({', '.join(overlays)}): {reason}")
    return lines


# -- the deployment's own rules ----------------------------------------------------------


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


def check_split_trust(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    """No pod holds both the pseudonymiser's and the gateway's Secret; each is held by its
    own service only (matching holds neither); and each service does hold its own."""
    findings = []
    holders: dict[str, set[str]] = {secret: set() for secret in SECRET_OWNERS}
    for doc, spec in workloads(docs):
        secrets = secrets_of(spec)
        where = f"{label} {ident(doc)}".strip()
        if {PSEUDONYMISER_SECRET, GATEWAY_SECRET} <= secrets:
            findings.append(
                Finding(
                    "split-trust",
                    where,
                    f"mounts both {PSEUDONYMISER_SECRET} and {GATEWAY_SECRET}: one pod would "
                    "hold both keys, and could link a BSN to its matching pseudonym",
                )
            )
        for secret in sorted(secrets & set(NOBODYS_SECRETS)):
            findings.append(
                Finding("split-trust", where, f"uses {secret}, which no workload may hold")
            )
        for secret, owner in SECRET_OWNERS.items():
            if secret not in secrets:
                continue
            holders[secret].add(doc["metadata"]["name"])
            if doc["metadata"]["name"] != owner:
                findings.append(
                    Finding("split-trust", where, f"uses {secret}, which only {owner} may hold")
                )
    for secret, owner in SECRET_OWNERS.items():
        if owner not in holders[secret]:
            findings.append(
                Finding("split-trust", f"{label} Deployment/{owner}".strip(), f"lacks {secret}")
            )
    return findings


# The processes that seal or open personal fields, and so log in to the key store.
KEYSTORE_USERS = ("intake", "matching", "notification")
# The Secret (its name, not its content) of the migration role's login.
MIGRATOR_SECRET = "vroegsignaal-db-app"  # noqa: S105
KEYS_MIGRATOR_SECRET = "vroegsignaal-keys-app"  # noqa: S105


def check_database_roles(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    """Least privilege in PostgreSQL (shared/dbroles.py): the database owner is the
    migration role, which only the migration Job logs in as; each service logs in as its
    own role with its own Secret, and reaches the key store only as vs_keystore, in the
    key store's own cluster (which declares the key store's roles only, and keeps its
    backups at most KEYS_BACKUP_MAX_DAYS); every role is declared without superuser,
    role or database creation."""
    findings = []

    def bad(where: str, problem: str) -> None:
        findings.append(Finding("database", f"{label} {where}".strip(), problem))

    migrations = 0
    for doc, spec in workloads(docs):
        name = doc["metadata"]["name"]
        where = ident(doc)
        runs_migrate = any(c.get("args") == ["migrate"] for c in containers(spec))
        migrations += doc.get("kind") == "Job" and runs_migrate
        held = secrets_of(spec)
        # A database login is its own process's only: the key store's only where it seals
        # or opens (intake, matching, notification), a service's only in that service.
        logins = {f"vroegsignaal-db-{n}" for n in (*SERVICE_ROLES, "keystore")} & held
        allowed = {f"vroegsignaal-db-{name}"} | (
            {"vroegsignaal-db-keystore"} if name in KEYSTORE_USERS else set()
        )
        for secret in sorted(logins - allowed):
            bad(where, f"uses {secret}, another process's database login")
        for secret in sorted({MIGRATOR_SECRET, KEYS_MIGRATOR_SECRET} & held):
            if not runs_migrate:
                bad(where, f"uses {secret}, the migration role's login, which only the "
                    "migration Job may hold")  # fmt: skip
        if doc.get("kind") != "Deployment" or name not in SERVICES:
            continue
        main = next((c for c in containers(spec) if c.get("name") == name), None)
        if main is None:
            continue
        env = container_env(docs, main)
        url = env.get("DATABASE_URL") or ""
        if not url.startswith(f"postgresql://{SERVICE_ROLES[name]}:"):
            bad(where, f"DATABASE_URL does not log in as {SERVICE_ROLES[name]}")
        if f"vroegsignaal-db-{name}" not in secrets_of(spec):
            bad(where, f"lacks its database login, the Secret vroegsignaal-db-{name}")
        keystore_url = env.get("KEYSTORE_DATABASE_URL")
        if keystore_url is not None and not keystore_url.startswith(f"postgresql://{KEYSTORE}:"):
            bad(where, f"KEYSTORE_DATABASE_URL does not log in as {KEYSTORE}")
        if keystore_url is not None and f"@{KEYS_CLUSTER}-rw:" not in keystore_url:
            bad(where, f"KEYSTORE_DATABASE_URL is not the key store's own cluster {KEYS_CLUSTER}")
    if not migrations:
        bad("Job/vroegsignaal-migrate", "missing: nothing runs 'vroegsignaal migrate'")
    clusters = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Cluster"}
    if KEYS_CLUSTER not in clusters:
        bad(f"Cluster/{KEYS_CLUSTER}", "missing: the data keys need a cluster of their own")
    for name, cluster in clusters.items():
        where = ident(cluster)
        owner = ((cluster["spec"].get("bootstrap") or {}).get("initdb") or {}).get("owner")
        if owner != MIGRATOR:
            bad(where, f"the database owner is {owner!r}, not the migration role {MIGRATOR}")
        managed = (cluster["spec"].get("managed") or {}).get("roles") or []
        roles = {r.get("name"): r for r in managed}
        keys = name == KEYS_CLUSTER
        # The keys' cluster knows the key store's roles only; the application's none of them.
        # (The application's cluster may keep the owner role, without login: an earlier
        # version's keys move out as it.)
        wanted = {KEYSTORE, KEYSTORE_OWNER} if keys else set(SERVICE_ROLES.values())
        unwanted = set(SERVICE_ROLES.values()) if keys else {KEYSTORE}
        for role in sorted(wanted - set(roles)):
            bad(where, f"declares no managed role {role}")
        for role in sorted(unwanted & set(roles)):
            bad(where, f"declares {role}, which has no business in this cluster")
        backup = (cluster["spec"].get("backup") or {}).get("retentionPolicy")
        if keys and backup is not None and _days(str(backup)) > KEYS_BACKUP_MAX_DAYS:
            bad(
                where,
                f"keeps backups {backup}: a restored key undoes a shredding, so at most "
                f"{KEYS_BACKUP_MAX_DAYS}d",
            )
        if (roles.get(KEYSTORE_OWNER) or {}).get("login"):
            bad(where, f"{KEYSTORE_OWNER} owns the key store and must not log in")
        for role_name, role in roles.items():
            granted = set(role.get("inRoles") or []) - (
                {KEYSTORE_OWNER} if role_name == MIGRATOR else set()
            )
            if granted:
                bad(where, f"role {role_name} is made a member of {sorted(granted)}")
        for role_name, role in roles.items():
            if any(role.get(a) for a in ("superuser", "createrole", "createdb", "bypassrls")):
                bad(where, f"role {role_name} may do more than log in")
    return findings


def _days(retention: str) -> float:
    """CloudNativePG's retention policy (`30d`, `4w`, `1m`) in days."""
    unit = {"d": 1, "w": 7, "m": 31}.get(retention[-1:], 0)
    try:
        return float(retention[:-1]) * unit if unit else float("inf")
    except ValueError:
        return float("inf")


def check_compose_split_trust(compose: Manifest) -> list[Finding]:
    """The same rule in docker-compose.yml: the pseudonymiser's and the gateway's key
    files go to their own service only, so no container gets both and matching neither."""
    findings = []
    for name, service in (compose.get("services") or {}).items():
        secrets = {s if isinstance(s, str) else s.get("source") for s in service.get("secrets", [])}
        for secret in sorted(secrets & set(COMPOSE_SECRET_OWNERS)):
            owner = COMPOSE_SECRET_OWNERS[secret]
            if name != owner:
                findings.append(
                    Finding(
                        "split-trust",
                        f"docker-compose.yml {name}",
                        f"gets {secret}, which only {owner} may have",
                    )
                )
    return findings


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
        if not grace > timeout:
            bad(
                doc,
                f"terminationGracePeriodSeconds {grace} is not above the {timeout:g} s "
                "graceful timeout: in-flight messages would be cut off",
            )
    for name in SERVICES:
        if name not in seen:
            findings.append(Finding("workload", f"{label} Deployment/{name}".strip(), "missing"))
    return findings


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


def _namespace_is(peer: Manifest, name: str) -> bool:
    selector = peer.get("namespaceSelector")
    return selector is not None and selects(selector, {"kubernetes.io/metadata.name": name})


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
            for name in selected:
                if name not in SERVICES:
                    continue
                for peer in rule.get("to") or []:
                    problem = _egress_problem(name, peer)
                    if problem:
                        findings.append(
                            Finding("network", f"{label} {ident(policy)}".strip(), problem)
                        )
    return findings


def _egress_problem(service: str, peer: Manifest) -> str | None:
    if "ipBlock" in peer:
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


def topic_name(doc: Manifest) -> str:
    return str(doc["spec"].get("topicName") or doc["metadata"]["name"])


def partner_ids(docs: Sequence[Manifest]) -> set[str]:
    return {
        d["metadata"]["name"].removeprefix("partner-")
        for d in docs
        if d.get("kind") == "KafkaUser" and d["metadata"]["name"].startswith("partner-")
    }


def _acl_covers(acl: Manifest, topic: str) -> bool:
    resource = acl.get("resource") or {}
    if resource.get("type") != "topic":
        return False
    name = str(resource.get("name", ""))
    if resource.get("patternType", "literal") == "prefix":
        return topic.startswith(name)
    return name in (topic, "*")


def acls_of(user: Manifest) -> list[Manifest]:
    return list(((user.get("spec") or {}).get("authorization") or {}).get("acls") or [])


def _allows(acl: Manifest, *operations: str) -> bool:
    return acl.get("type", "allow") == "allow" and bool(
        {*operations, "All"} & set(acl.get("operations") or [])
    )


def check_kafka(
    docs: Sequence[Manifest],
    label: str = "",
    expected_partners: set[str] | None = None,
    stand_in: str | None = None,
) -> list[Finding]:
    """A KafkaTopic for every topic (shared/contracts.py) and every partner; each partner's
    KafkaUser may write its own topic and nothing else, and nobody else may write it but
    `stand_in`: the dev simulator's user, which plays every partner and may write their
    topics (all of them) and nothing else."""
    findings = []
    where = label or "manifests"
    topics = {topic_name(d): d for d in docs if d.get("kind") == "KafkaTopic"}
    users = [d for d in docs if d.get("kind") == "KafkaUser"]
    partners = partner_ids(docs)
    if expected_partners is not None and partners != expected_partners:
        findings.append(
            Finding(
                "kafka",
                where,
                f"partner KafkaUsers {sorted(partners)} are not the "
                f"partners of {PARTNERS_TEMPLATE.name} {sorted(expected_partners)}",
            )
        )
    names = Topics()
    wanted = [*names.internal(), *(names.partner(p) for p in sorted(partners))]
    for name in wanted:
        topic = topics.get(name)
        if topic is None:
            findings.append(Finding("kafka", where, f"no KafkaTopic for {name}"))
            continue
        config = topic["spec"].get("config") or {}
        min_isr = int(config.get("min.insync.replicas", 1))
        if "min.insync.replicas" not in config or "retention.ms" not in config:
            findings.append(
                Finding("kafka", f"{where} {name}", "set retention.ms and min.insync.replicas")
            )
        if int(topic["spec"].get("replicas", 1)) < min_isr:
            findings.append(
                Finding("kafka", f"{where} {name}", "fewer replicas than min.insync.replicas")
            )
    for partner_topic in (t for t in topics if names.partner_id_of(t) is not None):
        owner = f"partner-{names.partner_id_of(partner_topic)}"
        writers = {
            u["metadata"]["name"]
            for u in users
            for acl in acls_of(u)
            if _allows(acl, "Write") and _acl_covers(acl, partner_topic)
        }
        if writers - {owner, stand_in}:
            findings.append(
                Finding(
                    "kafka",
                    f"{where} {partner_topic}",
                    f"{sorted(writers - {owner, stand_in})} may write it: only {owner}",
                )
            )
        if stand_in is not None and stand_in not in writers:
            findings.append(
                Finding(
                    "kafka",
                    f"{where} {partner_topic}",
                    f"{stand_in} may not write it: the simulator plays every partner",
                )
            )
        if owner not in writers:
            findings.append(
                Finding("kafka", f"{where} {partner_topic}", f"{owner} may not write it")
            )
    for user in (u for u in users if u["metadata"]["name"] == stand_in):
        partner_topics = {t for t in topics if names.partner_id_of(t) is not None}
        for acl in acls_of(user):
            resource = acl.get("resource") or {}
            ops = set(acl.get("operations") or [])
            plays_partner = (
                resource.get("type") == "topic"
                and resource.get("patternType", "literal") == "literal"
                and resource.get("name") in partner_topics
                and ops <= {"Write", "Describe"}
            )
            if not plays_partner and not (
                resource.get("type") == "cluster" and ops == {"IdempotentWrite"}
            ):
                findings.append(
                    Finding(
                        "kafka",
                        f"{where} {ident(user)}",
                        f"ACL {resource} {acl.get('operations')}: the simulator may only "
                        "write the partners' topics",
                    )
                )
    for user in users:
        pid = user["metadata"]["name"].removeprefix("partner-")
        if not user["metadata"]["name"].startswith("partner-"):
            continue
        own = names.partner(pid)
        if (user["spec"].get("authentication") or {}).get("type") != "scram-sha-512":
            findings.append(Finding("kafka", f"{where} {ident(user)}", "must use scram-sha-512"))
        for acl in acls_of(user):
            resource = acl.get("resource") or {}
            exact = (
                resource.get("type") == "topic"
                and resource.get("name") == own
                and resource.get("patternType", "literal") == "literal"
            )
            extra = set(acl.get("operations") or []) - {"Write", "Describe"}
            if not exact or extra:
                findings.append(
                    Finding(
                        "kafka",
                        f"{where} {ident(user)}",
                        f"ACL {resource} {acl.get('operations')}: a partner may only write {own}",
                    )
                )
    return findings


# -- Kafka login ---------------------------------------------------------------------------


def kafka_clusters(docs: Sequence[Manifest]) -> dict[str, Manifest]:
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Kafka"}


def listeners_of(kafka: Manifest) -> list[Manifest]:
    return list(((kafka.get("spec") or {}).get("kafka") or {}).get("listeners") or [])


def _scram_over_tls(listener: Manifest) -> bool:
    return (
        listener.get("tls") is True
        and (listener.get("authentication") or {}).get("type") == "scram-sha-512"
    )


def describe_listener(listener: Manifest) -> str:
    auth = (listener.get("authentication") or {}).get("type") or "NO authentication"
    tls = "TLS" if listener.get("tls") else "no TLS"
    return f"{listener.get('name')} {listener.get('port')} ({listener.get('type')}, {tls}, {auth})"


def bootstrap_listener(address: str, kafkas: Mapping[str, Manifest]) -> tuple[str, Manifest] | str:
    """The cluster and listener behind `<cluster>-kafka-bootstrap[.<namespace>...]:<port>`,
    or why there is none."""
    host, _, port = address.strip().rpartition(":")
    service = host.split(".")[0]
    for name, kafka in kafkas.items():
        if service != f"{name}-kafka-bootstrap":
            continue
        for listener in listeners_of(kafka):
            if str(listener.get("port")) == port:
                return name, listener
        return f"{address}: Kafka/{name} has no listener on port {port or '(none)'}"
    known = ", ".join(f"{n}-kafka-bootstrap" for n in kafkas) or "no Kafka"
    return f"{address} is not a Strimzi bootstrap service here ({known})"


def mounted_secret(spec: Manifest, container: Manifest, path: str) -> tuple[str, str] | None:
    """(Secret, key) whose value the container reads as the file `path`, through a
    secret or projected volume; None when no Secret puts a file there (or it is unclear
    which one does)."""
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        root = str(mount.get("mountPath", "")).rstrip("/")
        if mount.get("subPath"):
            if path != root:
                continue
            relative = str(mount["subPath"])
        elif path.startswith(root + "/"):
            relative = path[len(root) + 1 :]
        else:
            continue
        volume = volumes.get(mount.get("name")) or {}
        if "secret" in volume:
            sources = [(volume["secret"].get("secretName"), volume["secret"].get("items"))]
        else:
            sources = [
                (source["secret"].get("name"), source["secret"].get("items"))
                for source in (volume.get("projected") or {}).get("sources") or []
                if "secret" in source
            ]
        whole = []
        for secret, items in sources:
            if items is None:
                whole.append((str(secret), relative))
            for item in items or []:
                if item.get("path") == relative:
                    return str(secret), str(item.get("key"))
        # Without `items` every key of the Secret is a file: unambiguous only alone.
        if len(whole) == 1 and len(sources) == 1 and "/" not in relative:
            return whole[0]
    return None


def _reaches(docs: Sequence[Manifest], labels: dict[str, str], cluster: str, port: object) -> bool:
    """Some egress NetworkPolicy on these pod labels lets them reach `cluster`'s brokers
    on `port`."""
    brokers = {"strimzi.io/cluster": cluster, "strimzi.io/broker-role": "true"}
    for policy in (d for d in docs if d.get("kind") == "NetworkPolicy"):
        spec = policy["spec"]
        if "Egress" not in (spec.get("policyTypes") or []):
            continue
        if not selects(spec.get("podSelector"), labels):
            continue
        for rule in spec.get("egress") or []:
            peers = rule.get("to") or [{}]
            to_brokers = any(
                "ipBlock" not in peer
                and "namespaceSelector" not in peer
                and selects(peer.get("podSelector") or {}, brokers)
                for peer in peers
            )
            ports = [str(p.get("port")) for p in rule.get("ports") or []]
            if to_brokers and (not ports or str(port) in ports):
                return True
    return False


def _admits(listener: Manifest, labels: dict[str, str]) -> bool:
    """The listener's networkPolicyPeers (none: everyone) let pods with these labels in."""
    peers = listener.get("networkPolicyPeers")
    if not peers:
        return True
    return any(
        "namespaceSelector" not in peer
        and "ipBlock" not in peer
        and selects(peer.get("podSelector") or {}, labels)
        for peer in peers
    )


@dataclass(frozen=True)
class KafkaLogin:
    workload: str
    user: str | None
    bootstrap: str | None


def kafka_logins(
    docs: Sequence[Manifest], label: str = ""
) -> tuple[list[KafkaLogin], list[Finding]]:
    """Every Kafka client here (a container that sees KAFKA_BOOTSTRAP_SERVERS) and what is
    wrong with its login: it must log in as its own KafkaUser svc-<workload> with
    SCRAM-SHA-512 over TLS, on a listener that authenticates, with the password file from
    the Secret Strimzi makes for that user and the cluster CA, and be let through to the
    brokers by the network policies."""
    kafkas = kafka_clusters(docs)
    users = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "KafkaUser"}
    logins, findings = [], []
    for doc, spec in workloads(docs):
        name = doc["metadata"]["name"]
        labels = pod_labels(doc)
        for container in containers(spec):
            env = container_env(docs, container)
            if BOOTSTRAP_ENV not in env:
                continue
            where = f"{label} {ident(doc)} container {container.get('name')}".strip()
            problems: list[str] = []
            own = f"{KAFKA_USER_PREFIX}{name}"
            protocol = env.get("VS_KAFKA_SECURITY_PROTOCOL")
            if protocol != "SASL_SSL":
                problems.append(
                    f"VS_KAFKA_SECURITY_PROTOCOL is {protocol or 'unset (PLAINTEXT)'}: must "
                    "be SASL_SSL, SCRAM-SHA-512 over TLS as its KafkaUser"
                )
            bootstrap = env.get(BOOTSTRAP_ENV)
            cluster = next(iter(kafkas), "")
            if not bootstrap:
                problems.append(f"{BOOTSTRAP_ENV} is not an address written here")
            for address in bootstrap.split(",") if bootstrap else []:
                found = bootstrap_listener(address, kafkas)
                if isinstance(found, str):
                    problems.append(f"{BOOTSTRAP_ENV} {found}")
                    continue
                cluster, listener = found
                if not _scram_over_tls(listener) or listener.get("type") != "internal":
                    problems.append(
                        f"{BOOTSTRAP_ENV} {address} is the listener {describe_listener(listener)}: "
                        "the services use an internal one with tls and scram-sha-512"
                    )
                if not _reaches(docs, labels, cluster, listener.get("port")):
                    problems.append(
                        f"no NetworkPolicy lets it reach the Kafka brokers on port "
                        f"{listener.get('port')}"
                    )
                if not _admits(listener, labels):
                    problems.append(
                        f"the listener {listener.get('name')}'s networkPolicyPeers do not "
                        "select its pods"
                    )
            user = env.get("VS_KAFKA_SASL_USERNAME")
            if user != own:
                problems.append(
                    f"logs in as {user or 'nobody (VS_KAFKA_SASL_USERNAME unset)'}: each "
                    f"workload logs in as its own KafkaUser, {own}"
                )
            kafka_user = users.get(user or "")
            if user and kafka_user is None:
                problems.append(f"there is no KafkaUser {user}")
            elif kafka_user is not None:
                meta = kafka_user["metadata"]
                auth = ((kafka_user.get("spec") or {}).get("authentication") or {}).get("type")
                if auth != "scram-sha-512":
                    problems.append(f"KafkaUser {user} authenticates by {auth}: not scram-sha-512")
                if (meta.get("labels") or {}).get("strimzi.io/cluster") != cluster:
                    problems.append(f"KafkaUser {user} is not a user of Kafka/{cluster}")
            for variable, wanted, what in (
                ("VS_KAFKA_SASL_PASSWORD_FILE", (user or own, "password"), "its password"),
                ("VS_KAFKA_CA_FILE", (f"{cluster}-cluster-ca-cert", "ca.crt"), "the cluster CA"),
            ):
                path = env.get(variable)
                got = mounted_secret(spec, container, path) if path else None
                if got != wanted:
                    source = f"key {got[1]} of Secret {got[0]}" if got else "no Secret"
                    problems.append(
                        f"{variable} {path or '(unset)'} must be {what}, key {wanted[1]} of "
                        f"the Secret {wanted[0]} mounted as a file; there is {source}"
                    )
            findings += [Finding("kafka-login", where, problem) for problem in problems]
            logins.append(KafkaLogin(name, user, bootstrap))
    return logins, findings


def describe_kafka(docs: Sequence[Manifest]) -> list[str]:
    """The listeners and who logs in as whom, for the output: a reviewer sees at a glance
    that every listener authenticates."""
    lines = []
    for name, kafka in kafka_clusters(docs).items():
        listeners = listeners_of(kafka)
        open_ = [x for x in listeners if not (x.get("authentication") or {}).get("type")]
        lines.append(
            f"Kafka/{name} listeners: {'; '.join(map(describe_listener, listeners))}; "
            f"without authentication: {', '.join(map(describe_listener, open_)) or 'none'}"
        )
    logins, _ = kafka_logins(docs)
    if logins:
        lines.append(
            "Kafka logins: "
            + ", ".join(f"{x.workload} as {x.user} at {x.bootstrap}" for x in logins)
        )
    return lines


def check_kafka_login(docs: Sequence[Manifest], label: str = "") -> list[Finding]:
    """No Kafka listener without authentication and no super user ANONYMOUS; every Kafka
    client logs in as its own KafkaUser (kafka_logins); every service user is used by its
    workload and holds only what a service needs (Read, Write, Describe on topics that
    exist, Read on its own consumer groups, IdempotentWrite), with no Create: topics are
    KafkaTopics; KEDA reads the lag over a listener that authenticates."""
    where = label or "manifests"
    kafkas = kafka_clusters(docs)
    findings = []
    for name, kafka in kafkas.items():
        at = f"{where} Kafka/{name}"
        for listener in listeners_of(kafka):
            if not (listener.get("authentication") or {}).get("type"):
                findings.append(
                    Finding(
                        "kafka-login",
                        at,
                        f"listener {describe_listener(listener)}: whoever reaches it is "
                        "ANONYMOUS; every client logs in as its KafkaUser",
                    )
                )
        authorization = ((kafka.get("spec") or {}).get("kafka") or {}).get("authorization")
        if (authorization or {}).get("type") != "simple":
            findings.append(Finding("kafka-login", at, "authorization is not simple: no ACLs"))
        supers = [str(u) for u in (authorization or {}).get("superUsers") or []]
        if any(u.removeprefix("User:") == "ANONYMOUS" for u in supers):
            findings.append(
                Finding(
                    "kafka-login",
                    at,
                    "superUsers has ANONYMOUS: a client that does not log in would pass every ACL",
                )
            )
    logins, found = kafka_logins(docs, label)
    findings += found
    used = {login.user for login in logins}
    topics = {topic_name(d) for d in docs if d.get("kind") == "KafkaTopic"}
    for user in (d for d in docs if d.get("kind") == "KafkaUser"):
        name = user["metadata"]["name"]
        if not name.startswith(KAFKA_USER_PREFIX):
            continue
        at = f"{where} {ident(user)}"
        if name not in used:
            findings.append(
                Finding("kafka-login", at, "no workload logs in as it: a password nobody needs")
            )
        workload = name.removeprefix(KAFKA_USER_PREFIX)
        for acl in acls_of(user):
            problem = _service_acl_problem(acl, workload, topics)
            if problem:
                findings.append(Finding("kafka-login", at, problem))
        if workload in kafka_access.SERVICES:
            findings += _acls_as_the_code_needs(user, workload, at)
    for scaled in (d for d in docs if d.get("kind") == "ScaledObject"):
        for trigger in scaled["spec"].get("triggers") or []:
            if trigger.get("type") != "kafka":
                continue
            meta = trigger.get("metadata") or {}
            for address in str(meta.get("bootstrapServers", "")).split(","):
                found_listener = bootstrap_listener(address, kafkas)
                if isinstance(found_listener, str):
                    problem = found_listener
                elif not _scram_over_tls(found_listener[1]):
                    problem = f"{address} is the listener {describe_listener(found_listener[1])}"
                elif (meta.get("sasl"), meta.get("tls")) != ("scram_sha512", "enable"):
                    problem = "set sasl: scram_sha512 and tls: enable"
                else:
                    continue
                findings.append(
                    Finding("kafka-login", f"{where} {ident(scaled)}", f"KEDA's lag: {problem}")
                )
    return findings


AclEntry = tuple[str, str, str, str, bool]


def _acl_entries(acl: Manifest) -> set[AclEntry]:
    """One KafkaUser ACL as (resource, name, pattern, operation, deny) entries."""
    resource = acl.get("resource") or {}
    return {
        (
            str(resource.get("type")),
            str(resource.get("name", "kafka-cluster")),
            str(resource.get("patternType", "literal")),
            str(op),
            acl.get("type", "allow") == "deny",
        )
        for op in acl.get("operations") or []
    }


def _acls_as_the_code_needs(user: Manifest, workload: str, at: str) -> list[Finding]:
    """A service's KafkaUser grants exactly what the local broker grants it: the table in
    vroegsignaal/stack/kafka_access.py, which follows the service's code."""
    wanted: set[AclEntry] = {("cluster", "kafka-cluster", "literal", "IdempotentWrite", False)}
    for grant in kafka_access.service_grants(workload, Topics()):
        wanted |= {
            (grant.resource, grant.name, grant.pattern, op, grant.deny) for op in grant.operations
        }
    found: set[AclEntry] = set()
    for acl in acls_of(user):
        found |= _acl_entries(acl)
    findings = [
        Finding("kafka-login", at, f"missing the ACL {entry} that {workload}'s code needs")
        for entry in sorted(wanted - found)
    ]
    findings += [
        Finding(
            "kafka-login",
            at,
            f"the ACL {entry} is more than {workload}'s code needs "
            "(vroegsignaal/stack/kafka_access.py)",
        )
        for entry in sorted(found - wanted)
    ]
    return findings


def _service_acl_problem(acl: Manifest, workload: str, topics: set[str]) -> str | None:
    if acl.get("type", "allow") == "deny":
        return None
    resource = acl.get("resource") or {}
    kind, name = resource.get("type"), str(resource.get("name", ""))
    ops = set(acl.get("operations") or [])
    pattern = resource.get("patternType", "literal")
    group = f"vroegsignaal-{workload}"
    if kind == "topic" and ops <= {"Read", "Write", "Describe"}:
        exists = name in topics if pattern == "literal" else any(t.startswith(name) for t in topics)
        return None if exists else f"ACL on topic {name} ({pattern}): no KafkaTopic is that"
    if kind == "group" and ops <= {"Read", "Describe"} and pattern == "literal":
        if name == group or name.startswith(f"{group}-"):
            return None
        return f"ACL on group {name}: {workload}'s consumer groups are {group}[-<suffix>]"
    if kind == "cluster" and ops == {"IdempotentWrite"}:
        return None
    return (
        f"ACL {resource} {sorted(ops)}: a service gets Read/Write/Describe on topics, Read "
        "on its own consumer groups and IdempotentWrite, nothing else (no Create: topics "
        "are KafkaTopics)"
    )


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


def check_production(docs: Sequence[Manifest]) -> list[Finding]:
    """What production needs beyond the shape: three of everything, and backups."""
    findings = []
    for pool in (d for d in docs if d.get("kind") == "KafkaNodePool"):
        if int(pool["spec"]["replicas"]) < 3:
            findings.append(Finding("production", ident(pool), "fewer than 3 Kafka nodes"))
    clusters = [d for d in docs if d.get("kind") == "Cluster"]
    for cluster in clusters:
        if int(cluster["spec"]["instances"]) < 3:
            findings.append(
                Finding("production", ident(cluster), "fewer than 3 PostgreSQL instances")
            )
        if not (cluster["spec"].get("backup") or cluster["spec"].get("plugins")):
            findings.append(Finding("production", ident(cluster), "no backup to object storage"))
    if not any(d.get("kind") == "ScheduledBackup" for d in docs):
        findings.append(Finding("production", "manifests", "no ScheduledBackup"))
    if not clusters:
        findings.append(Finding("production", "manifests", "no PostgreSQL Cluster"))
    return findings


def placeholders(docs: Sequence[Manifest]) -> list[str]:
    """Every REPLACE-... placeholder left in rendered manifests, as `Kind/name field:
    value` (a multi-line value, such as a policy file in a ConfigMap, by its first line
    with REPLACE): the municipality's values still to fill in."""
    found: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}" if where else str(key))
        elif isinstance(node, list):
            for n, value in enumerate(node):
                walk(value, f"{where}[{n}]")
        elif isinstance(node, str) and PLACEHOLDER in node:
            line = next(x for x in node.splitlines() if PLACEHOLDER in x).strip()
            found.append(f"{where}: {line[:100]}")

    for doc in docs:
        before = len(found)
        walk(doc, "")
        found[before:] = [f"{ident(doc)} {item}" for item in found[before:]]
    return found


def check_placeholders(docs: Sequence[Manifest], label: str = "production") -> list[Finding]:
    """--strict-production: a placeholder left is a failure (the rendered manifests are
    about to be applied)."""
    return [
        Finding("placeholder", label, f"{item}: replace it (README, Deploying)")
        for item in placeholders(docs)
    ]


def check_dockerfile(text: str) -> list[Finding]:
    """One image: the final stage runs as a non-root user and has no HEALTHCHECK."""
    final = re.split(r"(?im)^FROM\s", text)[-1]
    findings = []
    user = re.findall(r"(?im)^USER\s+(\S+)", final)
    if not user or user[-1].split(":")[0] in ("root", "0"):
        findings.append(
            Finding("image", "Dockerfile", "the final stage must end as a non-root USER")
        )
    if re.search(r"(?im)^HEALTHCHECK\s", text):
        findings.append(Finding("image", "Dockerfile", "no HEALTHCHECK: Kubernetes probes do that"))
    return findings


def rules(docs: Sequence[Manifest], label: str) -> list[Finding]:
    """Every rule of the deployment on one rendered overlay."""
    expected = None
    if label == "dev":
        template = yaml.safe_load(PARTNERS_TEMPLATE.read_text())
        expected = {p["id"] for p in template["partners"]}
    return [
        *check_split_trust(docs, label),
        *check_database_roles(docs, label),
        *check_workloads(docs, label),
        *check_services_around(docs, label),
        *check_network(docs, label),
        *check_kafka(docs, label, expected, SIMULATOR_USER if label == "dev" else None),
        *check_kafka_login(docs, label),
        *check_scaling(docs, label),
        *(check_production(docs) if label == "production" else []),
    ]


# -- the whole check -----------------------------------------------------------------------


def _versions() -> str:
    crds = TOOLS / "crds" / "VERSIONS"
    return crds.read_text().strip() if crds.exists() else "unknown"


def run(*, strict_production: bool = False) -> Report:
    report = Report()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="deploy-check-") as tmp:
        workdir = Path(tmp)
        rendered = {overlay: render(overlay) for overlay in OVERLAYS}
        report.say(
            "rendered with kustomize: "
            + ", ".join(f"overlays/{o} ({len(d)} objects)" for o, d in rendered.items())
        )

        core = 0
        for overlay, docs in rendered.items():
            found = report.add(validate_core(docs, workdir, overlay))
            core += sum(1 for d in docs if not is_custom(d))
            for finding in found:
                report.say(f"  FAIL {finding}")
        report.say(
            f"kubernetes schemas (kubernetes-validate, Kubernetes {KUBERNETES_VERSION}, strict): "
            f"{core} core objects checked"
        )

        counts: dict[str, int] = {}
        for overlay, docs in rendered.items():
            found, per_kind = validate_custom(docs, workdir, overlay)
            for kind, n in per_kind.items():
                counts[kind] = counts.get(kind, 0) + n
            for finding in report.add(found):
                report.say(f"  FAIL {finding}")
        report.say(
            f"custom resources against their CRDs ({_versions()}): "
            + ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
        )

        checkov = run_checkov(rendered, workdir)
        report.add(checkov.failed)
        report.say(
            f"checkov: {checkov.passed} passed, {len(checkov.failed)} failed, "
            f"{len(checkov.skipped)} skipped"
        )
        for finding in checkov.failed:
            report.say(f"  FAIL {finding}")
        skips: list[Skip] = []
        for overlay, docs in rendered.items():
            annotated, found = checkov_skips(docs, overlay)
            skips += annotated
            for finding in report.add(found):
                report.say(f"  FAIL {finding}")
        reasoned = {(s.check_id, s.resource) for s in skips}
        for check_id, resource in sorted(set(checkov.skipped)):
            kind, _, name = resource.split(".", 2)
            if (check_id, f"{kind}/{name}") not in reasoned:
                finding = Finding("checkov-skip", resource, f"{check_id} skipped without a reason")
                report.add([finding])
                report.say(f"  FAIL {finding}")
        report.say("  skipped, each with the reason written in the manifest:")
        for line in describe_skips(skips):
            report.say(f"    {line}")

        found = report.add(validate_compose())
        compose = yaml.safe_load(COMPOSE_FILE.read_text())
        found += report.add(check_compose_split_trust(compose))
        found += report.add(check_dockerfile(DOCKERFILE.read_text()))
        report.say(
            f"{COMPOSE_FILE.name} against the Compose Specification, and its split trust; "
            f"{DOCKERFILE.name}: {'FAIL' if found else 'ok'}"
        )
        for finding in found:
            report.say(f"  FAIL {finding}")

        for overlay, docs in rendered.items():
            found = report.add(rules(docs, overlay))
            report.say(
                f"rules on overlays/{overlay} (split trust, workloads, network, Kafka, "
                "Kafka login, scaling"
                + (", production" if overlay == "production" else "")
                + f"): {'FAIL' if found else 'ok'}"
            )
            for finding in found:
                report.say(f"  FAIL {finding}")
            for line in describe_kafka(docs):
                report.say(f"  {line}")

        left = placeholders(rendered["production"])
        if strict_production:
            found = report.add(check_placeholders(rendered["production"]))
            report.say(
                f"placeholders in overlays/production (--strict-production): "
                f"{'FAIL, ' + str(len(found)) + ' left' if found else 'none left, ok'}"
            )
            for finding in found:
                report.say(f"  FAIL {finding}")
        elif left:
            report.say(
                f"WARNING overlays/production still has {len(left)} {PLACEHOLDER} "
                "placeholder(s), the municipality's values (not a failure here; "
                "'python -m vroegsignaal.deploycheck --strict-production' fails on them):"
            )
            for item in left:
                report.say(f"  WARN {item}")
        else:
            report.say("placeholders in overlays/production: none left")

    report.say("not checked offline:")
    for line in NOT_CHECKED:
        report.say(f"  {line}")
    took = time.monotonic() - started
    verdict = f"{len(report.findings)} problem(s)" if report.findings else "passed"
    report.say(f"deploy-check {verdict} in {took:.0f} s")
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m vroegsignaal.deploycheck",
        description="Validate the deployment offline (README, Deploying).",
    )
    parser.add_argument(
        "--strict-production",
        action="store_true",
        help="fail when the production overlay still has a REPLACE placeholder (run this "
        "before applying it)",
    )
    args = parser.parse_args(argv)
    try:
        report = run(strict_production=args.strict_production)
    except RuntimeError as exc:  # a tool missing or failing: the message says which
        print(f"deploy-check: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(1 if report.findings else 0)


if __name__ == "__main__":
    main()
