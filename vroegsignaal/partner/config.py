"""A partner's own configuration: who it is, its signing key, its pseudonymiser access.

It lives at the partner; the signing key and the token never leave it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from shared.config import parse_yaml_model
from shared.contracts import PartnerId
from shared.i18n import _
from shared.settings import Settings


class PartnerConfigError(ValueError):
    """The partner configuration is broken; the message names the field and the fix."""


class PseudonymiserAccess(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    token: str = Field(min_length=16)
    key_version: str
    public_keys: dict[str, str] = Field(
        description="Pinned public keys by version (hex); a proof must verify against them."
    )
    max_batch: int = Field(
        default=1000, ge=1, le=65535, description="Elements per request: the pseudonymiser's limit."
    )


class IntakeKeys(BaseModel):
    """Intake's public keys by version, as the municipality hands them out: every event is
    sealed to `current`, so that only intake can read the partner's topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    current: str
    public_keys: dict[str, str] = Field(description="Version -> X25519 public key (hex).")

    @model_validator(mode="after")
    def _current_is_listed(self) -> IntakeKeys:
        if self.current not in self.public_keys:
            raise ValueError(
                _("intake_keys.current {current} is not in public_keys").format(
                    current=repr(self.current)
                )
            )
        for version, key in self.public_keys.items():
            if len(bytes.fromhex(key)) != 32:
                raise ValueError(
                    _("intake_keys.public_keys.{version} is not 32 bytes hex").format(
                        version=version
                    )
                )
        return self


class KafkaLogin(BaseModel):
    """The partner's own Kafka principal: it may write its own topic and nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1)
    password: str = Field(min_length=16)
    security_protocol: Literal["SASL_SSL", "SASL_PLAINTEXT"] = "SASL_SSL"


class PartnerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    partner_id: PartnerId
    organisation: str
    signing_key_id: str
    signing_key: str = Field(description="Ed25519 private key, 32 bytes hex. Keep it secret.")
    id_key: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="32 bytes hex: the key of the partner's event ids, so that no one can "
        "compute one from a pseudonym and a theme. Keep it secret; never change it (a "
        "changed key makes a re-sent row a new registration).",
    )
    pseudonymiser: PseudonymiserAccess
    intake_keys: IntakeKeys
    batch_size: int = Field(default=500, ge=1, le=10000)
    kafka: KafkaLogin | None = Field(
        default=None,
        description="The partner's Kafka login; without it, the VS_KAFKA_* settings apply.",
    )
    receipts_file: Path | None = Field(
        default=None,
        description="Where the producer keeps its receipts (registration number -> export, "
        "line, row hash, reference), for `partner lookup`; by default "
        "<partner id>.receipts.csv beside this file.",
    )

    def kafka_settings(self, settings: Settings) -> Settings:
        """`settings` with this partner's own Kafka login, where the file gives one."""
        if self.kafka is None:
            return settings
        return settings.model_copy(
            update={
                "kafka_security_protocol": self.kafka.security_protocol,
                "kafka_sasl_username": self.kafka.username,
                "kafka_sasl_password": SecretStr(self.kafka.password),
                "kafka_sasl_password_file": None,
            }
        )

    @classmethod
    def load(cls, path: Path) -> PartnerConfig:
        try:
            text = path.read_text()
        except OSError as exc:
            raise PartnerConfigError(
                _("cannot read partner configuration {path}: {problem}").format(
                    path=path, problem=exc
                )
            ) from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            doc = None  # parse_yaml_model names the YAML error with its line
        if isinstance(doc, dict) and "id_key" not in doc:
            raise PartnerConfigError(
                _(
                    "{path}: id_key is missing: add the id_key line that "
                    "'vroegsignaal partner keygen' prints (32 bytes hex, kept secret)"
                ).format(path=path)
            )
        if isinstance(doc, dict) and "intake_keys" not in doc:
            raise PartnerConfigError(
                _(
                    "{path}: intake_keys is missing: add the intake public keys the "
                    "municipality hands out ('vroegsignaal secrets init' writes them)"
                ).format(path=path)
            )
        config = parse_yaml_model(cls, text, source=str(path), error=PartnerConfigError)
        receipts = config.receipts_file or Path(f"{config.partner_id}.receipts.csv")
        # A relative path is the configuration file's neighbour, wherever it runs from.
        return config.model_copy(update={"receipts_file": path.parent / receipts})
