"""A validation error names the field as the user wrote it: pydantic's union-branch and validator
steps are left out, list items are `[i]`, a missing or unknown key is named, no input is echoed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError, create_model

from mcpctl.mcpd.errors import field_errors, fields_message, invalid_document
from mcpctl.mcpd.schemas import ServerSpec


def _fields(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        ServerSpec.model_validate(spec)
    return [item["field"] for item in field_errors(caught.value.errors(), spec)]


STDIO = {"transport": "stdio", "command": "x"}
_Document = create_model("Document", metadata=(dict[str, Any], ...), spec=(ServerSpec, ...))


def test_a_scalar_a_nested_and_a_list_item_are_named_by_their_path() -> None:
    assert _fields({**STDIO, "replicas": "abc"}) == ["replicas"]
    assert _fields({**STDIO, "healthCheck": {"intervalSeconds": "soon"}}) == ["healthCheck.intervalSeconds"]
    assert _fields({**STDIO, "args": ["a", ["b"]]}) == ["args[1]"]


def test_union_branches_do_not_show_and_a_missing_key_is_named() -> None:
    fields = _fields({**STDIO, "env": {"A": {"secretRef": {"name": 1}}}})

    assert set(fields) == {"env.A", "env.A.secretRef.name", "env.A.secretRef.key"}


def test_an_unknown_key_is_called_an_unknown_field() -> None:
    spec = {**STDIO, "colour": "blue"}
    with pytest.raises(ValidationError) as caught:
        ServerSpec.model_validate(spec)

    assert fields_message(field_errors(caught.value.errors(), spec)) == "colour: unknown field"


def test_a_patched_document_names_spec_fields_bare_and_lists_them_all() -> None:
    document = {"metadata": {"name": "t"}, "spec": {**STDIO, "replicas": "abc", "colour": "x", "cwd": 3}}
    with pytest.raises(ValidationError) as caught:
        _Document.model_validate(document)

    error = invalid_document(caught.value, document)

    assert {"replicas: Input should be a valid integer", "colour: unknown field"} <= set(
        error.message.split("; ")
    )
    assert {item["field"] for item in error.details["errors"]} == {"replicas", "colour", "cwd"}
    assert "abc" not in error.message
