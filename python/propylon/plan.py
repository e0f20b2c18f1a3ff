"""What the server is asked to serve: the :class:`ServePlan` handed to the Rust server.

An application object (``docs/spec/application.md``) is read once, by
:mod:`propylon.declarations`, into a plan: the WSGI callable, the URL prefixes
of each endpoint, the static mounts and the links to announce. The compiled
server reads only the plan, by attribute name (``src/py/serve.rs``); it never
looks at the application object itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ServePlan", "StaticMount", "WebSocketRoute"]


@dataclass(frozen=True)
class StaticMount:
    """A directory served under a URL prefix, checked and normalized.

    ``prefix`` is ``""`` (every path) or starts with ``/`` and has no trailing
    ``/``; ``directory`` is an absolute path to an existing directory.
    """

    prefix: str
    directory: str
    cache_control: str | None = None
    index: str | None = "index.html"
    precompressed: bool = True
    follow_symlinks: bool = False
    dotfiles: bool = False


@dataclass(frozen=True)
class WebSocketRoute:
    """The WebSocket handler serving handshakes under ``prefix`` (normalized
    as :class:`StaticMount`'s), and its style: ``"async"``, ``"event"`` or
    ``"blocking"`` (:func:`propylon.websocket.handler_style`)."""

    prefix: str
    handler: Any
    style: str


@dataclass(frozen=True)
class ServePlan:
    """Everything the server serves for one application.

    ``routes`` lists ``(protocol, prefix)`` for the endpoints the application
    has (``"wsgi"`` today), prefixes normalized as :class:`StaticMount`'s;
    ``preload`` holds complete ``Link`` field values (``</app.css>;
    rel=preload; as=style``); ``websocket`` the WebSocket handler of each
    declared prefix.
    """

    wsgi: Callable[..., Any] | None
    routes: tuple[tuple[str, str], ...]
    static: tuple[StaticMount, ...] = ()
    preload: tuple[str, ...] = ()
    websocket: tuple[WebSocketRoute, ...] = ()

    @classmethod
    def for_wsgi(cls, app: object) -> ServePlan:
        """A plain WSGI application (any callable) serving every path."""
        if not callable(app):
            raise TypeError(f"a WSGI application is callable, not {type(app).__name__}")
        return cls(wsgi=app, routes=(("wsgi", ""),))
