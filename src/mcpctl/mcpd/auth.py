"""Authentication: a bearer becomes a Principal, once per request (AuthMiddleware).

Login sessions are opaque random bearers stored as SHA-256; McpTokens (`mcpctl_pat_…`) come later
through the same dispatch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.ext.asyncio import AsyncSession

from mcpctl.core import tokens
from mcpctl.core.crypto import Passwords, new_session_token, sha256_hex
from mcpctl.core.policy import ANONYMOUS, Principal, bindings_for, token_bindings, token_reach
from mcpctl.core.rbac import Binding, binding_from_dict
from mcpctl.mcpd.hashing import HashingPool
from mcpctl.storage import tables
from mcpctl.storage.database import Database

TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class AuthResult:
    principal: Principal
    # Why a presented bearer was refused (None when none was presented or it was accepted).
    error: str | None = None
    session_id: str | None = None
    # For an accepted McpToken: its expiry, and whether lastUsedAt is due for an update.
    expires_at: datetime | None = None
    touch: bool = False


def bearer_from_header(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return ""
    return credentials.strip()


async def principal_for_user(session: AsyncSession, user: tables.User) -> Principal:
    """A user's principal: their groups and the union of bindings of every matching definition."""
    groups, subjects = await _user_subjects(session, user)
    return _user_principal(user, groups, subjects, await definitions_for(session, subjects))


async def _user_subjects(session: AsyncSession, user: tables.User) -> tuple[list[str], set[str]]:
    """The user's groups, and the RBAC subjects naming them (the user and each group)."""
    groups = (
        (
            await session.execute(
                sa.select(tables.Group.name)
                .join(tables.GroupMember, tables.GroupMember.group_id == tables.Group.id)
                .where(tables.GroupMember.user_id == user.id)
            )
        )
        .scalars()
        .all()
    )
    return list(groups), {f"User:{user.email}", *(f"Group:{g}" for g in groups)}


def _user_principal(
    user: tables.User,
    groups: list[str],
    subjects: set[str],
    definitions: list[tuple[list[str], list[Binding]]],
) -> Principal:
    """`definitions` may name other subjects too: only those naming `subjects` count."""
    return Principal(
        kind="user",
        user_id=user.id,
        email=user.email,
        name=user.name,
        groups=frozenset(groups),
        bindings=bindings_for(subjects, definitions),
    )


async def definitions_naming(session: AsyncSession, subjects: Iterable[str]) -> list[tables.RbacDefinition]:
    """Every RbacDefinition one of whose subjects is in `subjects` (one indexed lookup)."""
    result = await session.execute(
        sa.select(tables.RbacDefinition)
        .join(tables.RbacSubject, tables.RbacSubject.definition_id == tables.RbacDefinition.id)
        .where(tables.RbacSubject.subject.in_(list(subjects)))
        .distinct()
    )
    return list(result.scalars().all())


async def definitions_for(session: AsyncSession, subjects: set[str]) -> list[tuple[list[str], list[Binding]]]:
    """(the subjects of `subjects` it names, its bindings) of every RbacDefinition naming one of
    `subjects`, in one statement (no definition objects: a principal needs only these). Enough for
    `bindings_for` with any part of `subjects`."""
    named: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
    subject, definition = tables.RbacSubject, tables.RbacDefinition
    for definition_id, name, role_bindings in await session.execute(
        sa.select(subject.definition_id, subject.subject, definition.role_bindings)
        .join(definition, definition.id == subject.definition_id)
        .where(subject.subject.in_(sorted(subjects)))
    ):
        named.setdefault(definition_id, ([], role_bindings))[0].append(name)
    return [(names, [binding_from_dict(b) for b in found or []]) for names, found in named.values()]


