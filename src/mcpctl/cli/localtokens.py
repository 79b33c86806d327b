"""Project tokens kept on the client machine: `~/.mcpctl/tokens/<project>/<name>` (0600, dirs 0700).

One mechanism for every command that needs an McpToken for itself or for an MCP client
(`config claude`, `tools`, `call`): a token file that still works is reused; otherwise a token is
minted (an active one of that name whose file is gone is rotated: revoked, then minted again) and
written here. Re-running a command never fails on its own earlier token.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mcpctl.cli.client import ApiClient, api_path
from mcpctl.cli.errors import CliError, ServerError
from mcpctl.cli.mcptokens import create_body, mint_token
from mcpctl.core.tokens import looks_like_token, slug

Outcome = Literal["reused", "created", "rotated"]


def tokens_dir(config_file: Path) -> Path:
    """Beside the CLI's config file: `~/.mcpctl/tokens` by default, under `$MCPCTL_CONFIG`'s dir if set."""
    return config_file.expanduser().parent / "tokens"


def token_file(config_file: Path, project: str, name: str) -> Path:
    return tokens_dir(config_file) / project / name


@dataclass(frozen=True)
class LocalToken:
    token: str
    path: Path
    outcome: Outcome


def read_token_file(path: Path) -> str | None:
    """The token the file holds, or None when there is no usable one."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    return value if looks_like_token(value) else None


def write_token_file(path: Path, token: str) -> None:
    """Atomically: a 0600 temp file in the same 0700 directory, fsync, rename."""
    for directory in (path.parent.parent.parent, path.parent.parent, path.parent):
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(token + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _keep_private(path: Path) -> None:
    """A reused file that others may read (copied in by hand, say) is made 0600 again."""
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


def still_valid(client: ApiClient, token: str, project: str) -> bool:
    """Whether mcpd still takes `token` for `project` (introspection authenticates with the token)."""
    answer = client.json("GET", api_path("mcptokens", "introspect"), bearer=token)
    return isinstance(answer, dict) and answer.get("ok") is True and answer.get("project") == project


@dataclass(frozen=True)
class Login:
    """Who the CLI's login is: the user's name and e-mail (the owner of the tokens it mints)."""

    name: str
    email: str


def whoami(client: ApiClient) -> Login:
    """GET /auth/me."""
    me = client.json("GET", api_path("auth", "me"))
    user = me.get("user") if isinstance(me, dict) else None
    metadata = user.get("metadata") if isinstance(user, dict) else None
    spec = user.get("spec") if isinstance(user, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    email = spec.get("email") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not name or not isinstance(email, str):
        raise CliError("mcpd did not say who the login is (GET /api/v1/auth/me)")
    return Login(name, email)


def host_slug(hostname: str | None = None) -> str:
    """This machine's short host name as a DNS-label-friendly slug."""
    return slug((hostname or socket.gethostname()).split(".")[0])


def local_token_name(purpose: str, user: str, hostname: str | None = None) -> str:
    """`<purpose>-<host>-<user>`, at most 63 characters. The user is part of it because token names
    are unique per project, not per owner: two users on one host must not share (or rotate) one."""
    return f"{purpose}-{host_slug(hostname)}-{slug(user)}"[:63].rstrip("-")


def provision(
    client: ApiClient,
    config_file: Path,
    project: str,
    name: str,
    *,
    login: Login,
    ttl: str | None,
    description: str,
    rotate: bool = False,
) -> LocalToken:
    """A working token named `name` for `project`, in its local file: reused when it still works
    (unless `rotate`), else minted (`--rbac empty`: it reaches what its owner may run, nothing more).
    An active token of that name is rotated only when `login` owns it; another user's is left alone."""
    path = token_file(config_file, project, name)
    existing = read_token_file(path)
    if existing is not None and not rotate and still_valid(client, existing, project):
        _keep_private(path)
        return LocalToken(existing, path, "reused")
    body = create_body(name, project, rbac="empty", ttl=ttl, description=description)
    try:
        try:
            answer, replaced = mint_token(client, body, replace=False)
        except ServerError as exc:
            if exc.code != "already_exists":
                raise
            _check_owned(client, project, name, login)
            answer, replaced = mint_token(client, body, replace=True)
    except ServerError as exc:
        if exc.code == "forbidden":
            exc.message += f" (a token for project {project} is needed; ask for one, or pass --token)"
        raise
    token = str(answer["token"])
    write_token_file(path, token)
    return LocalToken(token, path, "rotated" if replaced else "created")


def _check_owned(client: ApiClient, project: str, name: str, login: Login) -> None:
    """Refuse to rotate an active token that another user owns (an admin could revoke it)."""
    try:
        found = client.json("GET", api_path("projects", project, "mcptokens", name))
    except ServerError as exc:
        if exc.code != "not_found":
            raise
        found = None  # one the login may not see: not its own
    status = found.get("status") if isinstance(found, dict) else None
    owner = status.get("owner") if isinstance(status, dict) else None
    if not isinstance(owner, str) or owner.lower() != login.email.lower():
        raise CliError(
            f"mcptoken/{name} in project {project} belongs to {owner or 'another user'}; "
            "choose another --name (nothing was changed)"
        )
