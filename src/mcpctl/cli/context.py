"""Per-invocation state shared by the commands: where mcpd is, the credentials, the API client."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click
import httpx

from mcpctl.cli.client import ApiClient
from mcpctl.cli.config import Config, Resolved, config_path, load_config, resolve


@dataclass
class AppState:
    """Built by the root command; tests may pass one as `obj=` with a mock `transport`."""

    mcpd_url_flag: str | None = None
    transport: httpx.BaseTransport | None = None
    _clients: list[ApiClient] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return config_path()

    def config(self) -> Config:
        return load_config(self.config_path)

    def resolved(self, url_flag: str | None = None) -> Resolved:
        return resolve(self.config(), url_flag=url_flag or self.mcpd_url_flag)

    def client(self, url_flag: str | None = None, *, anonymous: bool = False) -> ApiClient:
        """A client for the effective URL, carrying the effective bearer unless `anonymous`."""
        resolved = self.resolved(url_flag)
        client = ApiClient(resolved.mcpd_url, None if anonymous else resolved.token, transport=self.transport)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()


pass_state = click.make_pass_decorator(AppState, ensure=True)
