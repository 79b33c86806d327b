"""The creator ceiling as a property (DESIGN §4): a token minted with `rbac: bind` never grants
anything its creator does not hold, and a refusal names a binding the creator really lacks.

"Holds" is decided over a finite universe of questions asked through the one policy module: every
role on every resource — and on `*`, i.e. on all resources including ones added later — for the
collection (name None), for the object "a" and for any other object ("b"); and every operation,
including `*`. One app on SQLite serves all examples (the ceiling does not depend on the backend).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from mcpctl.core.kinds import RBAC_RESOURCES
from mcpctl.core.policy import Principal, can_access, can_run_operation
from mcpctl.core.rbac import ACTIONS, ROLES, Binding, binding_from_dict
from tests.integration.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, make_settings, running

pytestmark = pytest.mark.anyio

PROJECT = "p"
CREATE_TOKENS = {"role": "create", "resource": "mcptokens"}
VIEW_PROJECTS = {"role": "view", "resource": "projects"}
S_VIEW = {"role": "view", "resource": "servers"}
S_EDIT_A = {"role": "edit", "resource": "servers", "name": "a"}
ALL_EDIT = {"role": "edit", "resource": "*"}
ALL_VIEW_A = {"role": "view", "resource": "*", "name": "a"}
RESOURCES = ("projects", "servers", "mcptokens", "*")
NAMES = (None, "a")
QUESTIONS = [
    (role, resource, name)
    for role in ROLES
    for resource in (*sorted(RBAC_RESOURCES), "*")
    for name in (None, "a", "b")
]

Grant = tuple[str, ...]


def grants(bindings: Iterable[Binding]) -> frozenset[Grant]:
    """Everything a principal holding `bindings` may do, over the finite universe of questions."""
    principal = Principal(kind="token", token_sha="0" * 64, project=PROJECT, bindings=tuple(bindings))
    held: set[Grant] = {
        ("access", role, resource, str(name))
        for role, resource, name in QUESTIONS
        if can_access(principal, role, resource, name)
    }
    held.update(("run", action) for action in ACTIONS if can_run_operation(principal, action))
    return frozenset(held)


def binding_dict(role: str, resource: str, name: str | None) -> dict[str, str]:
    return {"role": role, "resource": resource} | ({"name": name} if name else {})


resource_bindings = st.builds(
    binding_dict, st.sampled_from(ROLES), st.sampled_from(RESOURCES), st.sampled_from(NAMES)
)
bindings = st.one_of(
    resource_bindings, resource_bindings, st.sampled_from(ACTIONS).map(lambda a: {"action": a})
)


def narrow(binding: dict[str, str], to_object: bool, to_view: bool, to_one_resource: bool) -> dict[str, str]:
    """A binding granting no more than `binding` (what a careful creator would ask for)."""
    if "action" in binding:
        return binding
    role = "view" if to_view and binding["role"] == "edit" else binding["role"]
    resource = "servers" if to_one_resource and binding["resource"] == "*" else binding["resource"]
    name = binding.get("name") or ("a" if to_object else None)
    return binding_dict(role, resource, name)


def widen(binding: dict[str, str], how: str) -> dict[str, str]:
    """`binding` widened in one way (the boundary the ceiling must hold): to the whole collection,
    from view to edit, or to every resource (every action)."""
    if "action" in binding:
        return {"action": "*"}
    role = "edit" if how == "edit" else binding["role"]
    resource = "*" if how == "all" else binding["resource"]
    name = None if how == "collection" else binding.get("name")
    return binding_dict(role, resource, name)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(the creator's bindings, the bindings it asks for): held, narrowed or widened from held ones,
    or random."""
    extra = draw(st.lists(bindings, max_size=5))
    creator = [CREATE_TOKENS, VIEW_PROJECTS, *extra]
    held = st.sampled_from(extra or creator)
    narrowed = st.builds(narrow, held, st.booleans(), st.booleans(), st.booleans())
    widened = st.builds(widen, held, st.sampled_from(("collection", "edit", "all")))
    requested = draw(st.lists(st.one_of(widened, held, narrowed, widened, bindings), min_size=1, max_size=4))
    return creator, requested