async def authenticate_mcptoken(session: AsyncSession, token: str) -> AuthResult:
    """Checksum first (no database for a mistyped or invented token), then one indexed lookup."""
    if not tokens.is_well_formed(token):
        return AuthResult(ANONYMOUS, "malformed")
    sha = tokens.token_sha(token)
    found = (
        await session.execute(
            # the owner in the same statement; the project's name, not its server links (the reach
            # reads the names alone): each statement is a few hops to SQLite's thread and back, a
            # token's first use (and each use after its cached check expires) pays them all
            sa.select(tables.McpToken, tables.User)
            .outerjoin(tables.User, tables.User.email == tables.McpToken.owner)
            .options(orm.joinedload(tables.McpToken.project).raiseload(tables.Project.server_links))
            .where(tables.McpToken.token_sha == sha)
        )
    ).first()
    if found is None:
        return AuthResult(ANONYMOUS, "unknown")
    row, owner_row = found
    now = tables.utcnow()
    state = _status(row, now)
    if state != "active":
        return AuthResult(ANONYMOUS, state)
    principal = await token_principal(session, row, owner_row)
    if principal is None:
        return AuthResult(ANONYMOUS, "revoked")
    touch = row.last_used_at is None or now - row.last_used_at >= TOKEN_TOUCH_INTERVAL
    return AuthResult(principal, expires_at=row.expires_at, touch=touch)


def introspection(principal: Principal, expires_at: datetime | None) -> dict[str, Any]:
    """What introspection says of an accepted McpToken (the REST answer and the link's)."""
    return {
        "ok": True,
        "tokenName": principal.token_name,
        "tokenSha": principal.token_sha,
        "project": principal.project,
        "owner": principal.owner,
        "expiresAt": expires_at.isoformat().replace("+00:00", "Z") if expires_at else None,
        "bindings": [b.to_dict() for b in principal.bindings],
        "reach": sorted(principal.reach or ()),
    }


def _status(row: tables.McpToken, now: datetime) -> str:
    return tokens.status(revoked_at=row.revoked_at, expires_at=row.expires_at, now=now)


async def token_principal(
    session: AsyncSession, row: tables.McpToken, owner_row: tables.User | None
) -> Principal | None:
    """An active token's principal: its REST bindings capped by its owner (now) and its parent, and
    its MCP reach (DESIGN §4). None when its owner (`owner_row`, the user `row.owner` names) is
    disabled or gone, or a token above it is no longer active (fail closed)."""
    chain = await _token_chain(session, row)
    if owner_row is None or owner_row.email != row.owner or owner_row.disabled or chain is None:
        # a disabled (or vanished) owner's tokens stop working with it; so do a vanished parent's
        return None
    groups, owner_subjects = await _user_subjects(session, owner_row)
    chain_subjects = [f"McpToken:{link.token_sha}" for link in chain]
    # one lookup for the owner's definitions and the chain's; each is picked out by its subjects
    definitions = await definitions_for(session, owner_subjects.union(chain_subjects))
    owner = _user_principal(owner_row, groups, owner_subjects, definitions)
    bindings: tuple[Binding, ...] = ()
    for link, subject in zip(reversed(chain), reversed(chain_subjects), strict=True):
        # from the first token down: each is capped by the one above it
        parent = Principal(kind="token", bindings=bindings)
        granted = bindings_for({subject}, definitions)
        bindings = token_bindings(granted, [owner] if link is chain[-1] else [owner, parent])
    project_servers = (
        await session.execute(
            sa.select(tables.Server.name)
            .join(tables.ProjectServer, tables.ProjectServer.server_id == tables.Server.id)
            .where(tables.ProjectServer.project_id == row.project_id)
        )
    ).scalars()
    scopes = [[binding_from_dict(b) for b in link.bindings or []] for link in chain]
    return Principal(
        kind="token",
        bindings=bindings,
        token_id=row.id,
        token_name=row.name,
        token_sha=row.token_sha,
        project=row.project.name,
        owner=row.owner,
        token_expires_at=row.expires_at,
        reach=token_reach(project_servers, scopes, owner),
    )


async def _token_chain(session: AsyncSession, row: tables.McpToken) -> list[tables.McpToken] | None:
    """The token and every token above it (the one that minted it, and so on); None when one of
    them is gone or no longer active (fail closed)."""
    chain = [row]
    now = tables.utcnow()
    while chain[-1].parent_id is not None:
        if len(chain) > 64:
            return None
        # the token's own fields only: its project (and that project's servers) is not read
        parent = await session.get(
            tables.McpToken, chain[-1].parent_id, options=[orm.raiseload(tables.McpToken.project)]
        )
        if parent is None or _status(parent, now) != "active":
            return None
        chain.append(parent)
    return chain


