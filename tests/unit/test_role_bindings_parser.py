"""The `--roleBindings` / `--bind` grammar, JSON bindings and RBAC subjects (DESIGN §3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpctl.core.errors import InvalidError, UsageError
from mcpctl.core.kinds import RBAC_RESOURCES
from mcpctl.core.rbac import ACTIONS, ROLES, Binding, binding_from_dict, parse_binding, parse_subject

DNS_LABELS = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)
RESOURCE_BINDINGS = st.builds(
    Binding,
    role=st.sampled_from(ROLES),
    resource=st.sampled_from(sorted(RBAC_RESOURCES | {"*"})),
    name=st.none() | DNS_LABELS,
)
OPERATION_BINDINGS = st.builds(Binding, role=st.just("run"), action=st.sampled_from(ACTIONS))
BINDINGS = RESOURCE_BINDINGS | OPERATION_BINDINGS
SPACES = st.text(alphabet=" \t", max_size=2)


def _usage_error(text: str) -> UsageError:
    with pytest.raises(UsageError) as caught:
        parse_binding(text)
    assert caught.value.code == "invalid"
    return caught.value


def _message_beyond_the_echoed_input(error: UsageError, text: str) -> str:
    # The message quotes the whole input once; the bad part must be named in the rest of it.
    return str(error).replace(repr(text), "", 1)


def _outcome(text: str) -> Binding | type[UsageError]:
    try:
        return parse_binding(text)
    except UsageError:
        return UsageError


# --- valid forms -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("role:view,resource:projects", Binding(role="view", resource="projects")),
        ("role:run,resource:servers,name:time", Binding(role="run", resource="servers", name="time")),
        ("action:logs", Binding(role="run", action="logs")),
        ("action:*", Binding(role="run", action="*")),
        ("role:run,action:audit", Binding(role="run", action="audit")),
        ("role:edit,resource:*", Binding(role="edit", resource="*")),
        ("role:edit,resource:*,name:web", Binding(role="edit", resource="*", name="web")),
        (
            "  role : view ,  resource : servers , name : time  ",
            Binding(role="view", resource="servers", name="time"),
        ),
        ("\taction:\tbackup ", Binding(role="run", action="backup")),
    ],
)
def test_valid_binding_texts_parse_to_the_expected_binding(text: str, expected: Binding) -> None:
    assert parse_binding(text) == expected


def test_an_action_binding_implies_role_run_and_is_an_operation() -> None:
    binding = parse_binding("action:impersonate")
    assert binding.role == "run"
    assert binding.is_operation
    assert binding.resource is None
    assert not parse_binding("role:run,resource:servers").is_operation


# --- usage errors name the bad part ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bad_part"),
    [
        ("verb:get,role:view,resource:servers", "verb"),
        ("role:view,resource:servers,Name:web", "Name"),
        ("role:view,role:edit,resource:servers", "role"),
        ("role:view,resource:servers,resource:projects", "resource"),
        ("role:view,resource:servers,name:a,name:b", "name"),
        ("action:logs,action:audit", "action"),
    ],
)
def test_unknown_and_duplicate_keys_are_usage_errors_naming_the_key(text: str, bad_part: str) -> None:
    assert bad_part in _message_beyond_the_echoed_input(_usage_error(text), text)


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        ("resource:servers", "role"),
        ("resource:servers,name:web", "role"),
        ("role:view", "resource"),
        ("role:view,name:web", "resource"),
        ("name:web", "role"),
    ],
)
def test_a_missing_role_or_resource_is_a_usage_error_naming_it(text: str, missing: str) -> None:
    assert missing in _message_beyond_the_echoed_input(_usage_error(text), text)


@pytest.mark.parametrize(
    ("text", "mixed_with"),
    [
        ("action:logs,resource:servers", "resource"),
        ("resource:servers,action:logs", "resource"),
        ("role:run,resource:servers,action:logs", "resource"),
        ("action:logs,name:web", "name"),
    ],
)
def test_action_mixed_with_resource_or_name_is_a_usage_error(text: str, mixed_with: str) -> None:
    message = _message_beyond_the_echoed_input(_usage_error(text), text)
    assert "action" in message
    assert mixed_with in message


@pytest.mark.parametrize(
    ("text", "bad_part"),
    [
        ("role:admin,resource:servers", "admin"),
        ("role:VIEW,resource:servers", "VIEW"),
        ("role:view,resource:widgets", "widgets"),
        ("role:view,resource:srv", "srv"),
        ("action:restart", "restart"),
        ("role:view,action:logs", "view"),
        ("role:view,resource:servers,name:Not_A_Label", "Not_A_Label"),
    ],
)
def test_unknown_role_resource_action_or_bad_name_is_a_usage_error_naming_it(
    text: str, bad_part: str
) -> None:
    assert bad_part in _message_beyond_the_echoed_input(_usage_error(text), text)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("role:,resource:servers", "role"),
        ("role:view,resource:", "resource"),
        ("role:view,resource:  ", "resource"),
        ("role:view,resource:servers,name:", "name"),
        ("action:", "action"),
    ],
)
def test_an_empty_value_is_a_usage_error_naming_the_key(text: str, key: str) -> None:
    assert key in _message_beyond_the_echoed_input(_usage_error(text), text)


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_an_empty_binding_is_a_usage_error(text: str) -> None:
    _usage_error(text)


@pytest.mark.parametrize(
    ("text", "bad_part"),
    [
        ("role", "role"),
        ("role:view,resource:servers,", "''"),
        ("role:view,servers", "servers"),
    ],
)
def test_a_part_that_is_not_key_colon_value_is_a_usage_error(text: str, bad_part: str) -> None:
    assert bad_part in _message_beyond_the_echoed_input(_usage_error(text), text)


# --- properties --------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(BINDINGS)
def test_every_valid_binding_round_trips_through_its_text_and_its_dict(binding: Binding) -> None:
    assert parse_binding(str(binding)) == binding
    assert binding_from_dict(binding.to_dict()) == binding


@settings(max_examples=200, deadline=None)
@given(st.text() | st.text(alphabet=" ,:*-roleviwsucandtgkpmyb\t\n", max_size=40))
def test_arbitrary_text_either_parses_or_raises_usage_error(text: str) -> None:
    try:
        result = parse_binding(text)
    except UsageError:
        return
    assert isinstance(result, Binding)


@settings(max_examples=100, deadline=None)
@given(BINDINGS, st.data())
def test_the_order_of_the_parts_of_a_valid_binding_does_not_matter(
    binding: Binding, data: st.DataObject
) -> None:
    parts = data.draw(st.permutations(str(binding).split(",")))
    text = ",".join(data.draw(SPACES) + part + data.draw(SPACES) for part in parts)
    assert parse_binding(text) == binding


PART = st.tuples(
    st.sampled_from(["role", "resource", "name", "action", "verb", ""]),
    st.sampled_from(["view", "edit", "run", "admin", "servers", "*", "logs", "web", "Bad", ""]),
).map(lambda kv: f"{kv[0]}:{kv[1]}")


@settings(max_examples=200, deadline=None)
@given(st.lists(PART, min_size=1, max_size=4), st.data())
def test_the_outcome_of_parsing_any_parts_does_not_depend_on_their_order(
    parts: list[str], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(parts))
    assert _outcome(",".join(parts)) == _outcome(",".join(shuffled))


# --- bindings given as JSON objects ------------------------------------------------------------------


def test_a_json_action_binding_may_omit_the_role() -> None:
    assert binding_from_dict({"action": "logs"}) == Binding(role="run", action="logs")


@pytest.mark.parametrize(
    ("data", "bad_part"),
    [
        ({"role": "view", "resource": "servers", "verb": "get"}, "verb"),
        ({"role": "view", "resource": ""}, "resource"),
        ({"role": "view", "resource": 3}, "resource"),
        ({"resource": "servers"}, "role"),
        ({"role": "view"}, "resource"),
        ({"role": "root", "resource": "servers"}, "root"),
        ({"role": "run", "resource": "servers", "action": "logs"}, "action"),
        ({"role": "edit", "action": "logs"}, "edit"),
    ],
)
def test_an_invalid_json_binding_is_an_invalid_error_naming_the_bad_part(
    data: dict[str, object], bad_part: str
) -> None:
    with pytest.raises(InvalidError) as caught:
        binding_from_dict(data, where="spec.roleBindings[0]")
    assert caught.value.code == "invalid"
    assert bad_part in str(caught.value)
    assert "spec.roleBindings[0]" in str(caught.value)


def test_a_json_binding_name_with_a_trailing_newline_is_invalid() -> None:
    with pytest.raises(InvalidError):
        binding_from_dict({"role": "view", "resource": "servers", "name": "web\n"})


# --- subjects ----------------------------------------------------------------------------------------

SHA = "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("User:Bob@Example.com", ("User", "bob@example.com")),
        ("Group:admins", ("Group", "admins")),
        (f"McpToken:{SHA}", ("McpToken", SHA)),
    ],
)
def test_valid_subjects_parse_to_kind_and_value(text: str, expected: tuple[str, str]) -> None:
    assert parse_subject(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "admins",
        "Group:",
        "Role:admins",
        "group:admins",
        "Group:Admins",
        "User:bob",
        "User:bob @example.com",
        f"McpToken:{SHA[:-1]}",
        f"McpToken:{SHA.upper()}",
        f"McpToken:{SHA}0",
    ],
)
def test_invalid_subjects_are_invalid_errors(text: str) -> None:
    with pytest.raises(InvalidError):
        parse_subject(text)


def test_a_group_subject_with_a_trailing_newline_is_invalid() -> None:
    with pytest.raises(InvalidError):
        parse_subject("Group:devs\n")
