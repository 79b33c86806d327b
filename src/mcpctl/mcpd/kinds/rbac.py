"""RBAC definitions: subjects and role bindings, validated by the one grammar in core.rbac."""

from __future__ import annotations

from typing import Any

from mcpctl.core.errors import InvalidError
from mcpctl.core.kinds import kind_for_noun
from mcpctl.core.rbac import Binding, binding_from_dict, parse_subject
from mcpctl.mcpd.kinds.base import KindContext, KindHandler, replace_children
from mcpctl.mcpd.schemas import RbacSpec
from mcpctl.storage import tables


def normalize(spec: RbacSpec) -> tuple[list[str], list[Binding]]:
    subjects: list[str] = []
    for i, text in enumerate(spec.subjects):
        kind, value = parse_subject(text)
        subject = f"{kind}:{value}"
        if subject in subjects:
            raise InvalidError(f"subjects[{i}]: duplicate subject {subject!r}")
        subjects.append(subject)
    bindings: list[Binding] = []
    for i, raw in enumerate(spec.roleBindings):
        binding = binding_from_dict(raw.model_dump(exclude_none=True), where=f"roleBindings[{i}]")
        if binding not in bindings:
            bindings.append(binding)
    return subjects, bindings


class RbacHandler(KindHandler[tables.RbacDefinition, RbacSpec]):
    info = kind_for_noun("rbac")  # type: ignore[assignment]
    table = tables.RbacDefinition
    spec_model = RbacSpec
    changes_permissions = True

    async def spec_of(
        self, ctx: KindContext, row: tables.RbacDefinition, *, show_values: bool
    ) -> dict[str, Any]:
        return {"subjects": [s.subject for s in row.subject_rows], "roleBindings": list(row.role_bindings)}

    def canonical(self, spec: RbacSpec) -> dict[str, Any]:
        subjects, bindings = normalize(spec)
        return {"subjects": subjects, "roleBindings": [b.to_dict() for b in bindings]}

    async def write(self, ctx: KindContext, row: tables.RbacDefinition, spec: RbacSpec) -> None:
        # No escalation: the resource routes guard every write of this kind (mcpd/escalation.py).
        subjects, bindings = normalize(spec)
        row.role_bindings = [b.to_dict() for b in bindings]
        await replace_children(ctx, row, "subject_rows")
        row.subject_rows = [tables.RbacSubject(subject=s, position=i) for i, s in enumerate(subjects)]
