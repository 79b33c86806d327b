"""The resource kinds of DESIGN §2, their nouns and aliases: one table for mcpd and the CLI."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    singular: str
    aliases: tuple[str, ...] = ()
    read_only: bool = False
    # A kind the foundation stores and serves. Others are reserved nouns for later issues.
    served: bool = True
    # Named within a project (`metadata.project`, `-p PROJECT`, /api/v1/projects/{p}/<plural>/{name}).
    project_scoped: bool = False

    @property
    def nouns(self) -> tuple[str, ...]:
        return (self.singular, self.plural, *self.aliases)


KINDS: tuple[KindInfo, ...] = (
    KindInfo("User", "users", "user"),
    KindInfo("Group", "groups", "group"),
    KindInfo("RbacDefinition", "rbac", "rbac", ("rbacdefinition", "rbacdefinitions")),
    KindInfo("Project", "projects", "project", ("proj",)),
    KindInfo("Server", "servers", "server", ("srv",)),
    KindInfo("Secret", "secrets", "secret"),
    KindInfo("AuditEvent", "auditevents", "auditevent", ("audit",), read_only=True),
    KindInfo("Instance", "instances", "instance", ("inst",), read_only=True, served=True),
    KindInfo("McpToken", "mcptokens", "mcptoken", project_scoped=True),
    KindInfo("Prompt", "prompts", "prompt", project_scoped=True),
    KindInfo("ProxyModel", "proxymodels", "proxymodel"),
)

_BY_NOUN = {noun: info for info in KINDS for noun in info.nouns}
_BY_KIND = {info.kind.lower(): info for info in KINDS}

# Resource names that RBAC bindings may use (plural nouns of §2, plus `*`).
RBAC_RESOURCES: frozenset[str] = frozenset(info.plural for info in KINDS)


def kind_for_noun(noun: str) -> KindInfo | None:
    """The kind a CLI noun (singular, plural or alias, any case) names, or None."""
    return _BY_NOUN.get(noun.lower())


def kind_for_name(kind: str) -> KindInfo | None:
    """The kind named by a manifest's `kind:` field (case-insensitive), or None."""
    return _BY_KIND.get(kind.lower())
