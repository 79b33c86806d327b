"""Every kind's handler, in the order the REST API lists them (mcpd/app.py makes a router of each).

Apart from the package's `__init__`, so that importing one kind module (`kinds.base` for audit and
the app state) does not import every handler and the API's schemas: they load while the supervised
servers start (cold start, docs/performance.md)."""

from mcpctl.mcpd.kinds.base import KindHandler
from mcpctl.mcpd.kinds.groups import GroupHandler
from mcpctl.mcpd.kinds.projects import ProjectHandler
from mcpctl.mcpd.kinds.proxymodels import ProxyModelHandler
from mcpctl.mcpd.kinds.rbac import RbacHandler
from mcpctl.mcpd.kinds.secrets import SecretHandler
from mcpctl.mcpd.kinds.servers import ServerHandler
from mcpctl.mcpd.kinds.users import UserHandler

HANDLERS: tuple[KindHandler, ...] = (  # type: ignore[type-arg]
    UserHandler(),
    GroupHandler(),
    RbacHandler(),
    ProjectHandler(),
    ServerHandler(),
    SecretHandler(),
    ProxyModelHandler(),
)
