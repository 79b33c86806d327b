"""First start: the first admin with group and RbacDefinition `admins` (the secret key: secretkey.py)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from mcpctl.core.crypto import Passwords, generate_password
from mcpctl.core.names import check_email
from mcpctl.core.rbac import parse_binding
from mcpctl.mcpd.files import write_private_file
from mcpctl.mcpd.settings import Settings
from mcpctl.storage import tables
from mcpctl.storage.database import Database

logger = logging.getLogger(__name__)

DEFAULT_ADMIN_EMAIL = "admin@mcpctl.local"
ADMIN_BINDINGS = (
    "role:edit,resource:*",
    "role:create,resource:*",
    "role:delete,resource:*",
    "role:run,resource:*",
    "action:*",
)


def credentials_path(settings: Settings) -> Path:
    return settings.data_dir / "admin-credentials"


def _admin_password(settings: Settings) -> tuple[str, bool]:
    if settings.bootstrap_admin_password is not None:
        return settings.bootstrap_admin_password.get_secret_value(), False
    if settings.bootstrap_admin_password_file is not None:
        return settings.bootstrap_admin_password_file.read_text().strip(), False
    return generate_password(), True


def _user_name(email: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", email.split("@")[0].lower()).strip("-")[:63].strip("-")
    return name or "admin"


async def _make_admin(session: AsyncSession, user: tables.User, *, restore: bool) -> None:
    """Put `user` in group `admins`, which RbacDefinition `admins` binds to full access: the
    definition is created when missing, and with `restore` its bindings and subject are put back."""
    group = (await session.execute(sa.select(tables.Group).where(tables.Group.name == "admins"))).scalar()
    if group is None:
        group = tables.Group(name="admins", labels={}, description="mcpd administrators")
        session.add(group)  # not flushed yet: its (empty) memberships need no load
    if not any(m.user_id == user.id for m in group.memberships):
        group.memberships = [
            *group.memberships,
            tables.GroupMember(user_id=user.id, position=len(group.memberships)),
        ]
    definition = (
        await session.execute(sa.select(tables.RbacDefinition).where(tables.RbacDefinition.name == "admins"))
    ).scalar()
    if definition is None:
        definition = tables.RbacDefinition(
            name="admins", labels={}, description="full access for the admins group", subject_rows=[]
        )
        session.add(definition)
        restore = True
    if restore:
        definition.role_bindings = [parse_binding(b).to_dict() for b in ADMIN_BINDINGS]
        if not any(s.subject == "Group:admins" for s in definition.subject_rows):
            definition.subject_rows = [
                *definition.subject_rows,
                tables.RbacSubject(subject="Group:admins", position=len(definition.subject_rows)),
            ]


async def bootstrap_admin(db: Database, settings: Settings, passwords: Passwords, *, public_url: str) -> None:
    """Create the first admin when the database has no user; say where its credentials are."""
    async with db.write() as session:
        if (await session.execute(sa.select(sa.func.count()).select_from(tables.User))).scalar():
            if credentials_path(settings).exists():
                logger.info("admin credentials from the first start are in %s", credentials_path(settings))
            return
        email = check_email(settings.bootstrap_admin_email or DEFAULT_ADMIN_EMAIL)
        password, generated = _admin_password(settings)
        user = tables.User(
            name=_user_name(email),
            email=email,
            password_hash=passwords.hash(password),
            labels={},
            display_name="Administrator",
        )
        session.add(user)
        await session.flush()
        await _make_admin(session, user, restore=False)
    if generated:
        import yaml  # on the first start only (~15 ms of every later start otherwise)

        path = credentials_path(settings)
        write_private_file(
            path, yaml.safe_dump({"mcpdUrl": public_url, "email": email, "password": password})
        )
        logger.warning(
            "created the first admin %s; generated credentials written to %s (0600). "
            "Log in with: mcpctl login --mcpd-url %s --email %s",
            email,
            path,
            public_url,
            email,
        )
    else:
        logger.info("created the first admin %s from the bootstrap settings", email)


async def reset_admin(db: Database, passwords: Passwords, email: str, password: str) -> str:
    """Break-glass (`mcpd admin reset`, DESIGN §12): make `email` an enabled member of group
    `admins` with this password, restore RbacDefinition `admins` to full access for that group, and
    end the user's login sessions. Runs on the mcpd host with database access, bypassing the API's
    rules on purpose. Returns what it did, for the operator."""
    email = check_email(email)
    async with db.write() as session:
        user = (await session.execute(sa.select(tables.User).where(tables.User.email == email))).scalar()
        if user is None:
            name, n = _user_name(email), 1
            while (await session.execute(sa.select(tables.User.id).where(tables.User.name == name))).first():
                n += 1
                name = f"{_user_name(email)[:58]}-{n}"
            user = tables.User(name=name, email=email, labels={}, display_name="Administrator")
            session.add(user)
            done = f'created user "{name}" ({email})'
        else:
            done = f'reset user "{user.name}" ({email})'
        user.password_hash = passwords.hash(password)
        user.disabled = False
        await session.flush()
        await session.execute(sa.delete(tables.LoginSession).where(tables.LoginSession.user_id == user.id))
        await _make_admin(session, user, restore=True)
    logger.warning("admin reset: %s, member of group admins with full access", done)
    return f"{done}; member of group admins; RbacDefinition admins restored to full access"
