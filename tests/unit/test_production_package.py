"""The production image's code: the packages without vroegsignaal/dev (what the
Dockerfile's production stage installs). Its command line still serves, migrates and runs
the partner and operator commands, and has no dev-only command; with the dev package, the
same command line has them."""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from shared.settings import REPO_ROOT

PRODUCTION = ["serve", "migrate", "topics", "partner", "roster", "audit", "secrets"]
DEV_ONLY = ["dev", "simulate", "issuer"]


@pytest.fixture(scope="module")
def without_dev(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image")
    skip = shutil.ignore_patterns("__pycache__")
    for package in ("shared", "services", "vroegsignaal"):
        shutil.copytree(REPO_ROOT / package, root / package, ignore=skip)
    shutil.rmtree(root / "vroegsignaal" / "dev")  # what the Dockerfile's build stage does
    return root


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`vroegsignaal ARGS` with `root`'s packages alone: the editable install's finder
    (which maps the packages to this checkout) is taken off the import system."""
    run = (
        "import sys; sys.path.insert(0, sys.argv.pop(1));"
        " sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()];"
        " import vroegsignaal.cli as c;"
        " assert c.__file__.startswith(sys.path[0]), c.__file__; c.main()"
    )
    return subprocess.run(
        [sys.executable, "-c", run, str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )


def commands(help_text: str) -> set[str]:
    return {line.split()[1] for line in help_text.splitlines() if line.startswith("│ ")}


def test_the_production_command_line_has_no_dev_command(without_dev: Path) -> None:
    shown = cli(without_dev, "--help")
    assert shown.returncode == 0, shown.stderr
    assert set(PRODUCTION) <= commands(shown.stdout)
    assert not set(DEV_ONLY) & commands(shown.stdout)
    refused = cli(without_dev, "dev", "up")
    assert refused.returncode != 0
    assert "No such command 'dev'" in refused.stderr
    # Serving still works up to its own checks: an unknown service is named.
    served = cli(without_dev, "serve", "nonsense")
    assert served.returncode == 1
    assert "unknown service 'nonsense'" in served.stderr


def test_with_the_dev_package_the_dev_commands_are_there() -> None:
    shown = cli(REPO_ROOT, "--help")
    assert shown.returncode == 0, shown.stderr
    assert set(PRODUCTION + DEV_ONLY) <= commands(shown.stdout)


def test_every_page_and_migration_file_goes_into_the_package() -> None:
    """What the pages load (the vendored libraries' nested modules too) and every
    migration is package data: a file no pattern names is missing from the image."""
    patterns = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["*"]
    checked = 0
    for package in REPO_ROOT.glob("**/__init__.py"):
        directory = package.parent
        if any(p.startswith(".") or p in ("tests", "node_modules") for p in directory.parts):
            continue
        included = {Path(p) for pattern in patterns for p in glob.glob(pattern, root_dir=directory)}
        for assets in ("static", "web", "migrations"):
            for path in (directory / assets).rglob("*"):
                if path.is_file() and "__pycache__" not in path.parts:
                    assert path.relative_to(directory) in included, f"{path} is not package data"
                    checked += 1
    assert checked > 40
