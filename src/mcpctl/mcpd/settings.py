"""mcpd settings: one object, precedence flag > environment (MCPD_*) > config file > default.

Every setting carries a description (its help text); a test fails when one is missing or when
docs/configuration.md does not list it.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mcpctl.core import invalidation
from mcpctl.core.durations import parse_duration
from mcpctl.core.errors import InvalidError


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "mcpctl"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MCPD_", extra="forbid", validate_default=True)

    config_file: Path | None = Field(
        None, description="YAML file of settings (keys are the setting names); flags and env win over it."
    )
    host: str = Field("127.0.0.1", description="Address the HTTP API listens on.")
    port: int = Field(3000, ge=0, le=65535, description="Port the HTTP API listens on.")
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Directory for the embedded SQLite database, the generated secret key and admin "
        "credentials.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the database; default sqlite+aiosqlite:///<dataDir>/mcpd.db. "
        "Use postgresql+asyncpg://… for production.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Key that encrypts secrets at rest (a Fernet key or any passphrase). Default: "
        "generated once into <dataDir>/secret.key (0600).",
    )
    bootstrap_admin_email: str | None = Field(
        None, description="E-mail of the first admin, created when the database has no user."
    )
    bootstrap_admin_password: SecretStr | None = Field(
        None,
        description="Password of the first admin (default: generated and written to "
        "<dataDir>/admin-credentials, 0600).",
    )
    bootstrap_admin_password_file: Path | None = Field(
        None, description="File holding the first admin's password (instead of the variable)."
    )
    session_ttl: str = Field("7d", description="Lifetime of a login session bearer (e.g. 12h, 7d).")
    password_hash_time_cost: int = Field(
        3,
        ge=1,
        le=20,
        description="Argon2id iterations for new password hashes (existing hashes keep "
        "theirs and are upgraded at the next login).",
    )
    password_hash_memory_kib: int = Field(
        65_536,
        ge=1024,
        le=4_194_304,
        description="Argon2id memory per password hash, in KiB "
        "(default 64 MiB, RFC 9106's low-memory profile).",
    )
    password_hash_concurrency: int = Field(
        1,
        ge=1,
        le=64,
        description="Most Argon2 password checks running at once (each holds password_hash_memory_kib "
        "and runs 4 lanes in parallel already); logins beyond it wait in a bounded queue.",
    )
    password_hash_queue: int = Field(
        16,
        ge=0,
        le=10_000,
        description="Most logins waiting for a password-check slot; more get 429 with Retry-After.",
    )
    password_hash_wait_seconds: float = Field(
        5.0,
        gt=0,
        le=600,
        description="Longest wait for a password-check slot before a login gets 429 with Retry-After.",
    )
    login_failures_per_address: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Failed logins one client address (IPv6: its /64) may make per login_throttle_window "
        "before it gets 429 with Retry-After.",
    )
    login_failures_per_account: int = Field(
        5,
        ge=1,
        le=100_000,
        description="Failed logins for one e-mail (existing or not) per login_throttle_window before "
        "further attempts get 429 with Retry-After.",
    )
    login_throttle_window_seconds: float = Field(
        60.0,
        gt=0,
        le=86_400,
        description="The login throttles refill their whole budget over this many seconds.",
    )
    login_throttle_max_entries: int = Field(
        10_000,
        ge=100,
        le=10_000_000,
        description="Most addresses and most accounts the login throttles remember (least recently "
        "failed dropped first), so a flood of random names uses bounded memory.",
    )
    public_url: str | None = Field(
        None,
        description="Base URL clients use to reach this mcpd (client config snippets, project MCP "
        "URLs); default http://<host>:<port>.",
    )
    max_tokens_per_project: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Most active McpTokens a project may have (more → 403 token_limit_exceeded).",
    )
    mcptoken_max_ttl: str | None = Field(
        None,
        description="Longest McpToken lifetime (e.g. 90d); also the default TTL when set. Unset: "
        "tokens may never expire.",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted, in bytes (larger → 413)."
    )
    stdio_commands: list[str] = Field(
        default_factory=list,
        description="Allowlist of commands a stdio server may run (exact `command` values, e.g. "
        '["uvx", "npx", "/usr/local/bin/mcp-server-time"]); JSON list. Empty: any command — creating '
        "or editing a stdio server is then code execution as the mcpd user (docs/security.md).",
    )
    data_dir_min_free_bytes: int = Field(
        16 * 1024 * 1024,
        ge=0,
        description="Free space the data dir's file system must keep; below it /readyz answers 503 "
        "(writes that fail for lack of space answer 507 insufficient_storage).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer a Prometheus scrape sends to /metrics (scrape config `authorization: "
        "credentials_file`). Without it, /metrics needs a login session of a user who may view every "
        "server, since the metrics name every server.",
    )
    metrics_public: bool = Field(
        False,
        description="Serve /metrics without authentication. Anonymous scrapes then get the HTTP request "
        "metrics only (no server or instance names); authenticated scrapes still get everything.",
    )
    supervise: bool = Field(
        True,
        description="Run registered servers (stdio children, http connections) and probe them. Off: "
        "mcpd is a registry only and the per-server MCP proxy answers 502.",
    )
    reconcile_interval_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="How often the supervisor re-reads servers from the database (changes made "
        "through this mcpd apply at once; this catches changes made by another).",
    )
    replica_id: str | None = Field(
        None,
        max_length=200,
        description="This mcpd's name among the replicas sharing one PostgreSQL database (who holds "
        "which server's lease). Default: <hostname>-<pid>-<random>, new at every start.",
    )
    advertise_url: str | None = Field(
        None,
        description="Base URL other mcpd replicas reach this one at, to forward calls to the servers "
        "it supervises (its data-plane link). Default: the public URL.",
    )
    lease_seconds: float = Field(
        10.0,
        ge=2,
        le=600,
        description="How long a replica's lease on a server lasts without renewal (PostgreSQL only; "
        "renewed every third of it). Another replica takes a dead holder's servers within about this.",
    )
    probe_interval_seconds: float = Field(
        15.0, gt=0, le=86_400, description="Default health probe interval for servers without healthCheck."
    )
    probe_timeout_seconds: float = Field(
        10.0, gt=0, le=3600, description="Default health probe timeout for servers without healthCheck."
    )
    probe_failure_threshold: int = Field(
        3, ge=1, le=100, description="Default consecutive probe failures that make an instance unhealthy."
    )
    stop_grace_seconds: float = Field(
        5.0,
        ge=0,
        le=600,
        description="Seconds between SIGTERM and SIGKILL when a stdio instance's process group is stopped.",
    )
    http_keep_alive_seconds: int = Field(
        75,  # mcpd's and `mcplocal serve`'s alike (mcplocal/http_protocol.py)
        ge=1,
        le=3600,
        description="How long an idle HTTP keep-alive connection is kept open; keep it above the idle "
        "timeout of the proxies in front (ingress-nginx, AWS ALB: 60 s).",
    )
    max_concurrent_starts: int = Field(
        0,
        ge=0,
        le=10_000,
        description="stdio instances starting (spawned, not yet initialized) at once at most; the others "
        "wait their turn, and their initSeconds count from their spawn. 0: twice the CPU count.",
    )
    backoff_initial_seconds: float = Field(
        1.0, gt=0, le=3600, description="First restart delay of a crashed instance (doubles each time)."
    )
    backoff_max_seconds: float = Field(60.0, gt=0, le=86_400, description="Longest restart delay.")
    backoff_reset_seconds: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="An instance that ran this long before exiting restarts with the first delay again.",
    )
    proxy_session_idle_seconds: float = Field(
        3600.0, gt=0, description="Per-server MCP proxy sessions idle this long are forgotten."
    )
    link_max_links: int = Field(
        1024, ge=1, description="Most data-plane links (split-mode mcplocal WebSockets) open at once."
    )
    link_max_links_per_address: int = Field(
        32, ge=1, description="Most data-plane links open at once from one client address."
    )
    link_auth_deadline_seconds: float = Field(
        10.0, gt=0, description="A data-plane link that presents no valid token within this is closed."
    )
    link_max_outbox_bytes: int = Field(
        64 * 1024 * 1024,
        ge=65536,
        description="Most bytes mcpd holds for a data-plane link that does not read; past it the link is "
        "closed (its calls fail), never an upstream stalled.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis for cross-replica invalidation (redis://, rediss:// or unix://): revocations and "
        "configuration changes made in this mcpd reach every other mcpd and mcplocal within a second. "
        "Default: MCPLOCAL_REDIS_URL, else none (other replicas catch up within the positive TTL).",
    )
    redis_channel: str | None = Field(
        None,
        description="Prefix of the Redis pub/sub channel, so installations sharing a Redis stay apart. "
        "Default: MCPLOCAL_REDIS_CHANNEL, else mcpctl.",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    log_json: bool = Field(False, description="Write logs as JSON lines (one object per record).")

    @field_validator("session_ttl", "mcptoken_max_ttl")
    @classmethod
    def _check_duration(cls, value: str | None) -> str | None:
        try:
            if value is not None:
                parse_duration(value)
        except InvalidError as exc:
            raise ValueError(exc.message) from exc
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        return invalidation.check_redis_url(value)

    @field_validator("redis_channel")
    @classmethod
    def _check_redis_channel(cls, value: str | None) -> str | None:
        return invalidation.check_channel_prefix(value)

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        if value.lower() not in ("debug", "info", "warning", "error"):
            raise ValueError("log_level must be one of debug, info, warning, error")
        return value.lower()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'mcpd.db'}"

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def resolved_advertise_url(self) -> str:
        return (self.advertise_url or self.resolved_public_url).rstrip("/")

    @property
    def mcptoken_max_ttl_delta(self) -> timedelta | None:
        return None if self.mcptoken_max_ttl is None else parse_duration(self.mcptoken_max_ttl)

    @property
    def session_ttl_seconds(self) -> float:
        return parse_duration(self.session_ttl).total_seconds()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _ConfigFileSource(settings_cls, init_settings))


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Values from the YAML file named by the `config_file` flag or MCPD_CONFIG_FILE."""

    def __init__(self, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        init_kwargs = getattr(init_settings, "init_kwargs", {})
        path = init_kwargs.get("config_file") or os.environ.get("MCPD_CONFIG_FILE")
        self._values: dict[str, Any] = {}
        if path:
            import yaml  # only with a config file (~15 ms of mcpd's start otherwise)

            loaded = yaml.safe_load(Path(path).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"config file {path} must hold a mapping of settings")
            self._values = {str(k).replace("-", "_"): v for k, v in loaded.items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)
