"""What one running mcpd holds: settings, database, cipher, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from mcpctl.core.crypto import SecretCipher
from mcpctl.mcpd.middleware import Metrics
from mcpctl.mcpd.settings import Settings
from mcpctl.storage.database import Database


@dataclass
class AppState:
    settings: Settings
    db: Database
    cipher: SecretCipher
    metrics: Metrics = field(default_factory=Metrics)
