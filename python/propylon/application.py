"""The application object's public types: :class:`Application`, :class:`Static`
and :class:`ServerInfo`.

An application object tells the server what it is (``docs/spec/application.md``):
any object with ``__endpoint__(protocol)``, and optionally ``__routes__``,
``__static__``, ``__preload__``, ``__config__``, ``startup(server)`` and
``shutdown()``. :class:`Application` builds one from keywords, so most
applications never write those attributes themselves::

    import propylon
    from myapp import flask_app

    app = propylon.Application(
        wsgi=flask_app,
        static={"/static": propylon.Static("static", cache_control="public, max-age=3600")},
        preload=["/static/app.css"],
        config={"database_url": str, "debug": False},
    )

and ``propylon myapp:app`` serves it. :class:`ServerInfo` is the ``server``
object passed to ``startup``: what this server and this deployment provide.

This module holds no server logic: reading an application object into what
the server serves is :mod:`propylon.declarations`; running the hooks is
:mod:`propylon.lifecycle`.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["Application", "PrefixDispatch", "ServerInfo", "Static"]

#: A WSGI application (PEP 3333): ``app(environ, start_response) -> iterable of bytes``.
WSGIApp = Callable[..., Iterable[bytes]]
#: A ``startup`` hook: called with the :class:`ServerInfo`; a plain function
#: returns None, an ``async def`` a coroutine, which the server awaits on the
#: worker's event loop.
StartupHook = Callable[["ServerInfo"], Awaitable[None] | None]
#: A ``shutdown`` hook: as :data:`StartupHook`, without arguments.
ShutdownHook = Callable[[], Awaitable[None] | None]
#: A configuration declaration's value: a default (its type is the key's type)
#: or one of the types ``bool``, ``int``, ``float``, ``str`` (required, of that type).
ConfigDeclaration = bool | int | float | str | type


@dataclass(frozen=True)
class Static:
    """A static mount: a directory the server serves itself, under the URL
    prefix it is mounted at (``Application(static={"/static": Static(...)})``).

    - ``directory``: the files' root, absolute or relative to the working
      directory the server starts in (``Path(__file__).parent / "static"``
      names one beside your module);
    - ``cache_control``: the ``Cache-Control`` of every response, e.g.
      ``"public, max-age=31536000, immutable"`` for hashed file names; None:
      no such field;
    - ``index``: the file served for a directory's URL (``/docs/`` ->
      ``/docs/index.html``); None: directories are not served;
    - ``precompressed``: serve ``app.css.br``, ``.gz`` or ``.zst`` beside
      ``app.css`` to clients that accept that encoding;
    - ``follow_symlinks``: serve symbolic links that lead outside ``directory``;
    - ``dotfiles``: serve names starting with ``.`` (hidden by default).

    >>> Static("static", cache_control="no-cache")
    Static(directory='static', cache_control='no-cache', index='index.html', precompressed=True, \
follow_symlinks=False, dotfiles=False)
    """

    directory: str | os.PathLike[str]
    cache_control: str | None = None
    index: str | None = "index.html"
    precompressed: bool = True
    follow_symlinks: bool = False
    dotfiles: bool = False


@dataclass(frozen=True)
class ServerInfo:
    """What the application runs on: the ``server`` object given to ``startup``.

    - ``name``, ``version``: the server's (``"propylon"``, ``"0.1.0"``);
    - ``protocols``: the ``__endpoint__`` protocols this server serves
      (``{"wsgi"}``); an endpoint of another protocol is never asked for;
    - ``features``: the optional features this server *and this deployment*
      provide, among ``"static"``, ``"early_hints"``, ``"push"``,
      ``"trailers"``, ``"websocket_over_h2"``, ``"tls"``, ``"http2"``;
    - ``worker``, ``workers``: this worker's index (from 0) and how many there are;
    - ``config``: the application's configuration (read-only; from the
      ``[app]`` table of the config file, ``PROPYLON_APP_*`` variables and
      ``--app-config``).

    >>> server = ServerInfo("propylon", "0.1.0", frozenset({"wsgi"}), frozenset({"http2"}), 0, 1,
    ...                     {"debug": True})
    >>> "websocket" in server.protocols, server.config["debug"]
    (False, True)
    """

    name: str
    version: str
    protocols: frozenset[str]
    features: frozenset[str]
    worker: int
    workers: int
    config: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read-only whatever mapping was passed: the application cannot change
        # what other workers and later readers see.
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))


class PrefixDispatch:
    """One endpoint serving several handlers, each under its URL prefix: the
    ``websocket`` and ``stream`` endpoints of an :class:`Application`.

    ``handler_for(path)`` is the handler of the longest prefix covering
    ``path`` (a prefix covers itself and what continues it after a ``/``).
    Calling the dispatcher with a connection object calls the handler for its
    ``path`` attribute with the same arguments. A server that needs to know
    what kind of handler it calls (``async def`` or not) asks ``handler_for``
    and calls the handler itself.

    >>> ws = PrefixDispatch({"/ws": "chat", "/ws/admin": "admin"})
    >>> ws.handler_for("/ws/admin/x"), ws.handler_for("/ws"), ws.handler_for("/wsx")
    ('admin', 'chat', None)
    """

    def __init__(self, handlers: Mapping[str, Any]) -> None:
        #: prefix -> handler, as given.
        self.handlers: Mapping[str, Any] = MappingProxyType(dict(handlers))
        normal = [(prefix.rstrip("/"), handler) for prefix, handler in handlers.items()]
        self._longest_first = sorted(normal, key=lambda row: len(row[0]), reverse=True)

    def handler_for(self, path: str) -> Any:
        """The handler of the longest prefix covering ``path``, or None."""
        for prefix, handler in self._longest_first:
            if not prefix or path == prefix or path.startswith(prefix + "/"):
                return handler
        return None

    def __call__(self, connection: Any, *args: Any) -> Any:
        handler = self.handler_for(connection.path)
        if handler is None:
            raise LookupError(f"no handler for {connection.path!r}")
        return handler(connection, *args)

    def __repr__(self) -> str:
        return f"PrefixDispatch({dict(self.handlers)!r})"


class Application:
    """An application object built from keywords.

    - ``wsgi``: a WSGI application (Flask, Django, any PEP 3333 callable),
      served on every path no other endpoint or mount claims;
    - ``websocket``, ``stream``: URL prefix -> handler, for the WebSocket and
      streaming HTTP endpoints (served by servers that have those protocols:
      see ``server.protocols``);
    - ``static``: URL prefix -> a directory or a :class:`Static` mount;
    - ``preload``: URL paths announced with ``103 Early Hints`` before HTML
      responses (``"/static/app.css"``; the ``as=`` comes from the
      extension), or complete ``Link`` values (``"</x>; rel=preload; as=fetch"``);
    - ``config``: the application's configuration keys, each with its default
      or its type when it has none (then it is required), e.g.
      ``{"debug": False, "workers_per_job": 4, "database_url": str}``; values
      given for other keys are refused. Without it, every key given reaches
      the application as given (text from the command line and environment);
    - ``on_startup(server)``, ``on_shutdown()``: plain functions or
      ``async def``; ``on_startup`` runs once per worker before it accepts
      connections and receives the :class:`ServerInfo`, ``on_shutdown`` after
      the last request in flight has ended.

    Every keyword is optional. Prefixes are checked when the server reads the
    object, not here.

    >>> def hello(environ, start_response):
    ...     start_response("200 OK", [("Content-Type", "text/plain")])
    ...     return [b"hello"]
    >>> app = Application(wsgi=hello, static={"/static": "static"})
    >>> app.__endpoint__("wsgi") is hello, app.__endpoint__("websocket")
    (True, None)
    >>> app.__static__
    mappingproxy({'/static': 'static'})
    """

    def __init__(
        self,
        wsgi: WSGIApp | None = None,
        websocket: Mapping[str, Any] | None = None,
        stream: Mapping[str, Callable[..., Any]] | None = None,
        static: Mapping[str, str | os.PathLike[str] | Static] | None = None,
        preload: Sequence[str] = (),
        config: Mapping[str, ConfigDeclaration] | None = None,
        on_startup: StartupHook | None = None,
        on_shutdown: ShutdownHook | None = None,
    ) -> None:
        if isinstance(preload, str):
            raise TypeError("preload is a list of URL paths or Link values, not one string")
        self._endpoints: dict[str, Callable[..., Any]] = {}
        routes: dict[str, tuple[str, ...]] = {}
        if wsgi is not None:
            self._endpoints["wsgi"] = wsgi
        for protocol, handlers in (("websocket", websocket), ("stream", stream)):
            if handlers:
                self._endpoints[protocol] = PrefixDispatch(handlers)
                routes[protocol] = tuple(handlers)
        self.__routes__: Mapping[str, Sequence[str]] = MappingProxyType(routes)
        self.__static__: Mapping[str, str | os.PathLike[str] | Static] = MappingProxyType(dict(static or {}))
        self.__preload__: Sequence[str] = tuple(preload)
        if config is not None:
            # Absent without ``config``: then every key given reaches the application.
            self.__config__: Mapping[str, ConfigDeclaration] = MappingProxyType(dict(config))
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown

    def __endpoint__(self, protocol: str) -> Callable[..., Any] | None:
        """The endpoint serving ``protocol`` (``"wsgi"``, ``"websocket"``,
        ``"stream"``), or None when this application has none."""
        return self._endpoints.get(protocol)

    def startup(self, server: ServerInfo) -> Awaitable[None] | None:
        """Run ``on_startup(server)``; an ``async`` hook's coroutine is returned
        for the server to await on its event loop."""
        if self._on_startup is None:
            return None
        return self._on_startup(server)

    def shutdown(self) -> Awaitable[None] | None:
        """Run ``on_shutdown()``, as :meth:`startup` runs ``on_startup``."""
        if self._on_shutdown is None:
            return None
        return self._on_shutdown()

    def __repr__(self) -> str:
        parts = [f"{name}={endpoint!r}" for name, endpoint in self._endpoints.items()]
        if self.__static__:
            parts.append(f"static={dict(self.__static__)!r}")
        return f"Application({', '.join(parts)})"