@dataclass
class World:
    """One app for every example, with a fresh name per example and the tokens minted so far."""

    api: Api
    names: Iterator[int] = field(default_factory=itertools.count)
    minted: list[str] = field(default_factory=list)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings_ = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'ceiling.db'}")
    async with running(settings_) as (app, client):
        api = Api(client=client, app=app, admin={})
        api.admin = await api.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        assert (await api.put("projects", PROJECT, {})).status_code == 201
        yield World(api)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=scenarios())
# the boundary, every run: widening to the collection, from view to edit, to every resource or action
@example(case=([CREATE_TOKENS, VIEW_PROJECTS, S_EDIT_A], [{"role": "edit", "resource": "servers"}]))
@example(case=([CREATE_TOKENS, VIEW_PROJECTS, S_VIEW], [{"role": "edit", "resource": "servers"}]))
@example(case=([CREATE_TOKENS, VIEW_PROJECTS, S_VIEW], [{"role": "view", "resource": "*"}]))
@example(case=([CREATE_TOKENS, VIEW_PROJECTS, {"action": "logs"}], [{"action": "*"}]))
@example(case=([CREATE_TOKENS, VIEW_PROJECTS, ALL_VIEW_A], [{"role": "view", "resource": "*"}]))
# … and narrowing, which must be allowed
@example(
    case=([CREATE_TOKENS, VIEW_PROJECTS, ALL_EDIT], [{"role": "view", "resource": "servers", "name": "a"}])
)
@example(
    case=([CREATE_TOKENS, VIEW_PROJECTS, ALL_VIEW_A], [{"role": "view", "resource": "servers", "name": "a"}])
)
@example(case=([CREATE_TOKENS, VIEW_PROJECTS, {"action": "*"}], [{"action": "audit"}, VIEW_PROJECTS]))
async def test_a_minted_token_never_exceeds_its_creator_and_a_refusal_names_an_uncovered_binding(
    world: World, case: tuple[list[dict[str, str]], list[dict[str, str]]]
) -> None:
    api = world.api
    creator_bindings, requested = case
    n = next(world.names)
    user = await api.user_with(f"u{n}", *creator_bindings)
    me = await api.client.get("/api/v1/auth/me", headers=user)
    assert me.status_code == 200, me.text
    creator = grants(binding_from_dict(b) for b in me.json()["bindings"])
    wanted = {binding_from_dict(b) for b in requested}
    uncovered = {str(b) for b in wanted if not grants([b]) <= creator}

    response = await api.client.post(
        "/api/v1/mcptokens",
        json={"name": f"t{n}", "project": PROJECT, "rbac": "bind", "bindings": requested},
        headers=user,
    )
    listed = await api.client.get(f"/api/v1/mcptokens?project={PROJECT}", headers=api.admin)
    if response.status_code == 201:
        world.minted.append(f"t{n}")
        event("minted")
        assert not uncovered, f"minted although {sorted(uncovered)} exceed the creator"
        answer = (
            await api.client.get(
                "/api/v1/mcptokens/introspect",
                headers={"Authorization": f"Bearer {response.json()['token']}"},
            )
        ).json()
        assert answer["ok"] is True and answer["owner"] == f"u{n}@example.com"
        token_bindings = {binding_from_dict(b) for b in answer["bindings"]}
        assert token_bindings == wanted
        excess = grants(token_bindings) - creator
        assert not excess, f"the token may {sorted(excess)} but its creator may not"
    else:
        event("refused")
        body: dict[str, Any] = response.json()
        assert response.status_code == 403, response.text
        assert body["error"]["code"] == "forbidden"
        named = body["error"]["details"]["binding"]
        assert named in {str(b) for b in wanted}, named
        assert named in uncovered, f"refused {named} although the creator holds all it grants"
    # a refusal creates nothing
    assert sorted(i["metadata"]["name"] for i in listed.json()["items"]) == sorted(world.minted)
