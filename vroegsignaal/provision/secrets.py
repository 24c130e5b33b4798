"""Secrets for a local stack or a test run: generated once, each in a file of its own.

Every process is handed only its own: the pseudonymiser its VOPRF keys, the gateway its
re-keying key, each partner its signing key and token. Production takes the same files
from its secret store (Kubernetes Secrets); nothing here is for production use.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import ECKey
from pydantic import BaseModel, ConfigDict, Field
from voprf import ristretto

from services.intake.domain import PartnerEntry, PartnersFile
from services.pseudonymiser.domain import TokenHash
from shared.config import Hex32, Name, PublicKeys, VersionedKeys, load_yaml_model
from shared.dbroles import ALL_ROLES
from shared.deadletter import new_key_files
from shared.envelope import IntakeKeyring, new_keyring
from shared.settings import REPO_ROOT
from vroegsignaal.provision.database import load_passwords
from vroegsignaal.provision.kafka_access import (
    ADMIN,
    SERVICES,
    new_password,
    partner_principal,
    service_principal,
)

PARTNERS_TEMPLATE = REPO_ROOT / "config" / "partners.yaml"


@dataclass(frozen=True)
class Secrets:
    directory: Path

    @property
    def oprf_keyring(self) -> Path:
        return self.directory / "oprf-keyring.yaml"

    @property
    def pseudonymiser_credentials(self) -> Path:
        return self.directory / "pseudonymiser-credentials.yaml"

    @property
    def gateway_keys(self) -> Path:
        return self.directory / "gateway-keys.yaml"

    @property
    def kek(self) -> Path:
        return self.directory / "kek.yaml"

    @property
    def audit_signing_key(self) -> Path:
        return self.directory / "audit-signing-key.yaml"

    @property
    def audit_public_key(self) -> Path:
        return self.directory / "audit-public-key.txt"

    @property
    def issuer_key(self) -> Path:
        """The local demo OIDC issuer's signing key (make run and tests only)."""
        return self.directory / "oidc-issuer-key.pem"

    @property
    def intake_keys(self) -> Path:
        """Intake's private keys that partners seal their events to: intake's alone."""
        return self.directory / "intake-keys.yaml"

    @property
    def deadletter_key(self) -> Path:
        """The dead-letter key's public half and digest key: every service has it."""
        return self.directory / "deadletter.yaml"

    @property
    def deadletter_private_key(self) -> Path:
        """The dead-letter key's private half: the operator's alone, no service's."""
        return self.directory / "deadletter-private.yaml"

    @property
    def database_roles(self) -> Path:
        """The database roles' passwords: for `vroegsignaal migrate`, and each process's
        own login (shared/dbroles.py)."""
        return self.directory / "database-roles.yaml"

    def database_passwords(self) -> dict[str, str]:
        return load_passwords(self.database_roles)

    def kafka_password_file(self, principal: str) -> Path:
        """A Kafka principal's SCRAM password, a file each: a process is handed its own."""
        return self.directory / "kafka" / f"{principal}.password"

    def kafka_passwords(self) -> dict[str, str]:
        return {
            path.name.removesuffix(".password"): path.read_text().strip()
            for path in sorted((self.directory / "kafka").glob("*.password"))
        }

    def kafka_env(self, process: str) -> dict[str, str]:
        """How one service logs in to the local broker: its own principal only."""
        principal = service_principal(process)
        return {
            "VS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "VS_KAFKA_SASL_USERNAME": principal,
            "VS_KAFKA_SASL_PASSWORD_FILE": str(self.kafka_password_file(principal)),
        }

    @property
    def webhooks(self) -> Path:
        return self.directory / "webhooks.yaml"

    @property
    def partners(self) -> Path:
        return self.directory / "partners.yaml"

    def partner_ids(self) -> list[str]:
        """Every partner in the registry, in its order."""
        return [p.id for p in partner_list(self.partners).partners]

    def partner_config(self, partner_id: str) -> Path:
        return self.directory / "partners" / f"{partner_id}.yaml"

    def env_for(self, process: str) -> dict[str, str]:
        """The secret files one process may see, as environment variables."""
        dead = {"VS_DEADLETTER_KEY_FILE": self.deadletter_key}
        own = {
            "pseudonymiser": {
                "VS_OPRF_KEYRING_FILE": self.oprf_keyring,
                "VS_PSEUDONYMISER_CREDENTIALS_FILE": self.pseudonymiser_credentials,
                **dead,
            },
            "intake": {
                "VS_GATEWAY_KEYS_FILE": self.gateway_keys,
                "VS_INTAKE_KEYS_FILE": self.intake_keys,
                "VS_PARTNERS_FILE": self.partners,
                "VS_KEK_FILE": self.kek,
                **dead,
            },
            "matching": {"VS_KEK_FILE": self.kek, **dead},
            "notification": {"VS_KEK_FILE": self.kek, "VS_WEBHOOKS_FILE": self.webhooks, **dead},
            "issuer": {"VS_ISSUER_KEY_FILE": self.issuer_key},
            "audit": {"VS_AUDIT_SIGNING_KEY_FILE": self.audit_signing_key, **dead},
            # The partners' registration desk: its partners' files come by its own
            # configuration (VS_DESK_CONFIG), nothing of the municipality's.
            "desk": {},
            "simulator": {
                "VS_PARTNERS_FILE": self.partners,
                "VS_PARTNER_SECRETS": self.directory / "partners",
            },
        }[process]
        return {k: str(v) for k, v in own.items()}


