"""Request and response shapes at the edge (pydantic). Rules beyond shape live in the kind handlers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from mcpctl.core.names import EMAIL_RE, NAME_RE, check_labels

Name = Annotated[str, StringConstraints(pattern=NAME_RE.pattern, max_length=63)]
Email = Annotated[str, StringConstraints(pattern=EMAIL_RE.pattern, max_length=320)]
Description = Annotated[str, StringConstraints(max_length=2000)]
ShortText = Annotated[str, StringConstraints(max_length=4096)]
EnvKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$")]
SecretKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,253}$")]
ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.*-]{1,128}$")]


class Strict(BaseModel):
    """Unknown fields are errors; types are not coerced (a string is not a number); no string anywhere
    in the body may hold a NUL character (PostgreSQL cannot store one)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        _check_strings_and_depth(data)
        return data


# The nesting the MCP paths accept too (pydantic_core's JSON parser, which the SDK uses, stops at 200).
MAX_BODY_DEPTH = 200


def _check_strings_and_depth(value: Any) -> None:
    """No NUL in any string, and no nesting deeper than MAX_BODY_DEPTH (walked without recursion, so
    a deep body is a 400, not a RecursionError)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("strings must not contain NUL characters")
        elif isinstance(item, dict | list):
            if depth > MAX_BODY_DEPTH:
                raise ValueError(f"nested deeper than {MAX_BODY_DEPTH} levels")
            children = [p for kv in item.items() for p in kv] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


class Metadata(Strict):
    name: Name
    labels: dict[str, Annotated[str, StringConstraints(max_length=63)]] = Field(default_factory=dict)
    # Read-only: accepted so `get -o yaml | apply -f -` round-trips, ignored on write.
    id: str | None = None
    createdAt: str | None = None
    updatedAt: str | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 64:
            raise ValueError("at most 64 labels")
        try:
            return check_labels(value)
        except Exception as exc:
            raise ValueError(str(exc)) from exc


class MetadataPatch(Strict):
    labels: dict[str, str | None] | None = None


# ---- specs ---------------------------------------------------------------------------------------


class UserSpec(Strict):
    email: Email
    displayName: Annotated[str, StringConstraints(max_length=200)] | None = None
    password: Annotated[str, StringConstraints(max_length=1024)] | None = None
    disabled: bool = False
    description: Description | None = None


class GroupSpec(Strict):
    members: list[Email] = Field(default_factory=list, max_length=10_000)
    description: Description | None = None


class RoleBindingIn(Strict):
    role: Annotated[str, StringConstraints(max_length=32)] | None = None
    resource: Annotated[str, StringConstraints(max_length=63)] | None = None
    name: Annotated[str, StringConstraints(max_length=63)] | None = None
    action: Annotated[str, StringConstraints(max_length=32)] | None = None


class RbacSpec(Strict):
    # May be empty: deleting a user or group takes it out of every definition, which must still apply.
    subjects: list[Annotated[str, StringConstraints(max_length=400)]] = Field(max_length=1000)
    roleBindings: list[RoleBindingIn] = Field(default_factory=list, max_length=1000)
    description: Description | None = None


class ProjectSpec(Strict):
    servers: list[Name] = Field(default_factory=list, max_length=1000)
    # a built-in (core.proxymodels) or a stored ProxyModel: the kind handler checks it exists
    proxyModel: Name = "direct"
    toolPrefixMode: Literal["always", "never"] = "always"
    # one of core.namespacing.SEPARATORS: exposed tool names stay within [A-Za-z0-9_-] (DESIGN §5)
    toolNameSeparator: Literal["__", "_", "-"] = "__"
    description: Description | None = None


class SecretRef(Strict):
    name: Name
    key: SecretKey


class SecretRefValue(Strict):
    secretRef: SecretRef


Value = ShortText | SecretRefValue


class HealthCheck(Strict):
    tool: ToolName | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    intervalSeconds: Annotated[float, Field(gt=0, le=86_400)] = 15
    timeoutSeconds: Annotated[float, Field(gt=0, le=3_600)] = 10
    failureThreshold: Annotated[int, Field(ge=1, le=100)] = 3


class Timeouts(Strict):
    initSeconds: Annotated[float, Field(gt=0, le=3_600)] = 30
    callSeconds: Annotated[float, Field(gt=0, le=86_400)] = 120


class ToolFilter(Strict):
    allow: list[ToolName] = Field(default_factory=list, max_length=1000)
    deny: list[ToolName] = Field(default_factory=list, max_length=1000)


_STDIO_ONLY = ("command", "args", "env", "cwd")
_HTTP_ONLY = ("url", "headers")


class ServerSpec(Strict):
    transport: Literal["stdio", "http"]
    command: ShortText | None = None
    args: list[ShortText] = Field(default_factory=list, max_length=256)
    env: dict[EnvKey, Value] = Field(default_factory=dict, max_length=256)
    cwd: ShortText | None = None
    replicas: Annotated[int, Field(ge=1, le=64)] = 1
    url: ShortText | None = None
    headers: dict[HeaderName, Value] = Field(default_factory=dict, max_length=256)
    healthCheck: HealthCheck | None = None
    timeouts: Timeouts | None = None
    tools: ToolFilter | None = None
    description: Description | None = None

    @model_validator(mode="after")
    def _transport_fields(self) -> ServerSpec:
        given = self.model_fields_set
        if self.transport == "stdio":
            if not self.command or not self.command.strip():
                raise ValueError("a stdio server needs 'command'")
            wrong = [f for f in _HTTP_ONLY if f in given and getattr(self, f)]
        else:
            if not self.url or not self.url.startswith(("http://", "https://")):
                raise ValueError("an http server needs 'url' starting with http:// or https://")
            if self.replicas != 1:
                raise ValueError("'replicas' applies to stdio servers only")
            wrong = [f for f in _STDIO_ONLY if f in given and getattr(self, f)]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} cannot be set on a {self.transport} server")
        return self

    def canonical(self) -> dict[str, Any]:
        """The stored/printed form: no nulls, no fields of the other transport."""
        drop = _HTTP_ONLY if self.transport == "stdio" else (*_STDIO_ONLY, "replicas")
        data = self.model_dump(mode="json", exclude_none=True, exclude={"description"})
        return {k: v for k, v in data.items() if k not in drop}


class SecretSpec(Strict):
    data: dict[SecretKey, Annotated[str, StringConstraints(max_length=65_536)]] = Field(
        default_factory=dict, max_length=256
    )
    description: Description | None = None


MAX_PROMPT_BYTES = 64 * 1024
Tag = Annotated[str, StringConstraints(pattern=NAME_RE.pattern, max_length=63)]


class PromptSpec(Strict):
    text: str
    priority: Annotated[int, Field(ge=0, le=10)] = 5
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    description: Description | None = None

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be empty")
        if len(value.encode()) > MAX_PROMPT_BYTES:
            raise ValueError(f"text is longer than {MAX_PROMPT_BYTES} bytes")
        return value


class StageIn(Strict):
    type: Annotated[str, StringConstraints(max_length=63)]
    config: dict[str, Any] = Field(default_factory=dict, max_length=64)


class ProxyModelSpec(Strict):
    # stage types and their configs are checked by core.proxymodels.check_stages
    stages: list[StageIn] = Field(max_length=32)
    description: Description | None = None


# ---- envelopes ------------------------------------------------------------------------------------


class ObjectOut(BaseModel):
    """Any resource as served: {kind, metadata, spec, status}."""

    kind: str
    metadata: dict[str, Any]
    spec: dict[str, Any]
    status: dict[str, Any] = Field(default_factory=dict)


class ListOut(BaseModel):
    kind: Literal["List"] = "List"
    items: list[ObjectOut]


class LoginIn(Strict):
    email: Annotated[str, StringConstraints(max_length=320)]
    password: Annotated[str, StringConstraints(max_length=1024)]


class LoginOut(BaseModel):
    token: str
    expiresAt: datetime
    user: ObjectOut


class MeOut(BaseModel):
    user: ObjectOut
    groups: list[str]
    bindings: list[dict[str, str]]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorOut(BaseModel):
    error: ErrorBody
    requestId: str | None = None
