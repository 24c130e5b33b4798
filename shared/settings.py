"""The one settings class: every tunable of every service, read from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Configuration of a vroegsignaal process.

    `KAFKA_BOOTSTRAP_SERVERS` and `DATABASE_URL` keep their conventional names; everything
    else is prefixed `VS_`.
    """

    model_config = SettingsConfigDict(env_prefix="VS_", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="localhost:19092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:15432/vroegsignaal",
        validation_alias="DATABASE_URL",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"] = Field(
        default="PLAINTEXT",
        description="SASL_SSL: SCRAM-SHA-512 over TLS, as a Strimzi KafkaUser logs in; "
        "SASL_PLAINTEXT: SCRAM-SHA-512 without TLS, as on the local stack's loopback broker.",
    )
    kafka_sasl_username: str | None = None
    kafka_sasl_password_file: Path | None = Field(
        default=None, description="The SCRAM password (Strimzi's KafkaUser Secret, 'password')."
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="The SCRAM password itself (a partner's, from its config)."
    )
    kafka_ca_file: Path | None = Field(
        default=None, description="CA certificate(s) of the brokers (Strimzi's cluster CA)."
    )
    kafka_ca_refresh_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often a service reads the CA file again: a renewed cluster CA is "
        "trusted beside the earlier one without a restart.",
    )
    topic_prefix: str = Field(
        default="",
        description="Prepended to every topic name, to share one cluster between environments.",
    )
    topic_partitions: int = Field(default=6, ge=1, le=1024)
    topic_replication_factor: int = Field(default=1, ge=1)
    partners_file: Path = REPO_ROOT / "config" / "partners.yaml"
    max_message_bytes: int = Field(default=64 * 1024, ge=1024)
    policy_file: Path = Field(
        default=REPO_ROOT / "config" / "policy.yaml",
        description="The municipality's versioned privacy policy (matching rules, periods).",
    )
    retention_interval_seconds: float = Field(default=60.0, gt=0)
    counts_interval_seconds: float = Field(
        default=900.0, gt=0, description="How often changed wijk x theme counts are published."
    )
    audit_signing_key_file: Path | None = Field(
        default=None, description="The audit service's Ed25519 key for signing tree heads."
    )
    audit_head_interval_seconds: float = Field(default=10.0, gt=0)
    theme_counts_release_seconds: float = Field(
        default=900.0,
        gt=0,
        description="How often intake counts the theme observations it holds (at least k "
        "at a time) and publishes the wijk x theme cells that grew by at least k, shuffled.",
    )
    theme_counts_max_hold_seconds: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="Fewer than k held observations are counted anyway once the oldest was "
        "held this long (a quiet municipality's counts still move).",
    )
    trend_key_days: int = Field(
        default=21, ge=8, description="Days after which a trend window's key is destroyed."
    )
    instance_id: str = Field(default="local-1")
    http_host: str = "127.0.0.1"
    intake_port: int = 8101
    matching_port: int = 8102
    notification_port: int = 8103
    audit_port: int = 8104
    pseudonymiser_port: int = 8105
    pseudonymiser_url: str = "http://127.0.0.1:8105"
    oprf_keyring_file: Path | None = Field(
        default=None, description="The pseudonymiser's VOPRF keys (its secret alone)."
    )
    pseudonymiser_credentials_file: Path | None = Field(
        default=None, description="Hashes of the partners' credentials for the pseudonymiser."
    )
    oprf_max_batch: int = Field(default=1000, ge=1, le=65535)
    oprf_rate_per_second: float = Field(
        default=20000.0, gt=0, description="Blinded elements a partner may send per second."
    )
    gateway_keys_file: Path | None = Field(
        default=None, description="The intake gateway's re-keying keys (its secret alone)."
    )
    kek_file: Path | None = Field(
        default=None, description="Key-encryption key that wraps the per-subject data keys."
    )
    intake_keys_file: Path | None = Field(
        default=None,
        description="Intake's X25519 private keys by version: partners seal every event to "
        "the current one, so that only intake reads the partners' topics.",
    )
    deadletter_key_file: Path | None = Field(
        default=None,
        description="The dead-letter key's public half and digest key: dead letters keep "
        "the original only sealed to it. Unset: they keep no original at all.",
    )
    deadletter_retention_days: int = Field(
        default=7, ge=1, le=30, description="How long the dead-letter topic keeps letters."
    )
    database_roles_file: Path | None = Field(
        default=None,
        description="The database roles' passwords (for 'vroegsignaal migrate'; "
        "'secrets init' writes one).",
    )
    keystore_database_url: str | None = Field(
        default=None,
        validation_alias="KEYSTORE_DATABASE_URL",
        description="The key store's own role and database (its own PostgreSQL cluster "
        "in production); the database <DATABASE_URL's>_keys beside the application's when "
        "unset (an administrator's tools and tests).",
    )
    keystore_admin_database_url: str | None = Field(
        default=None,
        validation_alias="KEYSTORE_ADMIN_DATABASE_URL",
        description="`vroegsignaal migrate` only: an administrator of the key store's own "
        "database (its cluster's owner in production); beside DATABASE_URL when unset.",
    )
    db_pool_size: int = Field(
        default=10,
        ge=2,
        description="Connections a process keeps to its database at most (its outbox "
        "relay holds one of them to LISTEN); deploy-check sums them over the replicas.",
    )
    keystore_pool_size: int = Field(
        default=5, ge=1, description="Connections a process keeps to the key store at most."
    )
    keystore_cache_size: int = Field(default=10000, ge=0)
    keystore_cache_seconds: float = Field(default=30.0, ge=0)
    max_event_age_days: int = Field(
        default=14, ge=1, description="Older partner events are rejected as stale."
    )
    consume_batch_size: int = Field(
        default=500,
        ge=1,
        description="Most messages a consumer applies in one transaction (what Kafka has "
        "ready, up to this).",
    )
    consume_wait_ms: int = Field(
        default=100,
        ge=1,
        description="How long an idle consumer waits for messages before it asks again.",
    )
    outbox_batch_size: int = Field(default=500, ge=1)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    retry_max_attempts: int = Field(
        default=8, ge=1, description="Failed tries of one message before it is dead-lettered."
    )
    retry_base_seconds: float = Field(default=0.2, gt=0)
    graceful_timeout_seconds: float = Field(default=15.0, gt=0)
    oidc_issuer: str = Field(
        default="http://127.0.0.1:8106",
        description="The OIDC issuer whose bearer tokens the web APIs accept (discovery + JWKS).",
    )
    oidc_audience: str = Field(default="vroegsignaal", description="Required `aud` of tokens.")
    oidc_client_id: str = Field(default="vroegsignaal-inbox", description="The inbox's client id.")
    oidc_scope: str = Field(
        default="openid profile email",
        description="The scopes the browser asks the issuer for. With Microsoft Entra ID add "
        "the API's own (api://<app>/access): without it the access token is for Microsoft "
        "Graph, not for vroegsignaal.",
    )
    oidc_user_claim: str = Field(
        default="sub",
        min_length=1,
        description="The token claim naming the person as the partners' registrations do (the "
        "worker id). The demo issuer puts it in `sub`; a municipality's provider usually has "
        "its own subject ids, so map the worker id to a claim of its own (Keycloak realm "
        "export: `worker_id`).",
    )
    issuer_port: int = 8106
    desk_port: int = Field(
        default=8107, description="The partner's registration desk ('vroegsignaal partner desk')."
    )
    desk_database_url: str | None = Field(
        default=None,
        description="The registration desk's own database (at the partner): a login that owns "
        "its schema `desk` and reaches nothing else.",
    )
    issuer_key_file: Path | None = Field(
        default=None, description="The local demo issuer's signing key (make run and tests only)."
    )
    roster_file: Path = Field(
        default=REPO_ROOT / "config" / "roster.yaml",
        description="Wijken, JGT teams, their workers, team leads and the regie role.",
    )
    webhooks_file: Path | None = Field(
        default=None, description="Partner systems' webhook URLs and their signing secrets."
    )
    smtp_host: str | None = Field(default=None, description="SMTP relay; no e-mail when unset.")
    smtp_port: int = 25
    smtp_sender: str = "vroegsignaal@voorbeeldrade.example"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    dev_mail_port: int = Field(
        default=8025, description="The local SMTP server of `make run` (when no relay is set)."
    )
    inbox_url: str = Field(
        default="http://127.0.0.1:8103/inbox/", description="Where e-mails send the worker."
    )
    delivery_max_attempts: int = Field(
        default=8, ge=1, description="Tries of one e-mail or webhook before it is dead-lettered."
    )
    delivery_base_seconds: float = Field(default=2.0, gt=0)
    delivery_interval_seconds: float = Field(default=1.0, gt=0)
    # How often the composer looks for digests that are due (the policy says how often a
    # worker may get one).
    digest_check_seconds: float = Field(default=30.0, gt=0)
    escalation_interval_seconds: float = Field(default=60.0, gt=0)
    trace_file: Path | None = Field(
        default=None,
        description="Append finished spans as JSON lines to this file (local tracing).",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
