"""The one policy module (DESIGN §3): role implication, narrowing, operations, 404 before 403."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpctl.core.errors import ForbiddenError, NotFoundError
from mcpctl.core.policy import (
    ANONYMOUS,
    Principal,
    bindings_for,
    can_access,
    can_list,
    can_run_operation,
    covers,
    ensure_access,
    ensure_operation,
    ensure_visible,
)
from mcpctl.core.rbac import ACTIONS, ROLES, Binding, parse_binding

OPERATIONS = tuple(a for a in ACTIONS if a != "*")


def _user(*bindings: str, email: str = "bob@example.com", groups: frozenset[str] = frozenset()) -> Principal:
    return Principal(
        kind="user",
        user_id="u1",
        email=email,
        groups=groups,
        bindings=tuple(parse_binding(b) for b in bindings),
    )


# --- roles -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("held", "wanted"), list(itertools.product(ROLES, ROLES)))
def test_edit_implies_view_and_no_other_role_implies_another(held: str, wanted: str) -> None:
    principal = _user(f"role:{held},resource:servers")
    expected = held == wanted or (held, wanted) == ("edit", "view")
    assert can_access(principal, wanted, "servers") is expected
    assert can_access(principal, wanted, "servers", "time") is expected


def test_a_binding_on_one_resource_grants_nothing_on_another() -> None:
    principal = _user("role:edit,resource:servers")
    assert not can_access(principal, "view", "projects")
    assert not can_access(principal, "edit", "projects", "time")


def test_the_anonymous_principal_can_do_nothing() -> None:
    assert not ANONYMOUS.is_authenticated
    assert not can_access(ANONYMOUS, "view", "servers")
    assert not can_list(ANONYMOUS, "servers")
    assert not can_run_operation(ANONYMOUS, "logs")


# --- name narrowing and `*` --------------------------------------------------------------------------


def test_a_name_narrowed_binding_grants_only_that_object() -> None:
    principal = _user("role:run,resource:servers,name:time")
    assert can_access(principal, "run", "servers", "time")
    assert not can_access(principal, "run", "servers", "weather")
    assert not can_access(principal, "run", "servers")  # not the collection as a whole
    assert not can_access(principal, "run", "projects", "time")


def test_a_star_resource_binding_grants_the_role_on_every_resource() -> None:
    principal = _user("role:edit,resource:*")
    for resource in ("servers", "projects", "secrets", "users"):
        assert can_access(principal, "edit", resource)
        assert can_access(principal, "view", resource, "anything")
        assert not can_access(principal, "delete", resource)


def test_a_star_resource_binding_with_a_name_grants_that_name_on_every_resource() -> None:
    principal = _user("role:view,resource:*,name:web")
    assert can_access(principal, "view", "servers", "web")
    assert can_access(principal, "view", "projects", "web")
    assert not can_access(principal, "view", "servers", "db")
    assert not can_access(principal, "view", "servers")


def test_a_name_narrowed_view_still_lets_the_principal_list_the_resource() -> None:
    principal = _user("role:view,resource:servers,name:time")
    assert can_list(principal, "servers")
    assert not can_access(principal, "view", "servers")
    assert not can_list(principal, "projects")


@pytest.mark.parametrize(
    ("binding", "listable"),
    [
        ("role:edit,resource:servers,name:time", True),
        ("role:view,resource:*", True),
        ("role:run,resource:servers", False),
        ("role:create,resource:servers", False),
        ("action:*", False),
    ],
)
def test_only_view_or_edit_bindings_make_a_resource_listable(binding: str, listable: bool) -> None:
    assert can_list(_user(binding), "servers") is listable


# --- operations --------------------------------------------------------------------------------------


def test_action_star_grants_every_operation() -> None:
    principal = _user("action:*")
    assert all(can_run_operation(principal, action) for action in ACTIONS)


def test_an_action_binding_grants_only_that_operation() -> None:
    principal = _user("action:logs")
    assert can_run_operation(principal, "logs")
    assert not any(can_run_operation(principal, a) for a in ACTIONS if a != "logs")


def test_operation_and_resource_bindings_do_not_grant_each_other() -> None:
    operator = _user("action:*")
    assert not any(can_access(operator, role, "servers") for role in ROLES)
    admin = _user(*(f"role:{role},resource:*" for role in ROLES))
    assert not any(can_run_operation(admin, action) for action in ACTIONS)


# --- ensure: 404 before 403 --------------------------------------------------------------------------


def test_ensure_visible_hides_an_object_the_principal_may_not_view_as_not_found() -> None:
    principal = _user("role:create,resource:servers", "role:view,resource:servers,name:time")
    ensure_visible(principal, "servers", "time", kind="Server")
    with pytest.raises(NotFoundError) as caught:
        ensure_visible(principal, "servers", "secret-one", kind="Server")
    assert caught.value.code == "not_found"
    assert caught.value.details == {"kind": "Server", "name": "secret-one"}


def test_ensure_access_refuses_a_missing_role_as_forbidden() -> None:
    principal = _user("role:view,resource:servers")
    ensure_access(principal, "view", "servers", "time")
    with pytest.raises(ForbiddenError) as caught:
        ensure_access(principal, "edit", "servers", "time")
    assert caught.value.code == "forbidden"
    assert caught.value.details == {"role": "edit", "resource": "servers", "name": "time"}


def test_ensure_operation_refuses_an_operation_not_granted_as_forbidden() -> None:
    principal = _user("action:logs")
    ensure_operation(principal, "logs")
    with pytest.raises(ForbiddenError) as caught:
        ensure_operation(principal, "backup")
    assert caught.value.details == {"action": "backup"}


# --- subjects and bindings_for -----------------------------------------------------------------------


def test_a_principal_matches_its_user_subject_and_each_of_its_groups() -> None:
    principal = _user(email="bob@example.com", groups=frozenset({"devs", "admins"}))
    assert principal.subjects == {"User:bob@example.com", "Group:devs", "Group:admins"}


def test_bindings_for_is_the_union_of_every_definition_matching_the_user_or_a_group() -> None:
    view, run, edit, logs = (
        parse_binding(t)
        for t in (
            "role:view,resource:servers",
            "role:run,resource:servers,name:time",
            "role:edit,resource:*",
            "action:logs",
        )
    )
    definitions = [
        (["User:bob@example.com"], [view, run]),
        (["Group:devs", "Group:ops"], [run, logs]),
        (["Group:admins"], [edit]),
        (["User:alice@example.com"], [edit]),
    ]
    subjects = _user(email="bob@example.com", groups=frozenset({"devs"})).subjects
    granted = bindings_for(subjects, definitions)
    assert set(granted) == {view, run, logs}
    assert len(granted) == len(set(granted))


def test_bindings_for_a_subject_in_no_definition_is_empty() -> None:
    assert bindings_for(["User:eve@example.com"], [(["Group:admins"], [parse_binding("action:*")])]) == ()


# --- covers (the creator ceiling) --------------------------------------------------------------------

RESOURCES = ("servers", "projects")
NAMES = (None, "a", "b")
COVER_BINDINGS = st.builds(
    Binding,
    role=st.sampled_from(ROLES),
    resource=st.sampled_from((*RESOURCES, "*")),
    name=st.sampled_from(NAMES),
) | st.builds(Binding, role=st.just("run"), action=st.sampled_from(ACTIONS))


def _holding(*bindings: Binding) -> Principal:
    return Principal(kind="user", email="p@example.com", bindings=bindings)


@settings(max_examples=200, deadline=None)
@given(st.lists(COVER_BINDINGS, max_size=6), COVER_BINDINGS, st.booleans())
def test_covers_only_when_the_principal_can_do_everything_the_binding_grants(
    held: list[Binding], binding: Binding, include_it: bool
) -> None:
    principal = _holding(*held, *([binding] if include_it else []))
    if not covers(principal, binding):
        return
    only_b = _holding(binding)
    for role, resource, name in itertools.product(ROLES, RESOURCES, NAMES):
        if can_access(only_b, role, resource, name):
            assert can_access(principal, role, resource, name), (role, resource, name)
    for resource in RESOURCES:
        if can_list(only_b, resource):
            assert can_list(principal, resource), resource
    for action in ACTIONS:
        if can_run_operation(only_b, action):
            assert can_run_operation(principal, action), action


@pytest.mark.parametrize(
    "binding",
    [
        "role:view,resource:servers",
        "role:edit,resource:servers,name:a",
        "role:run,resource:*",
        "action:logs",
        "action:*",
    ],
)
def test_a_principal_covers_a_binding_it_holds(binding: str) -> None:
    assert covers(_user(binding), parse_binding(binding))


@pytest.mark.parametrize(
    ("held", "binding"),
    [
        ("role:view,resource:servers", "role:edit,resource:servers"),
        ("role:edit,resource:servers,name:a", "role:edit,resource:servers"),
        ("role:edit,resource:servers", "role:edit,resource:*"),
        ("action:logs", "action:*"),
        ("role:run,resource:*", "action:logs"),
    ],
)
def test_a_principal_does_not_cover_a_wider_binding(held: str, binding: str) -> None:
    assert not covers(_user(held), parse_binding(binding))


def test_edit_on_a_resource_covers_view_of_one_of_its_objects() -> None:
    assert covers(_user("role:edit,resource:*"), parse_binding("role:view,resource:servers,name:a"))


def test_a_principal_covers_a_star_resource_binding_with_a_name_that_it_holds() -> None:
    binding = "role:view,resource:*,name:a"
    assert covers(_user(binding), parse_binding(binding))
