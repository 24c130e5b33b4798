"""The external validators: kustomize rendering, Kubernetes and CRD schemas, the Compose
Specification, checkov."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vroegsignaal.deploycheck.manifests import Manifest, ident
from vroegsignaal.deploycheck.model import (
    COMPOSE_FILE,
    CUSTOM_GROUPS,
    K8S,
    KUBERNETES_VERSION,
    SKIP_ANNOTATION,
    TOOLS,
    VARIANTS,
    Finding,
)


class ToolMissing(RuntimeError):
    """A validator is not installed; the message names the command that installs it."""


def _tool(*parts: str) -> Path:
    path = TOOLS.joinpath(*parts)
    if not path.exists():
        raise ToolMissing(f"{path} is missing: run 'make deploy-check' (it installs the tools)")
    return path


def render(overlay: str) -> list[Manifest]:
    """The overlay as kustomize renders it, one dict per object."""
    return _kustomize(K8S / "overlays" / overlay, f"overlays/{overlay}")


def _kustomize(directory: Path, what: str) -> list[Manifest]:
    done = subprocess.run(
        [str(_tool("bin", "kustomize")), "build", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kustomize build {what} failed:\n{done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render_variant(name: str) -> list[Manifest]:
    """An overlay rendered with components added (VARIANTS), as an operator would list
    them in its `components`: a kustomization written for it beside the overlays
    (deploy/k8s/.variants/, git-ignored), so every path stays inside the tree."""
    overlay, components = VARIANTS[name]
    here = K8S / ".variants" / name.replace("+", "-")
    here.mkdir(parents=True, exist_ok=True)
    (here / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"../../overlays/{overlay}"],
                "components": [f"../../components/{c}" for c in components],
            },
            sort_keys=False,
        )
    )
    return _kustomize(here, name)


def is_custom(doc: Manifest) -> bool:
    return str(doc.get("apiVersion", "")).split("/")[0] in CUSTOM_GROUPS


def _dump(path: Path, docs: Sequence[Manifest]) -> Path:
    path.write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
    return path


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


_COMBINATORS = ("anyOf", "oneOf", "allOf", "not")


def _strict(node: Any, branch: bool = False) -> Any:
    """`branch`: a schema under anyOf/oneOf/allOf/not, which names some properties to
    require them (Cilium: ingress or egress), not to forbid the others."""
    if isinstance(node, list):
        return [_strict(item, branch) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-int-or-string"):
        return {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    out = {
        key: _strict(value, key in _COMBINATORS) for key, value in node.items() if key != "default"
    }
    pattern = out.get("pattern")
    if isinstance(pattern, str) and re.search(r"\\[pP]", pattern):
        # A Go (RE2) Unicode class (\PC: no control characters), which JSON Schema's
        # ECMA-262 patterns cannot say without their unicode flag: left to the API server.
        del out["pattern"]
    elif isinstance(pattern, str) and "(?i)" in pattern:
        caseless = _caseless(pattern)
        if caseless is None:
            del out["pattern"]
        else:
            out["pattern"] = caseless
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and not branch
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _caseless(pattern: str) -> str | None:
    """A Go (RE2) pattern with the flag (?i), which JSON Schema's ECMA-262 patterns do
    not have, with each letter as both cases instead (`(?i)warn` -> `[wW][aA][rR][nN]`);
    None where that is not simple (a bracket expression, an escape): the pattern is then
    left to the API server."""
    rest = pattern.replace("(?i)", "")
    if "[" in rest or "\\" in rest:
        return None
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in rest)


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
