"""The one settings class: every tunable of every service, read from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
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
    topic_prefix: str = Field(
        default="",
        description="Prepended to every topic name, to share one cluster between environments.",
    )
    topic_partitions: int = Field(default=6, ge=1, le=1024)
    topic_replication_factor: int = Field(default=1, ge=1)
    partners_file: Path = REPO_ROOT / "config" / "partners.yaml"
    max_message_bytes: int = Field(default=64 * 1024, ge=1024)
    policy_version: str = "vir-baseline-1"
    registration_active_days: int = Field(default=730, ge=1)
    instance_id: str = Field(default="local-1")
    http_host: str = "127.0.0.1"
    intake_port: int = 8101
    matching_port: int = 8102
    notification_port: int = 8103
    audit_port: int = 8104
    outbox_batch_size: int = Field(default=200, ge=1)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    graceful_timeout_seconds: float = Field(default=15.0, gt=0)
    trace_file: Path | None = Field(
        default=None,
        description="Append finished spans as JSON lines to this file (local tracing).",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