def ensure_issuer_key(path: Path) -> None:
    """Create an EC P-256 signing key (PEM, mode 0600) at `path` unless one is there."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = ECKey.generate_key("P-256").as_pem(private=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process made it a moment ago
    with os.fdopen(fd, "wb") as out:
        out.write(pem)


def write_private(path: Path, text: str) -> None:
    """`text` at `path`, readable by its owner only from the start (a key or a password
    is never, even for a moment, in a file others may read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file that was there keeps no wider mode
    with os.fdopen(descriptor, "w") as out:
        out.write(text)


def _write(path: Path, doc: object) -> None:
    write_private(path, yaml.safe_dump(doc, sort_keys=False))


def _new_password(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        path.touch(mode=0o600)
        path.write_text(new_password() + "\n")
    return path.read_text().strip()


def _partner_kafka(out: Secrets, partner_id: str) -> dict[str, str]:
    """A partner's own Kafka login (it may write its own topic only); the password is
    also kept here, for the broker's credential."""
    principal = partner_principal(partner_id)
    return {
        "username": principal,
        "password": _new_password(out.kafka_password_file(principal)),
        "security_protocol": "SASL_PLAINTEXT",
    }


# --- the key ceremony: one trust domain at a time ----------------------------------

# Which files each trust domain makes. Its directory holds only its own: the two halves
# of the split trust (the pseudonymiser's VOPRF key, intake's gateway key) never meet.
DOMAINS = ("pseudonymiser", "gateway", "keystore", "audit", "deadletter", "database", "partner")
SPLIT_TRUST = ("pseudonymiser", "gateway")
DOMAIN_MARK = ".trust-domain"
LOCAL_DEV = "local-dev (every domain; never for production)"


class CeremonyError(ValueError):
    """A key ceremony step that would break the trust split; the message says why."""


def _domain_files(out: Secrets) -> dict[str, tuple[Path, ...]]:
    return {
        "pseudonymiser": (out.oprf_keyring,),
        "gateway": (out.gateway_keys, out.intake_keys),
        "keystore": (out.kek,),
        "audit": (out.audit_signing_key,),
        "deadletter": (out.deadletter_private_key,),
        "database": (out.database_roles,),
        "partner": tuple(sorted((out.directory / "partners").glob("*.yaml"))),
    }


def claim_directory(directory: Path, domain: str, partner_id: str | None = None) -> Secrets:
    """`directory` for one trust domain's keys (one partner's, for a partner): refused when
    it holds another domain's (above all the other half of the split trust), another
    partner's, or is the local stack's all-in-one."""
    if domain not in DOMAINS:
        raise CeremonyError(f"unknown trust domain {domain!r}; one of {', '.join(DOMAINS)}")
    out = Secrets(directory)
    mark = directory / DOMAIN_MARK
    claimed = f"partner {partner_id}" if domain == "partner" else domain
    other_partners = [
        f.stem for f in _domain_files(out)["partner"] if domain != "partner" or f.stem != partner_id
    ]
    if domain == "partner" and other_partners:
        raise CeremonyError(
            f"{directory} holds the credential of partner {other_partners[0]}: each partner's "
            "goes in a directory of its own, at that partner"
        )
    held = [
        other
        for other, files in _domain_files(out).items()
        if other != domain and any(f.exists() for f in files)
    ]
    if mark.exists() and mark.read_text().strip() != claimed:
        held.append(mark.read_text().strip())
    if held:
        split = domain in SPLIT_TRUST and any(o in SPLIT_TRUST for o in held)
        raise CeremonyError(
            f"{directory} already holds the keys of {', '.join(sorted(set(held)))}"
            + (
                ": the pseudonymiser's and the gateway's keys must never be in one place "
                "(split trust: together they turn a pseudonym back into a BSN guess)"
                if split
                else ": each trust domain's keys go in a directory of their own, on the "
                "machine of whoever keeps them"
            )
        )
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    mark.write_text(claimed + "\n")
    return out


def public_dir(out: Secrets) -> Path:
    """What a domain hands to the others: public keys and hashes, never a secret."""
    path = out.directory / "public"
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_pseudonymiser(out: Secrets) -> dict[str, object]:
    """The VOPRF key (the pseudonymiser's alone); returns its public keys for partners."""
    if not out.oprf_keyring.exists():
        _write(out.oprf_keyring, {"current": "k1", "keys": {"k1": secrets.token_hex(32)}})
    ring = load_yaml_model(
        VersionedKeys, out.oprf_keyring, error=CeremonyError, what="the OPRF key ring"
    )
    public: dict[str, object] = {
        "current": ring.current,
        "public_keys": {
            version: ristretto.Evaluator.from_seed(
                bytes.fromhex(seed), f"vroegsignaal {version}".encode()
            )
            .public_key.serialize()
            .hex()
            for version, seed in ring.keys.items()
        },
    }
    _write(public_dir(out) / "pseudonymiser-public.yaml", public)
    return public


def make_gateway(out: Secrets) -> dict[str, object]:
    """Intake's keys: the gateway's re-keying key and the keys partners seal events to;
    returns the latter's public halves for partners."""
    if not out.gateway_keys.exists():
        _write(out.gateway_keys, {"current": "g1", "keys": {"g1": secrets.token_hex(32)}})
    if not out.intake_keys.exists():
        _write(out.intake_keys, new_keyring("i1"))
    keyring = IntakeKeyring.load(out.intake_keys)
    public: dict[str, object] = {"current": keyring.current, "public_keys": keyring.public_keys()}
    _write(public_dir(out) / "intake-public.yaml", public)
    return public


def make_keystore(out: Secrets) -> None:
    """The key-encryption key that wraps every data key (intake, matching, notification)."""
    if not out.kek.exists():
        _write(out.kek, {"current": "kek1", "keys": {"kek1": secrets.token_hex(32)}})


def make_audit(out: Secrets) -> None:
    """The audit log's signing key; its public half for whoever verifies the log."""
    if not out.audit_signing_key.exists():
        audit_key = Ed25519PrivateKey.generate()
        _write(
            out.audit_signing_key,
            {
                "key_id": "audit-1",
                "private_key": audit_key.private_bytes(
                    serialization.Encoding.Raw,
                    serialization.PrivateFormat.Raw,
                    serialization.NoEncryption(),
                ).hex(),
            },
        )
        public = audit_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        out.audit_public_key.write_text(public.hex() + "\n")
    (public_dir(out) / "audit-public-key.txt").write_text(out.audit_public_key.read_text())


def make_deadletter(out: Secrets) -> None:
    """The dead-letter key: its private half the operator's, its public half every
    service's (to seal originals to)."""
    if not out.deadletter_key.exists():
        for_services, for_operator = new_key_files("dl-1")
        _write(out.deadletter_private_key, for_operator)
        _write(out.deadletter_key, for_services)


def make_database(out: Secrets) -> None:
    """Each database role's password (`vroegsignaal migrate` and each process's login)."""
    if not out.database_roles.exists():
        _write(out.database_roles, {"passwords": {r: secrets.token_hex(24) for r in ALL_ROLES}})


def make_partner(
    out: Secrets,
    entry: dict[str, object],
    *,
    pseudonymiser_url: str,
    pseudonymiser_public: dict[str, object],
    intake_public: dict[str, object],
    kafka: bool,
) -> PartnerExport:
    """One partner's credential: its signing key, event-id key, pseudonymiser token (and,
    for the local broker, its Kafka login), in its configuration file. Returns what the
    municipality needs of it: the signing key's public half, the token's hash."""
    pid = str(entry["id"])
    config_path = out.partner_config(pid)
    # A partner that made its key itself (`partner keygen`) sent the public half: its
    # file here holds only what the municipality gives it, and it adds its own
    # signing_key_id and signing_key.
    own_key = bool(entry.get("signing_keys"))
    if config_path.exists():
        # The ceremony's own file, brought up to date in place: read as it stands (a
        # file from an older version lacks what the model of today requires).
        try:
            config = yaml.safe_load(config_path.read_text())
        except yaml.YAMLError:
            config = None
        if not isinstance(config, dict):
            raise CeremonyError(
                f"{config_path}: not a partner configuration this ceremony wrote; move it "
                "aside to make a new one"
            )
        changed = config.get("intake_keys") != intake_public
        # Intake's public keys are the municipality's to hand out: always current.
        config["intake_keys"] = intake_public
        if not own_key and "id_key" not in config:
            # Files from before keyed event ids: the key is added, nothing replaced.
            config["id_key"] = secrets.token_bytes(32).hex()
            changed = True
        if kafka and "kafka" not in config:
            # Files from before the partners' own Kafka logins.
            config["kafka"] = _partner_kafka(out, pid)
            changed = True
        if changed:
            _write(config_path, config)
    else:
        config = {
            "partner_id": pid,
            "organisation": entry["organisation"],
            "pseudonymiser": {
                "url": pseudonymiser_url,
                "token": secrets.token_urlsafe(32),
                "key_version": pseudonymiser_public["current"],
                "public_keys": pseudonymiser_public["public_keys"],
            },
            "intake_keys": intake_public,
        }
        if kafka:
            config["kafka"] = _partner_kafka(out, pid)
        if not own_key:
            key = Ed25519PrivateKey.generate()
            config["id_key"] = secrets.token_bytes(32).hex()
            config["signing_key_id"] = f"{pid}-1"
            config["signing_key"] = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            ).hex()
        _write(config_path, config)
    if own_key:
        signing_keys = entry["signing_keys"]
    else:
        private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(config["signing_key"]))
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        signing_keys = {config["signing_key_id"]: public.hex()}
    exported = PartnerExport(
        partner_id=pid,
        signing_keys=signing_keys,
        token_sha256=hashlib.sha256(config["pseudonymiser"]["token"].encode()).hexdigest(),
    )
    _write(public_dir(out) / f"partner-{pid}.yaml", exported.model_dump(mode="json"))
    return exported


