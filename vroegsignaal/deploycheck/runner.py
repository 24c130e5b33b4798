"""The whole check: every rule on both overlays, the validators, the report."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from vroegsignaal.deploycheck.alerts import check_alerts, check_dashboard
from vroegsignaal.deploycheck.connections import check_connections
from vroegsignaal.deploycheck.kafka import check_kafka, check_kafka_login, describe_kafka
from vroegsignaal.deploycheck.manifests import Manifest, ident
from vroegsignaal.deploycheck.model import (
    COMPOSE_FILE,
    DOCKERFILE,
    KUBERNETES_VERSION,
    NOT_CHECKED,
    OVERLAYS,
    PARTNERS_TEMPLATE,
    PLACEHOLDER,
    SIMULATOR_USER,
    TOOLS,
    VARIANTS,
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
from vroegsignaal.deploycheck.tools import (
    Skip,
    checkov_skips,
    describe_skips,
    is_custom,
    render,
    render_variant,
    run_checkov,
    validate_compose,
    validate_core,
    validate_custom,
)
from vroegsignaal.deploycheck.trust import (
    check_compose_split_trust,
    check_database_roles,
    check_split_trust,
)
from vroegsignaal.deploycheck.workloads import check_scaling, check_services_around, check_workloads


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
        *check_placement(docs, label),
        *check_alerts(docs, label),
        *check_dashboard(docs, label),
        *check_connections(docs, label),
        *(check_production(docs) if label == "production" else []),
    ]


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

        for variant in VARIANTS:
            docs = render_variant(variant)
            overlay = VARIANTS[variant][0]
            found, per_kind = validate_custom(docs, workdir, variant.replace("+", "-"))
            found += rules(docs, overlay)
            added = [d for d in docs if ident(d) not in {ident(x) for x in rendered[overlay]}]
            report.add(found)
            report.say(
                f"overlays/{overlay} with {', '.join(VARIANTS[variant][1])} (components/): "
                f"{len(added)} objects added, against their CRDs and every rule: "
                f"{'FAIL' if found else 'ok'}"
            )
            for finding in found:
                report.say(f"  FAIL {finding}")

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
                "Kafka login, scaling, placement, alerts, connections"
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
        description="Validate the deployment offline (docs/operator.md, Deploying).",
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
