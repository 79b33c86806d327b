"""One handler per resource kind: how a validated spec becomes rows, and rows become objects."""

from mcpctl.mcpd.kinds.base import KindContext, KindHandler
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

__all__ = ["HANDLERS", "KindContext", "KindHandler"]