class PartnerExport(BaseModel):
    """What a partner hands the municipality (`public/partner-<id>.yaml`): its signing
    keys' public halves and its pseudonymiser token's hash. Nothing secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner_id: Name
    signing_keys: dict[Name, Hex32] = Field(min_length=1)
    token_sha256: TokenHash


def load_public(path: Path, what: str) -> dict[str, object]:
    """A handed-out public key file, checked, as the partner's configuration holds it."""
    keys = load_yaml_model(PublicKeys, path, error=CeremonyError, what=what)
    return {"current": keys.current, "public_keys": dict(keys.public_keys)}


def partner_list(path: Path) -> PartnersFile:
    """The partner list the ceremony starts from (the format of config/partners.yaml)."""
    return load_yaml_model(PartnersFile, path, error=CeremonyError, what="the partner list")


def load_export(path: Path) -> PartnerExport:
    return load_yaml_model(
        PartnerExport, path, error=CeremonyError, what="a partner's public export"
    )


def _without_budget(listed: PartnerEntry) -> dict[str, object]:
    """A listed partner as intake's partners file has it: the pseudonymiser's budget for
    the partner goes to the pseudonymiser only."""
    return listed.model_dump(mode="json", exclude_none=True, exclude={"daily_budget", "backfill"})


