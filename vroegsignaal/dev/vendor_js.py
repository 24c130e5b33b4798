"""The browser's cryptography, vendored: @noble/curves (RFC 9497 VOPRF on ristretto255)
and @noble/hashes, audited, dependency-free ES modules, served to the pages as they are.

`python -m vroegsignaal.dev.vendor_js` fetches each pinned package from the npm registry
(`npm pack`), refuses a tarball whose integrity is not the pinned one, and copies only
the modules the entry point imports (followed through their imports) with the licence
into `shared/static/vendor/`, writing `MANIFEST.json` (package, version, integrity, each
file's SHA-256). A test holds the committed files to that manifest. To upgrade: change a
pin (version and the registry's `dist.integrity`), run this, review the diff."""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from shared.webapp import STATIC

VENDOR = STATIC / "vendor"
MANIFEST = VENDOR / "MANIFEST.json"
# package -> (version, the registry's dist.integrity for it)
PINS = {
    "@noble/curves": (
        "2.4.0",
        "sha512-P4/62zrgfH33CneE3Dn4WhJVA22YUU0eR51wKIan4NVRvwsA0YnPTwWGpNbpuacSujmSFLvyzpyuR30+fbq2Ew==",
    ),
    "@noble/hashes": (
        "2.4.0",
        "sha512-X5XaVWZIBCT7HHZGm5I7ZQXDwLG+bGXuSrMQAW+7Zvl87h1kmc1ZB1VSRJcpUfoUrGQp4Fkoxm5kZ+Ms+aW+eA==",
    ),
}
ENTRY = ("@noble/curves", "ed25519.js")
IMPORT = re.compile(r"^(?:import|export)\b[^;]*?\bfrom\s+['\"]([^'\"]+)['\"]", re.M | re.S)


def directory_of(package: str) -> str:
    return package.removeprefix("@").replace("/", "-")


def fetch(package: str, work: Path) -> Path:
    """The package's files, from a tarball whose integrity is the pinned one."""
    version, integrity = PINS[package]
    done = subprocess.run(
        ["npm", "pack", f"{package}@{version}", "--silent", "--pack-destination", str(work)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"npm pack {package}@{version} failed: {done.stderr.strip()}")
    tarball = work / done.stdout.strip().splitlines()[-1]
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if digest != integrity:
        sys.exit(f"{tarball.name}: integrity {digest} is not the pinned {integrity}")
    target = work / directory_of(package)
    with tarfile.open(tarball) as archive:
        archive.extractall(target, filter="data")
    return target / "package"


def closure(roots: dict[str, Path]) -> dict[str, set[str]]:
    """Each package's files the entry point needs, following relative and package imports."""
    needed: dict[str, set[str]] = {package: set() for package in roots}
    todo = [ENTRY]
    while todo:
        package, name = todo.pop()
        if name in needed[package]:
            continue
        needed[package].add(name)
        for spec in IMPORT.findall((roots[package] / name).read_text()):
            if spec.startswith("."):
                todo.append(
                    (package, posixpath.normpath(posixpath.join(posixpath.dirname(name), spec)))
                )
                continue
            owner = next((p for p in roots if spec.startswith(p + "/")), None)
            if owner is None:
                sys.exit(f"{package}/{name} imports {spec}, which is not pinned here")
            todo.append((owner, spec[len(owner) + 1 :]))
    return needed


def main() -> None:
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        roots = {package: fetch(package, work) for package in PINS}
        needed = closure(roots)
        shutil.rmtree(VENDOR, ignore_errors=True)
        manifest: dict[str, object] = {}
        for package, names in needed.items():
            version, integrity = PINS[package]
            files = {}
            for name in sorted(names | {"LICENSE"}):
                target = VENDOR / directory_of(package) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(roots[package] / name, target)
                files[name] = hashlib.sha256(target.read_bytes()).hexdigest()
            manifest[package] = {"version": version, "integrity": integrity, "files": files}
        MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"vendored {', '.join(f'{p}@{PINS[p][0]}' for p in PINS)} into {VENDOR}")


if __name__ == "__main__":
    main()
