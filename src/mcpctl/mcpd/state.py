"""What one running mcpd holds: settings, database, cipher, password work and its throttles, metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from mcpctl.core.crypto import Passwords, SecretCipher
from mcpctl.core.policy import Principal
from mcpctl.mcpd.hashing import HashingPool
from mcpctl.mcpd.kinds.base import KindContext
from mcpctl.mcpd.login_throttle import LoginThrottle
from mcpctl.mcpd.middleware import Metrics
from mcpctl.mcpd.settings import Settings
from mcpctl.mcpd.supervisor.sessions import ProxySessions
from mcpctl.mcpd.supervisor.supervisor import Supervisor
from mcpctl.storage.database import Database

if TYPE_CHECKING:
    from mcpctl.mcpd.gateway import Gateway


@dataclass
class AppState:
    settings: Settings
    db: Database
    cipher: SecretCipher
    passwords: Passwords
    hashing: HashingPool
    login_throttle: LoginThrottle
    metrics: Metrics = field(default_factory=Metrics)
    supervisor: Supervisor | None = None
    proxy_sessions: ProxySessions | None = None
    gateway: Gateway | None = None

    def tokens_ended(self, token_shas: Sequence[str]) -> None:
        """Tokens were revoked or deleted: the project endpoints refuse them at once and end their
        sessions and streams, and so do the per-server proxy's sessions they opened."""
        if self.gateway is not None:
            self.gateway.tokens_ended(token_shas)
        if self.proxy_sessions is not None:
            for sha in token_shas:
                self.proxy_sessions.close_owned_by(f"token:{sha}")

    def context(self, session: AsyncSession, principal: Principal) -> KindContext:
        """What kind handlers need for one unit of work."""
        return KindContext(
            session=session,
            cipher=self.cipher,
            principal=principal,
            passwords=self.passwords,
            data_dir=self.settings.data_dir,
            stdio_commands=tuple(self.settings.stdio_commands),
            hashing=self.hashing,
            offered_names=self.gateway.offered_names if self.gateway is not None else None,
        )
