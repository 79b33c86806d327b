"""The project endpoint ahead of the web framework: a request for `/projects/{project}/mcp` goes
straight to the endpoint, with what the framework's route would have put in its scope; anything
else (another path or method, a root path, the lifespan) goes to the framework's app.

The framework's middleware stack and router were a fifth of mcpd's CPU per call, and ~6 % of
`mcplocal serve`'s samples under split-http at c=32 (Starlette's error and exception middleware
each wrapping `send`, the router matching every route). mcpd's app (`mcpd/app.py`) and `mcplocal
serve` both dispatch this way; the route stays registered in the framework, which serves it for
the rest.
"""

from __future__ import annotations

import re

from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

PROJECT_MCP_PATH = "/projects/{project}/mcp"
PROJECT_MCP_METHODS = ("GET", "POST", "DELETE")
_PROJECT_MCP = re.compile(r"^/projects/([^/]+)/mcp$")  # Starlette's match of the template above


def project_route(endpoint: ASGIApp) -> Route:
    return Route(PROJECT_MCP_PATH, endpoint, methods=list(PROJECT_MCP_METHODS))


def dispatched(scope: Scope, app: ASGIApp, route: Route) -> bool:
    """Whether the request is the project endpoint's; if so its scope now has what `route` gives
    (`app`, `path_params`, `route`), and `route.endpoint` is to serve it."""
    if (
        scope["type"] == "http"
        and scope["method"] in PROJECT_MCP_METHODS
        and not scope.get("root_path")
        and (match := _PROJECT_MCP.match(scope["path"])) is not None
    ):
        scope["app"] = app
        scope["path_params"] = {"project": match.group(1)}
        scope["route"] = route
        return True
    return False


class Front:
    """`app` with the project endpoint of `route` dispatched ahead of it (`mcplocal serve`)."""

    def __init__(self, app: ASGIApp, route: Route):
        self.app, self.route = app, route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if dispatched(scope, self.app, self.route):
            await self.route.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)
