"""The WSGI adapter: an application object served by a WSGI server
(gunicorn, waitress, mod_wsgi, ...).

What it does:
- routes each request (:mod:`propylon.adapters._routes`) to a static mount,
  answered here (:mod:`propylon.adapters._static`, through the server's
  ``wsgi.file_wrapper`` when it has one), or to the WSGI endpoint, called as is;
- runs ``startup(server)`` once, before the first request is served, under a
  lock (the first requests of several threads wait for it). Not when the
  adapter is built: ``gunicorn --preload`` builds it in the master process,
  before the workers fork, and a pre-fork ``startup`` would open its database
  connections and threads in the wrong process. A ``startup`` that raises is
  logged with its traceback and every request is answered ``500``;
- runs ``shutdown()`` when the process exits (:mod:`atexit`), after a
  successful ``startup`` only. ``async def`` hooks run with :func:`asyncio.run`.

A WSGI server has no WebSocket or stream: a WebSocket handshake is answered
``404``; ``server.protocols`` is ``{"wsgi"}``. ``__preload__`` is not announced
(WSGI has no way to send ``103 Early Hints``).
"""

from __future__ import annotations

import atexit
import http
import logging
import os
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

from propylon.adapters._hooks import Lifecycle, call_sync, describe
from propylon.adapters._routes import RouteTable, is_websocket_handshake
from propylon.adapters._server import read_app_config, server_info
from propylon.adapters._static import StaticAnswer, answer, plain_text
from propylon.application import ServerInfo
from propylon.declarations import read_application

__all__ = ["WSGIAdapter"]

PROTOCOLS = frozenset({"wsgi"})
FEATURES = frozenset({"static"})
#: Bytes per block of a static file.
CHUNK = 64 * 1024

log = logging.getLogger("propylon.adapters")

StartResponse = Callable[..., Callable[[bytes], object]]


class WSGIAdapter:
    """A WSGI application serving ``app`` (see :func:`propylon.adapters.wsgi`)."""

    def __init__(self, app: object, environ: Mapping[str, str] = os.environ) -> None:
        self.declarations = read_application(app, PROTOCOLS)
        self.config = read_app_config(self.declarations.config, environ)
        self.routes = RouteTable(self.declarations.plan)
        self.wsgi = self.declarations.plan.wsgi
        self.lifecycle = Lifecycle.NEW
        self.failure = ""
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.lifecycle is not Lifecycle.RUNNING and not self._start_once(environ):
            return _send(environ, start_response, plain_text(500, f"Internal Server Error: {self.failure}\n"))
        path = environ.get("PATH_INFO", "")
        websocket = is_websocket_handshake(environ.get("HTTP_UPGRADE", ""))
        route = self.routes.route(path, websocket=websocket)
        if route is None:
            return _send(environ, start_response, plain_text(404, "Not Found\n"))
        if route.mount is not None:
            relative = _request_bytes(path[len(route.prefix) :])
            target = _request_bytes(environ.get("SCRIPT_NAME", "") + path)
            query = environ.get("QUERY_STRING", "")
            location = urllib.parse.quote(target) + ("?" + query if query else "")
            headers = {
                key[5:].lower().replace("_", "-"): value for key, value in environ.items() if key.startswith("HTTP_")
            }
            static = answer(route.mount, environ.get("REQUEST_METHOD", "GET"), relative, location, headers)
            return _send(environ, start_response, static)
        assert self.wsgi is not None and route.kind == "wsgi"
        result: Iterable[bytes] = self.wsgi(environ, start_response)
        return result

    def server(self, environ: Mapping[str, Any]) -> ServerInfo:
        return server_info("wsgi", environ.get("SERVER_SOFTWARE"), PROTOCOLS, FEATURES, self.config)

    def _start_once(self, environ: Mapping[str, Any]) -> bool:
        """Run ``startup`` unless it has run; whether the adapter is running."""
        with self._lock:
            if self.lifecycle is not Lifecycle.NEW:
                return self.lifecycle is Lifecycle.RUNNING
            try:
                if self.declarations.startup is not None:
                    call_sync(self.declarations.startup, self.server(environ))
            except Exception as exc:
                self.failure = f"startup raised {describe(exc)}"
                self.lifecycle = Lifecycle.FAILED
                log.error("application %s", self.failure, exc_info=exc)
                return False
            self.lifecycle = Lifecycle.RUNNING
            atexit.register(self._stop)
            return True

    def _stop(self) -> None:
        with self._lock:
            if self.lifecycle is not Lifecycle.RUNNING:
                return
            self.lifecycle = Lifecycle.STOPPED
        if self.declarations.shutdown is not None:
            try:
                call_sync(self.declarations.shutdown)
            except Exception as exc:
                log.error("application shutdown raised %s", describe(exc), exc_info=exc)


class FileRange:
    """``length`` bytes of an open file from its current position, closed by the server."""

    def __init__(self, file: IO[bytes], length: int) -> None:
        self.file = file
        self.left = length

    def __iter__(self) -> Iterator[bytes]:
        while self.left > 0:
            chunk = self.file.read(min(CHUNK, self.left))
            if not chunk:
                return
            self.left -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.file.close()


def _request_bytes(text: str) -> bytes:
    """A native string of the environ as the request's bytes (PEP 3333 "Unicode
    Issues": ISO-8859-1); UTF-8 for a server that put decoded text there."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def _send(environ: Mapping[str, Any], start_response: StartResponse, static: StaticAnswer) -> Iterable[bytes]:
    status = f"{static.status} {http.HTTPStatus(static.status).phrase}"
    if static.file is None:
        start_response(status, static.headers)
        return [static.body]
    file = open(static.file, "rb")  # noqa: SIM115 - closed by the server through close()
    start_response(status, static.headers)
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None and static.offset == 0 and static.length == os.fstat(file.fileno()).st_size:
        wrapped: Iterable[bytes] = wrapper(file, CHUNK)
        return wrapped
    file.seek(static.offset)
    return FileRange(file, static.length)
