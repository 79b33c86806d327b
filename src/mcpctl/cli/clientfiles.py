"""MCP clients' JSON config files: where they live, which snippet of mcpd's `clientConfig` each takes,
and merging our one server entry in without touching anything else — atomically, old file kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcpctl.cli.errors import CliError
from mcpctl.core.tokens import slug


@dataclass(frozen=True)
class Client:
    name: str
    snippet_key: str  # in mcpd's clientConfig
    section: str  # the config file's map of servers


CLIENTS: dict[str, Client] = {
    client.name: client
    for client in (
        Client("claude-desktop", "claudeDesktop", "mcpServers"),
        Client("claude-code", "claudeCode", "mcpServers"),
        Client("vscode", "vscode", "servers"),
        Client("cursor", "cursor", "mcpServers"),
    )
}


def default_path(client: str, *, platform: str = sys.platform, home: Path | None = None) -> Path:
    """The client's config file: user-wide for Claude Desktop and Cursor, in the current directory
    (the project) for Claude Code and VS Code."""
    home = home or Path.home()
    if client == "claude-desktop":
        if platform == "darwin":
            return home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
        if platform.startswith("win"):
            appdata = os.environ.get("APPDATA")
            return (
                (Path(appdata) if appdata else home / "AppData" / "Roaming")
                / "Claude"
                / ("claude_desktop_config.json")
            )
        return home / ".config" / "Claude" / "claude_desktop_config.json"
    if client == "cursor":
        return home / ".cursor" / "mcp.json"
    if client == "vscode":
        return Path(".vscode") / "mcp.json"
    return Path(".mcp.json")


def snippet(client: Client, client_config: Any) -> Any:
    """The client's snippet from mcpd's create answer, as given (text for claude-code)."""
    value = client_config.get(client.snippet_key) if isinstance(client_config, Mapping) else None
    if value is None or value == "":
        raise CliError(f"mcpd's answer has no clientConfig.{client.snippet_key}")
    return value


def server_entries(client: Client, client_config: Any, project: str) -> dict[str, Any]:
    """`{entry name: entry}` to merge into the client's file. Claude Code's project file takes the
    generic Streamable-HTTP snippet as `{type: http, url, headers}`."""
    if client.name != "claude-code":
        value = snippet(client, client_config)
        entries = value.get(client.section) if isinstance(value, Mapping) else None
        if not isinstance(entries, Mapping) or not entries:
            raise CliError(f"mcpd's clientConfig.{client.snippet_key} has no {client.section!r} map")
        return dict(entries)
    http = client_config.get("http") if isinstance(client_config, Mapping) else None
    if not isinstance(http, Mapping) or not isinstance(http.get("url"), str):
        raise CliError("mcpd's answer has no clientConfig.http with a url")
    entry: dict[str, Any] = {"type": "http", "url": http["url"]}
    if http.get("headers"):
        entry["headers"] = dict(http["headers"])
    desktop = client_config.get("claudeDesktop")
    names = desktop.get("mcpServers") if isinstance(desktop, Mapping) else None
    name = next(iter(names)) if isinstance(names, Mapping) and len(names) == 1 else None
    return {str(name or f"mcpctl-{slug(project)}"): entry}


@dataclass(frozen=True)
class ConfigFile:
    """A client config file as read: its JSON object, and its bytes and mode if it existed."""

    path: Path
    data: dict[str, Any]
    original: bytes | None = None
    mode: int | None = None


def read_config_file(path: Path, section: str) -> ConfigFile:
    """Read the file (missing → `{}`); invalid JSON, or not an object, is an error naming it."""
    target = path.resolve() if path.is_symlink() else path  # write through a symlink, not over it
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        return ConfigFile(target, {})
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise CliError(f"{path} is not valid JSON ({exc}); fix or move it, nothing was written") from exc
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a JSON object; nothing was written")
    if not isinstance(data.get(section, {}), dict):
        raise CliError(f"{path}: {section!r} must be a JSON object; nothing was written")
    return ConfigFile(target, data, raw, target.stat().st_mode & 0o7777)


def merged(current: Mapping[str, Any], section: str, entries: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the file's object with `entries` added to (or replacing theirs in) `section`."""
    out = dict(current)
    out[section] = {**(current.get(section) or {}), **entries}
    return out


def _write_atomic(path: Path, content: bytes, mode: int) -> None:
    """Temp file in the same directory, fsync, rename over `path`: readers see old or new, whole."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_config_file(current: ConfigFile, data: Mapping[str, Any]) -> Path | None:
    """Write `data` over the file: first a backup of the old one (`<file>.bak`), then the new one.
    A new file is 0600 (it may hold a bearer token), in a new 0700 directory; an existing file keeps
    its mode. Returns the backup's path, or None when there was no old file."""
    path = current.path
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    backup: Path | None = None
    try:
        if current.original is not None:
            backup = path.with_name(path.name + ".bak")
            _write_atomic(backup, current.original, current.mode or 0o600)
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        mode = current.mode if current.mode is not None else 0o600
        _write_atomic(path, text.encode("utf-8"), mode)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return backup
