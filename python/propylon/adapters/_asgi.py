"""The ASGI adapter: an application object served by an ASGI 3 server
(uvicorn, hypercorn, ...).

What it does, per ASGI scope:
- ``lifespan``: ``startup(server)`` on ``lifespan.startup`` (a failure is
  ``lifespan.startup.failed`` with one line, so the server refuses to start),
  ``shutdown()`` on ``lifespan.shutdown``. A server that sends no lifespan
  events gets ``startup`` before its first request instead, and no ``shutdown``.
- ``http``: routed (:mod:`propylon.adapters._routes`) to a static mount,
  answered here (:mod:`propylon.adapters._static`), or to the WSGI endpoint,
  run in the adapter's thread pool (:class:`WSGIExchange`).
- ``websocket``: routed like ``http`` to the WebSocket endpoint's handler
  for the prefix, run in its style (:mod:`propylon.adapters._websocket`):
  ``async def`` on the server's loop, an event handler's events in the thread
  pool, a blocking handler on one of ``websocket_threads`` threads. A
  handshake no WebSocket prefix covers is refused with ``404``, one beyond
  the blocking handlers' cap with ``503``: as an HTTP response where the
  server offers the ``websocket.http.response`` extension, else by a close
  before accepting (which the server answers with ``403``).

``__preload__`` is announced with ``http.response.early_hint`` (a ``103 Early
Hints`` response) before the WSGI endpoint runs, where the server offers that
extension for the request (HTTP/2 on hypercorn and uvicorn) and the request is
a page load. It does not serve streams.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import urllib.parse
from collections.abc import Callable, Coroutine, Iterable, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from propylon.adapters._hooks import Lifecycle, call_async, describe
from propylon.adapters._routes import RouteTable, is_websocket_handshake
from propylon.adapters._server import read_app_config, server_info
from propylon.adapters._static import StaticAnswer, answer, plain_text
from propylon.adapters._websocket import ASGIWebSocket, refuse_handshake, serve_connection
from propylon.application import ServerInfo
from propylon.declarations import read_application
from propylon.errors import ClientDisconnected
from propylon.websocket import HandlerStyle, ResolvedHandler

__all__ = ["ASGIAdapter"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Coroutine[Any, Any, Message]]
Send = Callable[[Message], Coroutine[Any, Any, None]]

PROTOCOLS = frozenset({"wsgi", "websocket"})
FEATURES = frozenset({"static"})
#: Bytes of a static file per ``http.response.body`` message.
CHUNK = 64 * 1024
#: Threads running the WSGI endpoint, as Propylon's own ``--threads`` default.
DEFAULT_THREADS = 8
#: Blocking WebSocket handlers at once, as Propylon's own ``--websocket-threads`` default.
DEFAULT_WEBSOCKET_THREADS = 32

log = logging.getLogger("propylon.adapters")


class ASGIAdapter:
    """An ASGI 3 application serving ``app`` (see :func:`propylon.adapters.asgi`)."""

    def __init__(
        self,
        app: object,
        threads: int = DEFAULT_THREADS,
        environ: Mapping[str, str] = os.environ,
        websocket_threads: int = DEFAULT_WEBSOCKET_THREADS,
    ) -> None:
        if threads < 1 or websocket_threads < 1:
            raise ValueError("propylon.adapters.asgi: threads and websocket_threads must be at least 1")
        self.declarations = read_application(app, PROTOCOLS)
        self.config = read_app_config(self.declarations.config, environ)
        plan = self.declarations.plan
        self.routes = RouteTable(plan)
        self.wsgi = plan.wsgi
        #: The handler of each WebSocket prefix, resolved by read_application.
        self.websocket: Mapping[str, ResolvedHandler] = {
            route.prefix: ResolvedHandler(route.prefix, route.handler, HandlerStyle(route.style))
            for route in plan.websocket
        }
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="propylon-wsgi")
        #: The blocking WebSocket handlers' threads; handshakes beyond them are refused 503.
        self.websocket_threads = websocket_threads
        self.blocking = ThreadPoolExecutor(websocket_threads, thread_name_prefix="propylon-websocket")
        self.blocking_running = 0
        self.lifecycle = Lifecycle.NEW
        self.failure = ""
        self._starting: asyncio.Lock | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind not in ("http", "websocket"):
            raise ValueError(f"propylon.adapters.asgi: unknown ASGI scope type {kind!r}")
        if self.lifecycle is Lifecycle.NEW:
            await self._start_once(scope)
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif self.lifecycle is not Lifecycle.RUNNING:
            await _send_answer(send, plain_text(500, f"Internal Server Error: {self.failure}\n"))
        else:
            await self._http(scope, receive, send)

    # -- lifecycle ---------------------------------------------------------------

    def server(self, scope: Scope) -> ServerInfo:
        """The ``server`` object for ``startup``, named with the ASGI version the
        server speaks (ASGI does not name the server itself)."""
        version = scope.get("asgi", {}).get("version", "3.0")
        return server_info("asgi", f"asgi/{version}", PROTOCOLS, FEATURES, self.config)

    async def _start(self, scope: Scope) -> None:
        """Run ``startup``; a failure leaves the adapter FAILED with one line in ``failure``."""
        try:
            if self.declarations.startup is not None:
                await call_async(self.declarations.startup, self.server(scope))
        except Exception as exc:
            self.failure = f"startup raised {describe(exc)}"
            self.lifecycle = Lifecycle.FAILED
            log.error("application %s", self.failure, exc_info=exc)
        else:
            self.lifecycle = Lifecycle.RUNNING

    async def _start_once(self, scope: Scope) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self.lifecycle is Lifecycle.NEW:
                await self._start(scope)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._start_once(scope)
                if self.lifecycle is Lifecycle.RUNNING:
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.startup.failed", "message": self.failure})
                    return
            elif message["type"] == "lifespan.shutdown":
                failure = await self._stop()
                if failure:
                    await send({"type": "lifespan.shutdown.failed", "message": failure})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    async def _stop(self) -> str:
        """Run ``shutdown`` (after a successful ``startup`` only); the failure, if any."""
        running = self.lifecycle is Lifecycle.RUNNING
        self.lifecycle = Lifecycle.STOPPED
        self.executor.shutdown(wait=False)
        self.blocking.shutdown(wait=False)
        if not running or self.declarations.shutdown is None:
            return ""
        try:
            await call_async(self.declarations.shutdown)
        except Exception as exc:
            log.error("application shutdown raised %s", describe(exc), exc_info=exc)
            return f"shutdown raised {describe(exc)}"
        return ""

    # -- HTTP --------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _app_path(scope)
        headers = _header_fields(scope["headers"])
        route = self.routes.route(path, websocket=is_websocket_handshake(headers.get("upgrade", "")))
        if route is None:
            await _send_answer(send, plain_text(404, "Not Found\n"))
        elif route.mount is not None:
            relative = path[len(route.prefix) :].encode("utf-8", "surrogateescape")
            query = scope.get("query_string", b"").decode("latin-1")
            raw_path = scope.get("raw_path")
            target = raw_path.decode("latin-1") if raw_path else urllib.parse.quote(scope["path"])
            location = target + ("?" + query if query else "")
            loop = asyncio.get_running_loop()
            static = await loop.run_in_executor(None, answer, route.mount, scope["method"], relative, location, headers)
            await _send_answer(send, static)
        elif route.kind == "wsgi" and self.wsgi is not None:
            if self.declarations.plan.preload and _wants_hints(scope, headers):
                links = [value.encode("latin-1") for value in self.declarations.plan.preload]
                await send({"type": "http.response.early_hint", "links": links})
            exchange = WSGIExchange(asyncio.get_running_loop(), scope, receive, send)
            await exchange.run(self.executor, self.wsgi, path)
        else:  # pragma: no cover - the table holds only static and WSGI routes
            await _send_answer(send, plain_text(404, "Not Found\n"))

    # -- WebSocket ---------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return  # the client went away before the handshake reached the application
        if self.lifecycle is not Lifecycle.RUNNING:
            body = f"Internal Server Error: {self.failure}\n".encode()
            await refuse_handshake(scope, send, 500, body=body)
            return
        path = _app_path(scope)
        route = self.routes.route(path, websocket=True)
        resolved = self.websocket.get(route.prefix) if route is not None else None
        if resolved is None:
            await refuse_handshake(scope, send, 404, body=b"Not Found: no WebSocket endpoint here\n")
            return
        connection = ASGIWebSocket(scope, path, receive, send)
        if resolved.style is not HandlerStyle.BLOCKING:
            await serve_connection(resolved.style, resolved.handler, connection, self.executor, self.blocking)
            return
        if self.blocking_running >= self.websocket_threads:
            log.warning("WebSocket %s refused: all %d websocket threads are busy", path, self.websocket_threads)
            await refuse_handshake(scope, send, 503, body=b"Service Unavailable: all WebSocket threads are busy\n")
            return
        self.blocking_running += 1
        try:
            await serve_connection(resolved.style, resolved.handler, connection, self.executor, self.blocking)
        finally:
            self.blocking_running -= 1


class RequestMessages:
    """The ASGI ``receive`` channel of one request, read by a task of its own
    at most ``AHEAD`` messages ahead of the application: so the body is never
    read whole into memory, and a disconnect is seen while the response is
    being sent, even when the application does not read the body (PEP 3333
    lets a server stop iterating an application whose client has gone).
    """

    #: Messages read ahead: the last ``http.request`` of a body the
    #: application does not read, and one more.
    AHEAD = 2

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.queue: asyncio.Queue[Message] = asyncio.Queue(self.AHEAD)
        self.disconnected = threading.Event()
        self.task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected.set()
                try:
                    self.queue.put_nowait(message)  # wakes a read waiting for the body
                except asyncio.QueueFull:
                    pass
                return
            await self.queue.put(message)


class RequestBody:
    """``wsgi.input`` fed from :class:`RequestMessages` as the application
    reads: each read takes what it needs, one ``http.request`` message at a
    time. It ends (``b""``) after the last message (``wsgi.input_terminated``);
    a disconnect before then raises :class:`~propylon.ClientDisconnected` (WSGI
    1.1: an incomplete body is an error, never an early end)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, messages: RequestMessages) -> None:
        self._loop = loop
        self._messages = messages
        self._buffer = bytearray()
        self._more = True

    def _fill(self) -> None:
        queue = self._messages.queue
        if queue.empty() and self._messages.disconnected.is_set():
            message: Message = {"type": "http.disconnect"}
        else:
            message = asyncio.run_coroutine_threadsafe(queue.get(), self._loop).result()
        if message["type"] == "http.disconnect":
            self._more = False
            raise ClientDisconnected("the client disconnected before the request body was complete")
        self._buffer += message.get("body", b"")
        self._more = bool(message.get("more_body", False))

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def read(self, size: int | None = -1) -> bytes:
        while self._more and (size is None or size < 0 or len(self._buffer) < size):
            self._fill()
        return self._take(len(self._buffer) if size is None or size < 0 else size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        while self._more and b"\n" not in self._buffer and (limit < 0 or len(self._buffer) < limit):
            self._fill()
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        return self._take(end if limit < 0 else min(end, limit))

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines, total = [], 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> RequestBody:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class WSGIExchange:
    """One request to the WSGI endpoint, bridged from ASGI (PEP 3333).

    The application runs in a pool thread; its reads and writes go to the
    event loop with :func:`asyncio.run_coroutine_threadsafe`, each waiting for
    the loop, so a slow client slows the application down instead of filling
    memory. The status and headers go out with the first non-empty body chunk
    (PEP 3333, "Buffering and Streaming"), or at the end for an empty body.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, scope: Scope, receive: Receive, send: Send) -> None:
        self.loop = loop
        self.scope = scope
        self.receive = receive
        self._send = send
        self.status: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self.headers_sent = False
        self.messages: RequestMessages | None = None

    async def run(self, executor: ThreadPoolExecutor, wsgi: Callable[..., Any], path: str) -> None:
        self.messages = RequestMessages(self.receive)
        environ = self.environ(path, self.messages)
        try:
            await self.loop.run_in_executor(executor, self._call, wsgi, environ)
        except Exception as exc:
            if self.messages.disconnected.is_set():
                log.debug("the client went away before the response was sent")
                return
            if self.headers_sent:
                raise  # the response is cut short: the server closes the connection
            log.error("the WSGI application raised %s", describe(exc), exc_info=exc)
            await _send_answer(self._send, plain_text(500, "Internal Server Error\n"))
        finally:
            self.messages.task.cancel()

    def environ(self, path: str, messages: RequestMessages) -> dict[str, Any]:
        """The WSGI environ (PEP 3333 "environ Variables"): native strings are
        the request's bytes decoded as ISO-8859-1 ("Unicode Issues")."""
        scope = self.scope
        server = scope.get("server") or ("localhost", 80)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope["method"],
            "SCRIPT_NAME": _native(scope.get("root_path", "")),
            "PATH_INFO": _native(path),
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": str(server[1]) if server[1] is not None else "",
            "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.input": RequestBody(self.loop, messages),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,  # the ASGI server may run several processes; the adapter cannot know
            "wsgi.run_once": False,
        }
        client = scope.get("client")
        if client:
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(client[0]), str(client[1])
        for name, value in scope["headers"]:
            key = name.decode("latin-1").upper()
            if "_" in key:
                # HTTP_X_A_B could come from "X-A_B" or "X_A-B": such fields are
                # dropped, as nginx and Apache do, so none can pass for another.
                continue
            key = key.replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            text = value.decode("latin-1")
            if key in environ:
                text = environ[key] + ("; " if key == "HTTP_COOKIE" else ", ") + text
            environ[key] = text
        return environ

    # -- in the pool thread ------------------------------------------------------

    def send(self, message: Message) -> None:
        asyncio.run_coroutine_threadsafe(self._send(message), self.loop).result()

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        """PEP 3333 "The start_response() Callable": a second call needs
        ``exc_info``, and raises it again once the headers have gone out."""
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info (PEP 3333)")
        code = status.split(" ", 1)[0] if isinstance(status, str) else ""
        if not (len(code) == 3 and code.isdigit()):
            raise AssertionError(f"bad WSGI status {status!r}: expected '200 OK'")
        fields = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        self.status = (int(code), fields)
        return self.write

    def write(self, data: bytes) -> None:
        if self.status is None:
            raise AssertionError("write() before start_response (PEP 3333)")
        if data:
            self._body(data, more=True)

    def _body(self, data: bytes, more: bool) -> None:
        if self.messages is not None and self.messages.disconnected.is_set():
            raise ClientDisconnected("the client went away before the response was complete")
        if not self.headers_sent:
            if self.status is None:
                raise AssertionError("the WSGI application returned without calling start_response")
            code, fields = self.status
            self.send({"type": "http.response.start", "status": code, "headers": fields})
            self.headers_sent = True
        self.send({"type": "http.response.body", "body": bytes(data), "more_body": more})

    def _call(self, wsgi: Callable[..., Any], environ: dict[str, Any]) -> None:
        result: Iterable[bytes] = wsgi(environ, self.start_response)
        try:
            for chunk in result:
                if chunk:
                    self._body(chunk, more=True)
            self._body(b"", more=False)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


