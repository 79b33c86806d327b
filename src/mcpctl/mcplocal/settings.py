"""mcplocal's settings (`MCPLOCAL_*`), read the same way by `mcplocal serve|stdio` and by mcpd for
the embedded endpoint. Times are milliseconds, as the contract names them."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mcpctl.core import invalidation
from mcpctl.core.session_shares import SessionLimits
from mcpctl.mcplocal.input_rounds import InputRoundsSettings
from mcpctl.mcplocal.router import RouterSettings


class GatewaySettings(BaseSettings):
    # populate_by_name: flags pass `host=`, `port=`, `mcpd_url=` whatever environment names they have
    model_config = SettingsConfigDict(env_prefix="MCPLOCAL_", extra="ignore", populate_by_name=True)

    host: str = Field(
        "127.0.0.1",
        validation_alias=AliasChoices("MCPLOCAL_HTTP_HOST", "MCPLOCAL_HOST"),
        description="`mcplocal serve`: address to listen on (`MCPLOCAL_HOST` is an alias).",
    )
    port: int = Field(
        3200,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("MCPLOCAL_HTTP_PORT", "MCPLOCAL_PORT"),
        description="`mcplocal serve`: port to listen on (`MCPLOCAL_PORT` is an alias).",
    )
    http_keep_alive_seconds: int = Field(
        75,  # mcpd's and `mcplocal serve`'s alike (mcplocal/http_protocol.py)
        ge=1,
        le=3600,
        description="`mcplocal serve`: how long an idle HTTP keep-alive connection is kept open; keep it "
        "above the idle timeout of the proxies in front (ingress-nginx, AWS ALB: 60 s).",
    )
    mcpd_url: str = Field(
        "http://127.0.0.1:3000",
        validation_alias=AliasChoices("MCPLOCAL_MCPD_URL", "MCPCTL_MCPD_URL"),
        description="`mcplocal serve` and `stdio`: the mcpd to ask (split mode); `MCPCTL_MCPD_URL`, the "
        "CLI's name, is an alias.",
    )
    token_positive_ttl_ms: int = Field(
        30_000, ge=0, le=3_600_000, description="How long an accepted token's introspection is cached."
    )
    token_negative_ttl_ms: int = Field(
        5_000, ge=0, le=3_600_000, description="How long a refused token's introspection is cached."
    )
    token_cache_entries: int = Field(
        100_000,
        ge=100,
        le=10_000_000,
        description="How many tokens' introspections are cached at most (beyond it the oldest go first; "
        "tokens in use beyond it are checked again on every call).",
    )
    discovery_positive_ttl_ms: int = Field(
        60_000,
        ge=0,
        le=86_400_000,
        description="How long a server's tools/resources/prompts lists are cached.",
    )
    discovery_negative_ttl_ms: int = Field(
        10_000, ge=0, le=86_400_000, description="How long a server whose discovery failed is left alone."
    )
    discovery_timeout_ms: int = Field(
        5_000, ge=1, le=600_000, description="Deadline for one server's discovery (all its list pages)."
    )
    project_ttl_ms: int = Field(
        5_000,
        ge=0,
        le=600_000,
        description="How long a project's server list is cached (mcpd itself invalidates on change).",
    )
    page_size: int = Field(500, ge=1, le=100_000, description="Most items in one page of a list.")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header values accepted besides loopback (DNS-rebinding protection); JSON list.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list, description="Origin header values accepted besides loopback origins; JSON list."
    )
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest request body accepted.")
    session_idle_seconds: float = Field(
        1800.0, gt=0, le=86_400, description="A legacy MCP session unused this long is closed."
    )
    max_sessions_per_token: int = Field(
        64,
        ge=1,
        le=1_000_000,
        description="Most legacy MCP sessions one McpToken holds; a new one closes the token's oldest.",
    )
    max_sessions_per_project: int = Field(
        512,
        ge=1,
        le=1_000_000,
        description="Most legacy MCP sessions of one project; a new one closes the caller's own oldest, "
        "and a caller holding none gets 429 with Retry-After.",
    )
    max_sessions: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="Most legacy MCP sessions in all (a memory backstop); a new one closes the caller's "
        "own oldest, else the oldest of the largest project's largest holder, else 429.",
    )
    audit_flush_ms: int = Field(
        500, ge=10, le=60_000, description="Audit events are written at least this often."
    )
    audit_queue_max: int = Field(
        100_000,
        ge=100,
        description="Most audit events held in memory; beyond it they are counted and logged as dropped.",
    )

    audit_spool_dir: Path | None = Field(
        None,
        description=(
            "Where answered calls' audit events are spooled (one fsync'd file per flush) until they are "
            "stored, so a crash loses none; default for mcpd: <dataDir>/audit-spool. (mcplocal serve "
            "spools nothing: mcpd's proxy records its calls.)"
        ),
    )

    audit_spool_sync: bool = Field(
        False,
        description=(
            "Answers wait until their audit event is fsync'd (a group commit: one fdatasync for all the "
            "answers waiting meanwhile), so not even a crash of the machine loses an answered call's event."
        ),
    )

    input_wait_ms: int = Field(
        60_000,
        ge=100,
        le=3_600_000,
        description="How long a 2026-07-28 caller's call whose upstream asked for sampling, elicitation or "
        "roots (answered `input_required`) waits for the client's retry; then the upstream's request gets "
        "an error and the call is cancelled.",
    )
    max_input_waits_per_token: int = Field(
        16,
        ge=1,
        le=100_000,
        description="Most such calls one McpToken may have waiting for its input; one more is answered "
        "with an error and its call cancelled.",
    )
    max_input_waits: int = Field(
        1_000,
        ge=1,
        le=1_000_000,
        description="Most such calls waiting for their clients' input in all (per process).",
    )

    cache_dir: Path | None = Field(
        None,
        description="The pipeline cache (FileCache, DESIGN §10): result pages, summaries, titles and "
        "embeddings; several processes may share it. Default: ~/.cache/mcpctl/pipeline (mcpd: "
        "<dataDir>/pipeline-cache); in the container image /var/lib/mcplocal/cache.",
    )
    cache_max_bytes: int = Field(
        256 * 1024 * 1024,
        ge=64 * 1024,
        description="The pipeline cache's size bound: the least recently used entries are evicted beyond it.",
    )
    llm_url: str | None = Field(
        None,
        description="An OpenAI-compatible API (e.g. vLLM's, `http://gpu:8000/v1`) for the summarize stage "
        "and page titles; without it they fall back to plain behaviour.",
    )
    llm_model: str | None = Field(None, description="The model named in chat completions requests.")
    llm_api_key: str | None = Field(
        None, description="Bearer key for the LLM and embeddings endpoints, if they want one (never logged)."
    )
    llm_timeout_ms: int = Field(
        20_000, ge=100, le=600_000, description="Deadline for one chat completion; then plain behaviour."
    )
    embeddings_url: str | None = Field(
        None,
        description="An OpenAI-compatible API for /embeddings: the gate ranks tools semantically too.",
    )
    embeddings_model: str | None = Field(None, description="The model named in embeddings requests.")
    embeddings_timeout_ms: int = Field(
        10_000, ge=100, le=600_000, description="Deadline for one embeddings request; then BM25 alone."
    )

    redis_url: str | None = Field(
        None,
        description="Redis for cross-replica state (redis://, rediss:// or unix://): revocations and "
        "configuration changes made in any mcpd reach this process within a second, and legacy MCP "
        "sessions any replica can serve. Without it changes arrive over the link from its own mcpd "
        "(other mcpds' within the positive TTL) and each replica keeps its own sessions.",
    )
    redis_channel: str = Field(
        "mcpctl",
        description="Prefix of the Redis pub/sub channel and keys (`<prefix>:session:<id>`); the same in "
        "every mcpd and mcplocal of an installation, different between installations sharing a Redis.",
    )

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        return invalidation.check_redis_url(value)

    @field_validator("redis_channel")
    @classmethod
    def _check_redis_channel(cls, value: str) -> str:
        return invalidation.check_channel_prefix(value) or value

    @classmethod
    def environment_names(cls) -> set[str]:
        """Every environment variable these settings read: `MCPLOCAL_<FIELD>`, and the documented
        names and aliases of the fields that have them."""
        names: set[str] = set()
        for name, field in cls.model_fields.items():
            choices = getattr(field.validation_alias, "choices", None)
            names |= {c for c in choices if isinstance(c, str)} if choices else {f"MCPLOCAL_{name.upper()}"}
        return names

    def session_limits(self) -> SessionLimits:
        return SessionLimits(
            per_token=self.max_sessions_per_token,
            per_project=self.max_sessions_per_project,
            total=self.max_sessions,
        )

    def input_rounds_settings(self) -> InputRoundsSettings:
        return InputRoundsSettings(
            wait_seconds=self.input_wait_ms / 1000,
            max_per_token=self.max_input_waits_per_token,
            max_total=self.max_input_waits,
        )

    def router_settings(self) -> RouterSettings:
        return RouterSettings(
            discovery_positive_seconds=self.discovery_positive_ttl_ms / 1000,
            discovery_negative_seconds=self.discovery_negative_ttl_ms / 1000,
            discovery_timeout_seconds=self.discovery_timeout_ms / 1000,
            project_ttl_seconds=self.project_ttl_ms / 1000,
            page_size=self.page_size,
        )
