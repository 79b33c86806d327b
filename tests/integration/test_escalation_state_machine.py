"""The escalation rule as an invariant (DESIGN §4, §12): random sequences of writes — users, groups,
RBAC definitions, tokens, servers, and apply-style batches of PUTs — by random principals (users and
tokens), through the real API against a real, migrated database. After every step:

- no principal, user or token, holds or lost a permission that the writer of that step did not hold
  itself (asked over a finite universe of questions through the one policy module, with principals
  resolved by mcpd's own authentication code from the database);
- no token reaches a server its owner may not run now, nor one its parent does not reach;
- some enabled user can still edit RBAC.

Each example starts from a fresh database (SQLite in a temporary directory): the admin, two servers
`a` and `b` in project `p`, a secret `s`, and three users with random bindings.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from mcpctl.core.kinds import RBAC_RESOURCES
from mcpctl.core.policy import ANONYMOUS, Principal, can_access, can_run_operation
from mcpctl.core.rbac import ACTIONS, ROLES
from mcpctl.mcpd.auth import authenticate_mcptoken, principal_for_user
from mcpctl.storage import tables
from tests.integration.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, make_settings, running

NAMES = ("a", "b")
RESOURCES = (*sorted(RBAC_RESOURCES), "*")
QUESTIONS = [(role, res, name) for role in ROLES for res in RESOURCES for name in (None, *NAMES)]
PASSWORD = "user-password-1"

binding = st.one_of(
    st.builds(
        lambda role, resource, name: {"role": role, "resource": resource, **({"name": name} if name else {})},
        st.sampled_from(ROLES),
        st.sampled_from(("users", "groups", "rbac", "servers", "secrets", "mcptokens", "projects", "*")),
        st.sampled_from((None, *NAMES)),
    ),
    st.builds(lambda action: {"role": "run", "action": action}, st.sampled_from(("audit", "logs", "*"))),
)
bindings = st.lists(binding, max_size=4)
pick = st.integers(min_value=0, max_value=50)


def _held(principal: Principal) -> frozenset[tuple[str, ...]]:
    held = {("access", r, res, str(n)) for r, res, n in QUESTIONS if can_access(principal, r, res, n)}
    held.update(("op", a) for a in ACTIONS if can_run_operation(principal, a))
    held.update(("reach", s) for s in principal.reach or ())
    return frozenset(held)


class EscalationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        self.portal: BlockingPortal = self.stack.enter_context(start_blocking_portal())
        tmp = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
        config = make_settings(tmp, f"sqlite+aiosqlite:///{tmp / 'mcpd.db'}", supervise=False)
        self.app, self.client = self.stack.enter_context(
            self.portal.wrap_async_context_manager(running(config))
        )
        self.users: list[str] = [ADMIN_EMAIL]  # e-mails, as created
        self.passwords: dict[str, str] = {ADMIN_EMAIL: ADMIN_PASSWORD}
        self.sessions: dict[str, dict[str, str]] = {}
        self.tokens: list[str] = []  # raw McpTokens
        self.counter = 0
        admin = self.headers(ADMIN_EMAIL)
        assert admin is not None
        self.call(
            "PUT", "/api/v1/secrets/s", admin, {"metadata": {"name": "s"}, "spec": {"data": {"K": "v"}}}
        )
        for server in NAMES:
            spec = {"transport": "http", "url": "http://127.0.0.1:9/mcp"}
            self.call("PUT", f"/api/v1/servers/{server}", admin, {"metadata": {"name": server}, "spec": spec})
        spec = {"servers": list(NAMES)}
        self.call("PUT", "/api/v1/projects/p", admin, {"metadata": {"name": "p"}, "spec": spec})
        self.snapshot = self.observe()
        self.writer: Principal = ANONYMOUS

    def teardown(self) -> None:
        self.stack.close()

    # ---- plumbing --------------------------------------------------------------------------------------

    def call(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> httpx.Response:
        async def go() -> httpx.Response:
            return await self.client.request(method, path, json=body, headers=headers)

        response: httpx.Response = self.portal.call(go)
        assert response.status_code < 500, response.text
        return response

    def headers(self, email: str) -> dict[str, str] | None:
        """A login for this user (a fresh one when its sessions ended); None when it cannot log in."""
        if (
            email in self.sessions
            and self.call("GET", "/api/v1/auth/me", self.sessions[email]).status_code == 200
        ):
            return self.sessions[email]
        body = {"email": email, "password": self.passwords[email]}
        response = self.call("POST", "/api/v1/auth/login", {}, body)
        if response.status_code != 200:
            return None
        self.sessions[email] = {"Authorization": f"Bearer {response.json()['token']}"}
        return self.sessions[email]

    def observe(self) -> dict[str, tuple[Principal, frozenset[tuple[str, ...]]]]:
        """Every principal as mcpd's own authentication resolves it from the database now."""

        async def go() -> dict[str, tuple[Principal, frozenset[tuple[str, ...]]]]:
            seen: dict[str, tuple[Principal, frozenset[tuple[str, ...]]]] = {}
            async with self.app.state.mcpd.db.read() as session:
                for user in (await session.execute(sa.select(tables.User))).scalars():
                    principal = ANONYMOUS if user.disabled else await principal_for_user(session, user)
                    seen[f"user:{user.id}"] = (principal, _held(principal))
                    seen[f"email:{user.email}"] = seen[f"user:{user.id}"]
                for raw in self.tokens:
                    principal = (await authenticate_mcptoken(session, raw)).principal
                    seen[f"token:{raw}"] = (principal, _held(principal))
            return seen

        result: dict[str, tuple[Principal, frozenset[tuple[str, ...]]]] = self.portal.call(go)
        return result

    def as_writer(self, index: int, *, tokens: bool = False) -> dict[str, str] | None:
        """Pick a writer (a user, or a token when allowed) and remember what it held before."""
        pool = [("user", e) for e in self.users] + ([("token", t) for t in self.tokens] if tokens else [])
        kind, who = pool[index % len(pool)]
        if kind == "token":
            self.writer = self.snapshot[f"token:{who}"][0]
            return {"Authorization": f"Bearer {who}"}
        key = f"email:{who}"
        if key not in self.snapshot:  # renamed or deleted since
            return None
        self.writer = self.snapshot[key][0]
        return self.headers(who)

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # ---- writes ------------------------------------------------------------------------------------------

    @initialize(grants=st.lists(bindings, min_size=3, max_size=3))
    def three_users(self, grants: list[list[dict[str, str]]]) -> None:
        """Three users with random bindings, made by the admin."""
        admin = self.as_writer(0)
        assert admin is not None
        for i, granted in enumerate(grants):
            email = f"init{i}@example.com"
            body = {"metadata": {"name": f"init{i}"}, "spec": {"email": email, "password": PASSWORD}}
            assert self.call("POST", "/api/v1/users", admin, body).status_code == 201
            self.users.append(email)
            self.passwords[email] = PASSWORD
            if granted:
                spec = {"subjects": [f"User:{email}"], "roleBindings": granted}
                body = {"metadata": {"name": f"init{i}"}, "spec": spec}
                assert self.call("PUT", f"/api/v1/rbac/init{i}", admin, body).status_code == 201

    @rule(who=pick, grants=bindings)
    def create_user(self, who: int, grants: list[dict[str, str]]) -> None:
        admin = self.headers(ADMIN_EMAIL)
        headers = self.as_writer(who)
        if headers is None or admin is None:
            return
        name = self.name("u")
        email = f"{name}@example.com"
        body = {"metadata": {"name": name}, "spec": {"email": email, "password": PASSWORD}}
        if self.call("POST", "/api/v1/users", headers, body).status_code == 201:
            self.users.append(email)
            self.passwords[email] = PASSWORD

    @rule(
        who=pick,
        whom=pick,
        grants=bindings,
        subjects=st.lists(pick, max_size=3),
        name=st.sampled_from(("r1", "r2", "admins")),
    )
    def put_rbac(
        self, who: int, whom: int, grants: list[dict[str, str]], subjects: list[int], name: str
    ) -> None:
        headers = self.as_writer(who, tokens=True)
        if headers is None:
            return
        pool = [f"User:{e}" for e in self.users] + ["Group:g1", "Group:admins", "User:waiting@example.com"]
        spec = {
            "subjects": list(dict.fromkeys(pool[i % len(pool)] for i in subjects)),
            "roleBindings": grants,
        }
        self.call("PUT", f"/api/v1/rbac/{name}", headers, {"metadata": {"name": name}, "spec": spec})

    @rule(who=pick, name=st.sampled_from(("r1", "r2", "admins")))
    def delete_rbac(self, who: int, name: str) -> None:
        headers = self.as_writer(who, tokens=True)
        if headers is not None:
            self.call("DELETE", f"/api/v1/rbac/{name}", headers)

    @rule(who=pick, members=st.lists(pick, max_size=3), name=st.sampled_from(("g1", "admins")))
    def put_group(self, who: int, members: list[int], name: str) -> None:
        headers = self.as_writer(who, tokens=True)
        if headers is None:
            return
        spec = {"members": list(dict.fromkeys(self.users[i % len(self.users)] for i in members))}
        self.call("PUT", f"/api/v1/groups/{name}", headers, {"metadata": {"name": name}, "spec": spec})

    @rule(who=pick, name=st.sampled_from(("g1", "admins")))
    def delete_group(self, who: int, name: str) -> None:
        headers = self.as_writer(who)
        if headers is not None:
            self.call("DELETE", f"/api/v1/groups/{name}", headers)

    @rule(who=pick, whom=pick, change=st.sampled_from(("password", "disable", "enable", "email", "delete")))
    def change_user(self, who: int, whom: int, change: str) -> None:
        headers = self.as_writer(who)
        admin = self.headers(ADMIN_EMAIL)
        if headers is None or admin is None:
            return
        email = self.users[whom % len(self.users)]
        listed = self.call("GET", "/api/v1/users", admin)
        if listed.status_code != 200:  # the admin was written out of the admins group by an earlier step
            return
        found = [u for u in listed.json()["items"] if u["spec"]["email"] == email]
        if not found:
            return
        name = found[0]["metadata"]["name"]
        if change == "delete":
            self.call("DELETE", f"/api/v1/users/{name}", headers)
            return
        spec: dict[str, Any] = {
            "password": {"password": "changed-password-1"},
            "disable": {"disabled": True},
            "enable": {"disabled": False},
            "email": {"email": "waiting@example.com"},
        }[change]
        response = self.call("PATCH", f"/api/v1/users/{name}", headers, {"spec": spec})
        if response.status_code == 200 and change == "password":
            self.passwords[email] = "changed-password-1"
        if response.status_code == 200 and change == "email":
            self.users[whom % len(self.users)] = "waiting@example.com"
            self.passwords["waiting@example.com"] = self.passwords[email]

    @rule(who=pick, mode=st.sampled_from(("empty", "clone", "bind")), grants=bindings)
    def mint_token(self, who: int, mode: str, grants: list[dict[str, str]]) -> None:
        headers = self.as_writer(who, tokens=True)
        if headers is None:
            return
        body: dict[str, Any] = {"name": self.name("t"), "rbac": mode}
        if mode == "bind":
            body["bindings"] = grants or [{"role": "view", "resource": "projects"}]
        response = self.call("POST", "/api/v1/projects/p/mcptokens", headers, body)
        if response.status_code == 201:
            self.tokens.append(response.json()["token"])

    @rule(who=pick, server=st.sampled_from(NAMES), secret=st.booleans(), url=st.sampled_from(("9", "8")))
    def put_server(self, who: int, server: str, secret: bool, url: str) -> None:
        headers = self.as_writer(who)
        if headers is None:
            return
        spec: dict[str, Any] = {"transport": "http", "url": f"http://127.0.0.1:{url}/mcp"}
        if secret:
            spec["headers"] = {"X-K": {"secretRef": {"name": "s", "key": "K"}}}
        self.call("PUT", f"/api/v1/servers/{server}", headers, {"metadata": {"name": server}, "spec": spec})

    @rule(who=pick, grants=bindings, members=st.lists(pick, max_size=2))
    def apply_batch(self, who: int, grants: list[dict[str, str]], members: list[int]) -> None:
        """What `apply -f` does with a group and the definition that binds it: PUT after PUT."""
        headers = self.as_writer(who)
        if headers is None:
            return
        group = {"members": list(dict.fromkeys(self.users[i % len(self.users)] for i in members))}
        self.call("PUT", "/api/v1/groups/g1", headers, {"metadata": {"name": "g1"}, "spec": group})
        self.check_step()
        self.snapshot = self.observe()
        rbac = {"subjects": ["Group:g1"], "roleBindings": grants}
        self.call("PUT", "/api/v1/rbac/r2", headers, {"metadata": {"name": "r2"}, "spec": rbac})

    # ---- the invariant -------------------------------------------------------------------------------------

    def check_step(self) -> None:
        now = self.observe()
        writer_held = _held(self.writer)
        for key in self.snapshot.keys() | now.keys():
            if key.startswith("email:"):
                continue
            before = self.snapshot.get(key, (ANONYMOUS, frozenset()))[1]
            after = now.get(key, (ANONYMOUS, frozenset()))[1]
            grew = {q for q in after - before if q[0] != "reach"} - writer_held
            shrank = {q for q in before - after if q[0] != "reach"} - writer_held
            assert not grew, f"{key} gained {sorted(grew)} that the writer did not hold"
            assert not shrank, f"{key} lost {sorted(shrank)} that the writer did not hold"
        self.snapshot = now

    @invariant()
    def no_escalation_and_tokens_within_their_owners_reach(self) -> None:
        self.check_step()
        self.writer = ANONYMOUS
        owners = {p.email: p for p, _ in self.snapshot.values() if p.kind == "user"}

        async def parents() -> dict[str, str | None]:
            async with self.app.state.mcpd.db.read() as session:
                rows = (
                    await session.execute(
                        sa.select(tables.McpToken.token_sha, tables.McpToken.parent_id, tables.McpToken.id)
                    )
                ).all()
            by_id = {row.id: row.token_sha for row in rows}
            return {row.token_sha: by_id.get(row.parent_id) if row.parent_id else None for row in rows}

        parent_of: dict[str, str | None] = self.portal.call(parents)
        by_sha = {p.token_sha: p for p, _ in self.snapshot.values() if p.kind == "token"}
        for principal, _ in list(self.snapshot.values()):
            if principal.kind != "token":
                continue
            owner = owners.get(principal.owner)
            for server in principal.reach or ():
                assert owner is not None and can_access(owner, "run", "servers", server), (
                    f"token {principal.token_name} reaches {server}, which its owner may not run"
                )
                parent = by_sha.get(parent_of.get(principal.token_sha or ""))
                if parent_of.get(principal.token_sha or ""):
                    assert parent is not None and server in (parent.reach or ())
        assert any(can_access(p, "edit", "rbac") for p, _ in self.snapshot.values() if p.kind == "user"), (
            "nobody can edit RBAC"
        )


def test_no_sequence_of_writes_escalates_or_widens_a_token() -> None:
    run_state_machine_as_test(
        EscalationMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
