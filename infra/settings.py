"""Settings from the environment (pydantic-settings), with the PRD's variable names.

Unset backend URLs mean the embedded default: SQLite files under ``TASKFLOW_DATA_DIR``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(default=Path("data"), alias="TASKFLOW_DATA_DIR")
    host: str = Field(default="127.0.0.1", alias="HOST")
    port: int = Field(default=8000, alias="PORT")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    elasticsearch_url: str | None = Field(default=None, alias="ELASTICSEARCH_URL")
    # The search index alias; each projection version gets its own index, ``<prefix>-v<version>``.
    elasticsearch_index_prefix: str = Field(
        default="taskflow-search", alias="ELASTICSEARCH_INDEX_PREFIX", pattern=r"^[a-z0-9][a-z0-9_.-]{0,200}$"
    )
    kafka_bootstrap_servers: str | None = Field(default=None, alias="KAFKA_BOOTSTRAP_SERVERS")
    # The topic the relay publishes every event to (created with this many partitions if missing),
    # and the prefix of each projection's consumer group.
    kafka_topic: str = Field(default="taskflow.events", alias="KAFKA_TOPIC")
    kafka_partitions: int = Field(default=6, alias="KAFKA_PARTITIONS", ge=1)
    kafka_group_prefix: str = Field(default="taskflow-projection-", alias="KAFKA_GROUP_PREFIX")

    jwt_issuer: str = Field(default="taskflow", alias="JWT_ISSUER")
    jwt_audience: str = Field(default="taskflow-api", alias="JWT_AUDIENCE")
    # PEM of the RS256 signing key; unset means a key pair generated once under data_dir/keys.
    jwt_private_key: str | None = Field(default=None, alias="JWT_PRIVATE_KEY")
    jwt_private_key_file: Path | None = Field(default=None, alias="JWT_PRIVATE_KEY_FILE")
    access_token_ttl_seconds: int = Field(default=15 * 60, alias="ACCESS_TOKEN_TTL_SECONDS")
    refresh_token_ttl_seconds: int = Field(default=7 * 24 * 3600, alias="REFRESH_TOKEN_TTL_SECONDS")

    # Argon2id cost; the defaults follow RFC 9106's second recommended profile (64 MiB, t=3).
    argon2_time_cost: int = Field(default=3, alias="ARGON2_TIME_COST", ge=1)
    argon2_memory_kib: int = Field(default=65536, alias="ARGON2_MEMORY_KIB", ge=8)

    consistency_wait_default_ms: int = Field(default=2000, alias="CONSISTENCY_WAIT_DEFAULT_MS")
    consistency_wait_max_ms: int = Field(default=10000, alias="CONSISTENCY_WAIT_MAX_MS")
    projector_poll_seconds: float = Field(default=1.0, alias="PROJECTOR_POLL_SECONDS")
    max_body_bytes: int = Field(default=1_000_000, alias="MAX_BODY_BYTES")
    # Commands arriving together are appended in one transaction, up to this many (1: off).
    group_commit_max_batch: int = Field(default=200, alias="GROUP_COMMIT_MAX_BATCH", ge=1)
    # Requests per minute per user and route; anonymous requests count per client address.
    # 0 switches a limit off.
    rate_limit_per_minute: int = Field(default=1200, alias="RATE_LIMIT_PER_MINUTE", ge=0)
    rate_limit_anonymous_per_minute: int = Field(default=60, alias="RATE_LIMIT_ANONYMOUS_PER_MINUTE", ge=0)
    # Every Redis key TaskFlow writes starts with this (several deployments can share a server).
    redis_prefix: str = Field(default="taskflow:", alias="REDIS_PREFIX")

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @property
    def embedded(self) -> bool:
        return self.database_url is None


@lru_cache
def get_settings() -> Settings:
    return Settings()