# -- helpers --------------------------------------------------------------------


def _app_path(scope: Scope) -> str:
    """The path under the application's root (ASGI's ``path`` includes ``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :]
    return path


def _native(text: str) -> str:
    """A path as PEP 3333 wants it: its UTF-8 bytes as an ISO-8859-1 string."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _header_fields(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header fields by lower-case name, repeated ones joined with ``,`` (RFC 9110 §5.3)."""
    fields: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        fields[key] = f"{fields[key]}, {text}" if key in fields else text
    return fields


async def _send_answer(send: Send, static: StaticAnswer) -> None:
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in static.headers]
    await send({"type": "http.response.start", "status": static.status, "headers": headers})
    if static.file is None:
        await send({"type": "http.response.body", "body": static.body, "more_body": False})
        return
    loop = asyncio.get_running_loop()
    file = await loop.run_in_executor(None, open, static.file, "rb")
    try:
        await loop.run_in_executor(None, file.seek, static.offset)
        left = static.length
        while left > 0:
            chunk = await loop.run_in_executor(None, file.read, min(CHUNK, left))
            if not chunk:
                raise OSError(f"{static.file} became shorter while it was being sent")
            left -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
    finally:
        file.close()


def _wants_hints(scope: Scope, headers: Mapping[str, str]) -> bool:
    """Whether to announce ``__preload__`` before this request's response: the
    server offers ``http.response.early_hint`` for it (hypercorn and uvicorn
    do on HTTP/2), and it is a page load (``GET`` accepting ``text/html``), the
    request whose answer names the assets the hints are about (RFC 8297 §2)."""
    return (
        "http.response.early_hint" in scope.get("extensions", {})
        and scope["method"] == "GET"
        and "text/html" in headers.get("accept", "")
    )
