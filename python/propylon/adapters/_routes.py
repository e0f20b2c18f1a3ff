"""Which endpoint serves a request, for the adapters: the rules of
``src/proto/route.rs`` (the application object's specification, "Routing").

- a prefix covers the paths equal to it or continuing it with ``/``; ``""``
  covers every path;
- the longest covering prefix wins; between equal prefixes the order is
  static, WebSocket, stream, WSGI;
- a WebSocket handshake is served only by a WebSocket endpoint; every other
  request by a static, stream or WSGI one; with none, no route (404).

The table holds only what an adapter serves (static mounts and the endpoints
of the protocols it asked for), so a prefix declared for a protocol the
adapter does not serve routes nothing. It does not look at methods or bodies.
"""

from __future__ import annotations

from dataclasses import dataclass

from propylon.plan import ServePlan, StaticMount

__all__ = ["Route", "RouteTable", "is_websocket_handshake"]

#: The kinds of endpoint, in the order that decides between equal prefixes.
KINDS = ("static", "websocket", "stream", "wsgi")


@dataclass(frozen=True)
class Route:
    """An endpoint and the prefix it is declared on; ``mount`` for a static one."""

    kind: str
    prefix: str
    mount: StaticMount | None = None


class RouteTable:
    """The routes of one application, longest prefix first."""

    def __init__(self, plan: ServePlan) -> None:
        routes = [Route("static", mount.prefix, mount) for mount in plan.static]
        routes += [Route(protocol, prefix) for protocol, prefix in plan.routes]
        routes += [Route("websocket", route.prefix) for route in plan.websocket]
        self.routes = sorted(routes, key=lambda route: (-len(route.prefix), KINDS.index(route.kind)))

    def route(self, path: str, websocket: bool) -> Route | None:
        """The route serving ``path`` (the path under the application's root),
        or ``None``: nothing declared covers it."""
        for route in self.routes:
            if (route.kind == "websocket") != websocket:
                continue
            prefix = route.prefix
            if not prefix or path == prefix or path.startswith(prefix + "/"):
                return route
        return None


def is_websocket_handshake(upgrade: str) -> bool:
    """Whether an ``Upgrade`` field lists ``websocket`` (RFC 6455 §4.2.1; tokens
    compared without regard to case, RFC 9110 §7.8)."""
    return any(token.strip().lower() == "websocket" for token in upgrade.split(","))