async def reload_principal(session: AsyncSession, principal: Principal) -> Principal:
    """The principal as the database says now — inside a write transaction, so that a writer
    demoted a moment ago acts with what it holds now, not with what it held when its request came
    in. Anonymous when it no longer exists, is disabled, or (a token) is no longer active."""
    if principal.kind == "user" and principal.user_id is not None:
        user = await session.get(tables.User, principal.user_id)
        return ANONYMOUS if user is None or user.disabled else await principal_for_user(session, user)
    if principal.kind == "token" and principal.token_id is not None:
        row = await session.get(tables.McpToken, principal.token_id)
        now = tables.utcnow()
        if row is None or _status(row, now) != "active":
            return ANONYMOUS
        owner_row = (
            await session.execute(sa.select(tables.User).where(tables.User.email == row.owner))
        ).scalar()
        return await token_principal(session, row, owner_row) or ANONYMOUS
    return principal


async def touch_token(session: AsyncSession, token_id: str) -> None:
    """Record use, at most once a minute per token (the WHERE makes concurrent touches collapse)."""
    now = tables.utcnow()
    await session.execute(
        sa.update(tables.McpToken)
        .where(
            tables.McpToken.id == token_id,
            sa.or_(
                tables.McpToken.last_used_at.is_(None),
                tables.McpToken.last_used_at <= now - TOKEN_TOUCH_INTERVAL,
            ),
        )
        .values(last_used_at=now)
    )


async def authenticate(session: AsyncSession, token: str) -> AuthResult:
    """Resolve a bearer: `mcpctl_pat_…` is an McpToken, anything else a login session. Unknown,
    expired, revoked or disabled → anonymous with a reason."""
    if tokens.looks_like_token(token):
        return await authenticate_mcptoken(session, token)
    row = (
        await session.execute(
            sa.select(tables.LoginSession, tables.User)
            .join(tables.User, tables.User.id == tables.LoginSession.user_id)
            .where(tables.LoginSession.token_sha == sha256_hex(token))
        )
    ).first()
    if row is None:
        return AuthResult(ANONYMOUS, "unknown")
    login, user = row
    if login.expires_at <= tables.utcnow():
        return AuthResult(ANONYMOUS, "expired")
    if user.disabled:
        return AuthResult(ANONYMOUS, "disabled")
    return AuthResult(await principal_for_user(session, user), session_id=login.id)


async def check_password(
    db: Database, passwords: Passwords, hashing: HashingPool, email: str, password: str
) -> tuple[tables.User, str | None] | None:
    """The user these credentials prove, and a fresh hash when the stored one is outdated; None if
    they prove nothing. Argon2 runs in a worker thread, within the pool's concurrency cap (over it:
    TooManyRequestsError), and outside any write transaction, so a flood of logins neither stalls
    the event loop, nor exhausts memory, nor holds SQLite's single writer."""
    async with db.read() as session:
        user = (
            await session.execute(sa.select(tables.User).where(tables.User.email == email.strip().lower()))
        ).scalar()
    stored = user.password_hash if user else None
    ok = await hashing.run(passwords.verify, stored, password)
    if user is None or not ok or user.disabled:
        return None
    rehash = None
    if stored and passwords.needs_rehash(stored):
        rehash = await hashing.run(passwords.hash, password)
    return user, rehash


async def start_session(
    session: AsyncSession, user_id: str, ttl: timedelta, rehash: str | None
) -> tuple[str, tables.LoginSession]:
    """Store a new login session (hashed) and return its raw bearer, once."""
    token = new_session_token()
    now = tables.utcnow()
    record = tables.LoginSession(
        token_sha=sha256_hex(token), user_id=user_id, created_at=now, expires_at=now + ttl
    )
    session.add(record)
    if rehash is not None:
        await session.execute(
            sa.update(tables.User).where(tables.User.id == user_id).values(password_hash=rehash)
        )
    # Expired sessions of this user are dead weight: drop them while we are here.
    await session.execute(
        sa.delete(tables.LoginSession).where(
            tables.LoginSession.user_id == user_id, tables.LoginSession.expires_at <= now
        )
    )
    return token, record