def assemble(out: Secrets, template: Path, exported: dict[str, PartnerExport]) -> tuple[Path, Path]:
    """From the partner list and each partner's public export: intake's partners file
    (signing keys) and the pseudonymiser's credentials (token hashes, budgets)."""
    listed_partners = partner_list(template)
    partners = []
    token_hashes = {}
    for listed in listed_partners.partners:
        pid = listed.id
        if pid not in exported:
            raise CeremonyError(
                f"no public export of partner {pid!r}: it runs 'vroegsignaal secrets init "
                f"--domain partner --partner {pid}' and hands over public/partner-{pid}.yaml"
            )
        limits = listed.model_dump(
            mode="json", exclude_none=True, include={"daily_budget", "backfill"}
        )
        partners.append({**_without_budget(listed), "signing_keys": exported[pid].signing_keys})
        token_hashes[pid] = {"token_sha256": exported[pid].token_sha256, **limits}
    _write(out.partners, {"version": listed_partners.version, "partners": partners})
    _write(out.pseudonymiser_credentials, {"partners": token_hashes})
    return out.partners, out.pseudonymiser_credentials


def init_secrets(
    directory: Path,
    *,
    pseudonymiser_url: str,
    template: Path = PARTNERS_TEMPLATE,
) -> Secrets:
    """The local stack's secrets (`make run`, the tests): every trust domain's keys in one
    directory, both halves of the split trust together. For local development only;
    production makes each domain's on its own (`secrets init --domain`, docs/operator.md "Key
    ceremony"). Creates whatever is missing; never overwrites a key."""
    out = Secrets(directory)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    (directory / DOMAIN_MARK).write_text(LOCAL_DEV + "\n")
    pseudonymiser_public = make_pseudonymiser(out)
    intake_public = make_gateway(out)
    make_keystore(out)
    make_audit(out)
    make_deadletter(out)
    make_database(out)
    for principal in (ADMIN, *(service_principal(s) for s in SERVICES)):
        _new_password(out.kafka_password_file(principal))
    ensure_issuer_key(out.issuer_key)
    if not out.webhooks.exists():
        _write(out.webhooks, {"version": 1, "webhooks": []})
    exported = {
        listed.id: make_partner(
            out,
            _without_budget(listed),
            pseudonymiser_url=pseudonymiser_url,
            pseudonymiser_public=pseudonymiser_public,
            intake_public=intake_public,
            kafka=True,
        )
        for listed in partner_list(template).partners
    }
    assemble(out, template, exported)
    return out
