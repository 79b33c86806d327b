"""The data-plane link's WebSocket (`core/link_protocol.py`): split-mode mcplocal connects here.

Opening it needs no credential: it can do nothing until a caller's McpToken is presented on it (within
a deadline, else it is closed), and every call is made as an authenticated token. Links are capped in
all and per address (`mcpd/link.py` LinkLimits). Browsers are refused (a handshake with an Origin
header): mcplocal sends none, and no web page has business here.
"""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from mcpctl.core.link_protocol import LINK_PATH, SUBPROTOCOL
from mcpctl.mcpd.state import AppState

router = APIRouter(tags=["data-plane link"])
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


@router.websocket(LINK_PATH)
async def data_plane_link(websocket: WebSocket) -> None:
    state: AppState = websocket.app.state.mcpd
    if websocket.headers.get("origin"):
        await websocket.close(POLICY_VIOLATION, "browsers may not open the data-plane link")
        return
    client = websocket.client
    address = client.host[:64] if client else None
    if state.gateway is None or not state.gateway.links.admits(address):
        await websocket.close(TRY_AGAIN_LATER, "mcpd takes no more links now")
        return
    batching = SUBPROTOCOL in websocket.scope.get("subprotocols", ())
    await websocket.accept(subprotocol=SUBPROTOCOL if batching else None)
    await state.gateway.links.serve(websocket, address, batching=batching)
