"""Recording a token's last use (`status.lastUsedAt`): bookkeeping, so it never fails a request.

Both doors of mcpd touch a token when they accept it — the API middleware and the embedded project
endpoint's introspection. On a full disk that write fails; the request goes on (reads still work),
and the failure is a warning, not a 500 or a "control plane unreachable".
"""

from __future__ import annotations

import logging

from mcpctl.core.errors import InsufficientStorageError
from mcpctl.mcpd.auth import touch_token
from mcpctl.storage.database import Database

logger = logging.getLogger(__name__)


async def record_token_use(db: Database, token_id: str) -> None:
    """Touch the token's last-used time (at most once a minute: `touch_token` decides)."""
    try:
        async with db.write() as session:
            await touch_token(session, token_id)
    except InsufficientStorageError:
        logger.warning("could not record a token's last use: the disk is full")
