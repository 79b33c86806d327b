"""mcpd's secret key, which encrypts the secrets in the database (and the launch plan)."""

from __future__ import annotations

import logging

from mcpctl.core.crypto import SecretCipher
from mcpctl.mcpd.files import write_private_file
from mcpctl.mcpd.settings import Settings

logger = logging.getLogger(__name__)

KEY_FILE = "secret.key"


def load_secret_key(settings: Settings) -> str:
    """MCPD_SECRET_KEY, else `<dataDir>/secret.key`, generated (0600) on first start."""
    found = existing_secret_key(settings)
    if found is not None:
        return found
    key = SecretCipher.generate_key()
    write_private_file(settings.data_dir / KEY_FILE, key + "\n")
    logger.info(
        "generated the secret encryption key at %s (keep it with the database)", settings.data_dir / KEY_FILE
    )
    return key


def existing_secret_key(settings: Settings) -> str | None:
    """MCPD_SECRET_KEY, else the key file's content; None before the first start made one."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.data_dir / KEY_FILE
    return path.read_text().strip() if path.exists() else None
