"""MCP clients' JSON config files: where they live, whether they are meant to be committed, and
merging our one server entry (and VS Code's input) in without touching anything else — atomically,
the old file kept in the CLI's own backups directory.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcpctl.cli.atomicfile import write_atomic
from mcpctl.cli.errors import CliError


@dataclass(frozen=True)
class Client:
    name: str
    section: str  # the config file's map of servers
    shared: bool  # a file in the project, meant to be committed (else a user-wide file)

    @property
    def new_file_mode(self) -> int:
        """0644 for a file meant to be committed (it never holds a token); 0600 for a user-wide file,
        which commonly holds other servers' keys."""
        return 0o644 if self.shared else 0o600


CLIENTS: dict[str, Client] = {
    client.name: client
    for client in (
        Client("claude-desktop", "mcpServers", shared=False),
        Client("claude-code", "mcpServers", shared=True),
        Client("vscode", "servers", shared=True),
        Client("cursor", "mcpServers", shared=False),
    )
}
INPUTS = "inputs"  # VS Code's list of inputs, merged by id


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


@dataclass(frozen=True)
class ConfigFile:
    """A client config file as read: its JSON object, and its bytes and mode if it existed."""

    path: Path
    data: dict[str, Any]
    original: bytes | None = None
    mode: int | None = None


def read_config_file(path: Path, section: str) -> ConfigFile:
    """Read the file (missing → `{}`); invalid JSON, not an object, a `section` that is not an
    object or `inputs` that is not a list is an error naming it."""
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
    if not isinstance(data.get(INPUTS, []), list):
        raise CliError(f"{path}: {INPUTS!r} must be a JSON list; nothing was written")
    return ConfigFile(target, data, raw, target.stat().st_mode & 0o7777)


def merged(current: Mapping[str, Any], addition: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the file's object with `addition` merged in: each map of servers by entry name, VS
    Code's `inputs` by id (ours replaces one with its id, the others stay, in order)."""
    out = dict(current)
    for key, value in addition.items():
        if key == INPUTS:
            ours = {item["id"] for item in value}
            kept = [item for item in current.get(INPUTS) or [] if _input_id(item) not in ours]
            out[key] = [*kept, *value]
        else:
            out[key] = {**(current.get(key) or {}), **value}
    return out


def _input_id(item: Any) -> Any:
    return item.get("id") if isinstance(item, Mapping) else None


def write_config_file(
    current: ConfigFile, data: Mapping[str, Any], new_mode: int, *, backup_dir: Path
) -> Path | None:
    """Write `data` over the file: first a backup of the old one, then the new one. The backup goes to
    `backup_dir` (the CLI's own, 0700; the copy 0600), never beside the file: `.mcp.json` and
    `.vscode/mcp.json` live in a repository, and an old copy there may hold a raw token. An existing
    file keeps its mode; a new one gets `new_mode` (its new directory: 0700 when the file is private,
    else 0755). Returns the backup's path, or None when there was no old file."""
    path = current.path
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700 if new_mode & 0o077 == 0 else 0o755, parents=True)
    backup: Path | None = None
    try:
        if current.original is not None:
            backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            backup = backup_dir / f"{path.name}.{stamp}.bak"
            write_atomic(backup, current.original, 0o600)
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        write_atomic(path, text.encode("utf-8"), current.mode if current.mode is not None else new_mode)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return backup
