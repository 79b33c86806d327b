"""Project tokens kept on the client machine: `~/.mcpctl/tokens/<mcpd>/<project>/<name>` (0600, dirs
0700), `<mcpd>` naming the mcpd that issued it (its host and port), so that two installations with a
project of the same name never share, send each other or overwrite one token.

One mechanism for every command that needs an McpToken for itself or for an MCP client
(`config claude`, `tools`, `call`): a token file that still works — at that mcpd, for that project,
owned by the login — is reused; otherwise a token is minted (an active one of that name whose file is
gone is rotated: revoked, then minted again, only when the login owns it) and written here. Re-running
a command never fails on its own earlier token. Directories someone else owns or may write, and
symbolic links, are refused: a token planted there would make the CLI act as someone else.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from mcpctl.cli.atomicfile import write_atomic
from mcpctl.cli.client import ApiClient, api_path
from mcpctl.cli.errors import CliError, ServerError, usage_error
from mcpctl.cli.mcptokens import create_body, mint_token
from mcpctl.core.errors import InvalidError
from mcpctl.core.names import check_name
from mcpctl.core.tokens import looks_like_token, slug

Outcome = Literal["reused", "created", "rotated"]


def tokens_dir(config_file: Path) -> Path:
    """Beside the CLI's config file: `~/.mcpctl/tokens` by default, under `$MCPCTL_CONFIG`'s dir if set."""
    return config_file.expanduser().parent / "tokens"


def mcpd_key(mcpd_url: str) -> str:
    """The directory of one mcpd's tokens: its host and port as a slug (`127-0-0-1-3000`)."""
    parts = urlsplit(mcpd_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return slug(f"{parts.hostname or 'mcpd'}-{port}")


def token_file(config_file: Path, mcpd_url: str, project: str, name: str) -> Path:
    """Where the token `name` of `project` at that mcpd is kept; names must be DNS labels (so no
    path can be made of them)."""
    try:
        check_name(project, what="project")
        check_name(name, what="token name")
    except InvalidError as exc:
        raise usage_error(exc.message) from exc
    return tokens_dir(config_file) / mcpd_key(mcpd_url) / project / name


@dataclass(frozen=True)
class LocalToken:
    token: str
    path: Path
    outcome: Outcome


def _private_dir(directory: Path) -> None:
    """Make `directory` (0700) or insist that it is a real directory of this user that no one else
    may write."""
    try:
        info = directory.lstat()
    except FileNotFoundError:
        directory.mkdir(mode=0o700)
        return
    if not stat.S_ISDIR(info.st_mode):
        raise CliError(f"refusing to keep tokens in {directory}: not a directory (a symbolic link?)")
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise CliError(
            f"refusing to keep tokens in {directory}: it belongs to someone else or others may write "
            "it (make it yours and 0700, or set MCPCTL_CONFIG to a private directory)"
        )


def _prepare(path: Path, config_file: Path) -> None:
    """The token directories from the store's root down to the file's, each checked or made."""
    root = tokens_dir(config_file)
    root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory = root
    _private_dir(directory)
    for part in path.parent.relative_to(root).parts:
        directory = directory / part
        _private_dir(directory)


def read_token_file(path: Path) -> str | None:
    """The token the file holds, or None when there is no usable one. Never follows a symbolic
    link; a file others may read is made 0600 again; one someone else owns is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror} (a symbolic link is refused)") from exc
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if info.st_uid != os.getuid() or not stat.S_ISREG(info.st_mode):
            raise CliError(f"refusing {path}: not a file of yours")
        if info.st_mode & 0o077:  # copied in by hand, say
            os.fchmod(fh.fileno(), 0o600)
        try:
            value = fh.read(4096).decode("utf-8").strip()
        except UnicodeDecodeError:
            return None
    return value if looks_like_token(value) else None


def write_token_file(path: Path, token: str) -> None:
    """Atomically, 0600 (over a symbolic link, never through it)."""
    write_atomic(path, (token + "\n").encode("utf-8"), 0o600)


def still_valid(client: ApiClient, token: str, project: str, login: Login) -> bool:
    """Whether mcpd still takes `token` for `project`, and it is the login's own (introspection
    authenticates with the token; `client` is bound to the mcpd the file is kept for)."""
    answer = client.json("GET", api_path("mcptokens", "introspect"), bearer=token)
    if not isinstance(answer, dict) or answer.get("ok") is not True or answer.get("project") != project:
        return False
    owner = answer.get("owner")
    return isinstance(owner, str) and owner.lower() == login.email.lower()


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
    path = token_file(config_file, client.base_url, project, name)
    _prepare(path, config_file)
    existing = read_token_file(path)
    if existing is not None and not rotate and still_valid(client, existing, project, login):
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
