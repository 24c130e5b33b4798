"""Keycloak, the open-source identity provider many municipalities run, on the local JDK
from its server distribution that Maven resolves (`org.keycloak:keycloak-quarkus-dist`).

Started like Kafka: the distribution is unpacked once into the cache outside the
repository and built once (`kc.sh build`, an in-memory database: every start is a clean
server); a start runs `kc.sh start --optimized` in production mode on loopback HTTP.
The realm comes from the export the operators import (`deploy/keycloak/`), through
Keycloak's admin API, with its `${VS_...}` placeholders filled in.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared.settings import REPO_ROOT
from vroegsignaal.dev.stack.kafka import (
    DEPENDENCY_PLUGIN,
    cache_root,
    java_binary,
    maven_binary,
)
from vroegsignaal.dev.stack.procs import require_free_port, run_checked, stop_process, tail
from vroegsignaal.provision.errors import StackError

KEYCLOAK_VERSION = "26.7.3"
REALM_EXPORT = REPO_ROOT / "deploy" / "keycloak" / "vroegsignaal-realm.json"
REALM = "vroegsignaal"
ADMIN = "admin"
# What `kc.sh build` fixes at build time; a start with other build options would build
# again (20 s), so every start here uses exactly these.
BUILD_OPTIONS = ("--db=dev-mem", "--health-enabled=false", "--metrics-enabled=false")
PLACEHOLDER = re.compile(r"\$\{(VS_[A-Z0-9_]+)\}")


def ensure_keycloak(version: str = KEYCLOAK_VERSION) -> Path:
    """Keycloak's home directory, unpacked and built on first use."""
    home = cache_root() / f"keycloak-{version}"
    dist = home / f"keycloak-{version}"
    marker = home / ".complete"
    if marker.exists():
        return dist
    mvn = maven_binary("Keycloak's server distribution")
    if dist.exists():
        shutil.rmtree(dist)
    home.mkdir(parents=True, exist_ok=True)
    run_checked(
        [
            mvn,
            "-B",
            "-q",
            f"{DEPENDENCY_PLUGIN}:unpack",
            f"-Dartifact=org.keycloak:keycloak-quarkus-dist:{version}:zip",
            f"-DoutputDirectory={home}",
        ],
        f"resolving Keycloak {version} through Maven",
        "Maven Central must be reachable for the first start (check the network, a proxy "
        "in ~/.m2/settings.xml).",
        cwd=home,  # without a project the plugin keeps its markers in the working directory
    )
    if not (dist / "bin" / "kc.sh").exists():
        raise StackError(f"Maven finished but {dist} holds no bin/kc.sh")
    run_checked(
        [str(dist / "bin" / "kc.sh"), "build", *BUILD_OPTIONS],
        f"building Keycloak {version}",
        f"Check the JDK; remove {home} to unpack it again.",
        env=_java_env(),
    )
    marker.write_text(version + "\n")
    return dist


def _java_env() -> dict[str, str]:
    return {**os.environ, "JAVA": java_binary()}


def realm_from_export(text: str, values: Mapping[str, str]) -> dict[str, Any]:
    """The realm export with its `${VS_...}` placeholders (Keycloak's own import syntax)
    replaced; every placeholder must have a value."""
    missing = sorted({m for m in PLACEHOLDER.findall(text) if m not in values})
    if missing:
        raise StackError(
            f"the realm export needs values for {', '.join(missing)} (the services' public "
            "addresses): give them, or set them in Keycloak's environment for its import"
        )
    realm: dict[str, Any] = json.loads(PLACEHOLDER.sub(lambda m: values[m.group(1)], text))
    return realm


@dataclass
class KeycloakServer:
    """One Keycloak on loopback whose log and transaction store live in `data_dir`;
    `admin_password` is the bootstrap administrator's of the master realm."""

    data_dir: Path
    port: int
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    heap: str = "768m"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir / "keycloak.log"

    def issuer(self, realm: str = REALM) -> str:
        return f"{self.url}/realms/{realm}"

    def start(self, timeout: float = 180.0) -> None:
        home = ensure_keycloak()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        require_free_port(self.port, "Keycloak", "the test's Keycloak port")
        env = _java_env() | {
            "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
            "JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{self.heap}",
            # Narayana's transaction store, else written into the shared distribution.
            "JAVA_OPTS_APPEND": "-Dquarkus.transaction-manager.object-store.directory="
            f"{self.data_dir / 'transaction-logs'}",
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(home / "bin" / "kc.sh"),
                    "start",
                    "--optimized",
                    "--http-enabled=true",
                    "--hostname-strict=false",
                    "--http-host=127.0.0.1",
                    f"--http-port={self.port}",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise StackError(
                    f"Keycloak exited with code {self.process.returncode}; see {self.log}:\n"
                    f"{tail(self.log)}"
                )
            try:
                if httpx.get(f"{self.url}/realms/master", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(f"Keycloak did not answer within {timeout:.0f}s; see {self.log}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=30)
            self.process = None

    def admin(self) -> KeycloakAdmin:
        return KeycloakAdmin(self.url, self.admin_password)


class KeycloakAdmin:
    """The few admin API calls the local stack and the tests need: import a realm, add
    users with their attributes and realm roles."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url
        answer = httpx.post(
            f"{url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": ADMIN,
                "password": password,
            },
            timeout=30,
        )
        _check(answer, "logging in to Keycloak's admin API")
        token = answer.json()["access_token"]
        self.http = httpx.Client(
            base_url=f"{url}/admin/realms",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def close(self) -> None:
        self.http.close()

    def import_realm(self, realm: Mapping[str, Any]) -> None:
        _check(self.http.post("", json=dict(realm)), f"importing the realm {realm.get('realm')}")

    def add_user(
        self,
        realm: str,
        *,
        username: str,
        first_name: str,
        last_name: str,
        email: str,
        password: str,
        attributes: Mapping[str, str],
        roles: Iterable[str],
    ) -> str:
        """A user who can log in at once; returns Keycloak's id (the token's `sub`)."""
        created = self.http.post(
            f"/{realm}/users",
            json={
                "username": username,
                "firstName": first_name,
                "lastName": last_name,
                "email": email,
                "emailVerified": True,
                "enabled": True,
                "attributes": {k: [v] for k, v in attributes.items()},
                "credentials": [{"type": "password", "value": password, "temporary": False}],
            },
        )
        _check(created, f"adding the user {username}")
        user_id = created.headers["location"].rsplit("/", 1)[-1]
        wanted = []
        for role in roles:
            found = self.http.get(f"/{realm}/roles/{role}")
            _check(found, f"looking up the realm role {role}")
            wanted.append(found.json())
        mapped = self.http.post(f"/{realm}/users/{user_id}/role-mappings/realm", json=wanted)
        _check(mapped, f"giving {username} the roles {', '.join(r['name'] for r in wanted)}")
        return user_id


def _check(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    raise StackError(f"{what} failed: Keycloak answered {response.status_code} {response.text}")
