"""The CLI's credentials file: `~/.mcpctl/config.yaml` (or `$MCPCTL_CONFIG`), 0600 in a 0700 dir.

Precedence for each setting: flag > environment (`MCPCTL_MCPD_URL`, `MCPCTL_TOKEN`) > file > default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from mcpctl.cli.atomicfile import write_atomic
from mcpctl.cli.errors import CliError

DEFAULT_MCPD_URL = "http://127.0.0.1:3000"


@dataclass
class Config:
    """What `login` remembers. Missing fields are None."""

    mcpd_url: str | None = None
    token: str | None = None
    email: str | None = None

    def to_dict(self) -> dict[str, str]:
        pairs = {"mcpdUrl": self.mcpd_url, "token": self.token, "email": self.email}
        return {key: value for key, value in pairs.items() if value is not None}


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    override = env.get("MCPCTL_CONFIG")
    return Path(override).expanduser() if override else Path.home() / ".mcpctl" / "config.yaml"


def load_config(path: Path) -> Config:
    """Read the file; a missing file is an empty config, a broken one an error naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a mapping")

    def _str(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) and value else None

    return Config(mcpd_url=_str("mcpdUrl"), token=_str("token"), email=_str("email"))


def save_config(path: Path, config: Config) -> None:
    """Write atomically, 0600. A new dir is made 0700."""
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        directory.chmod(0o700)
    text = yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False)
    write_atomic(path, text.encode("utf-8"), 0o600)


@dataclass(frozen=True)
class Resolved:
    """The effective mcpd URL and bearer, and where the token came from ("env", "file" or None)."""

    mcpd_url: str
    token: str | None
    token_source: str | None


def resolve(config: Config, *, url_flag: str | None, environ: Mapping[str, str] | None = None) -> Resolved:
    env = os.environ if environ is None else environ
    url = url_flag or env.get("MCPCTL_MCPD_URL") or config.mcpd_url or DEFAULT_MCPD_URL
    if env.get("MCPCTL_TOKEN"):
        return Resolved(url.rstrip("/"), env["MCPCTL_TOKEN"], "env")
    return Resolved(url.rstrip("/"), config.token, "file" if config.token else None)
