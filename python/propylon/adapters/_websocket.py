"""WebSocket connections of the ASGI adapter: the API's connection object
(``docs/spec/websocket.md``) over an ASGI ``websocket`` scope.

- :class:`ASGIWebSocket` is the async variant, used on the server's event
  loop; it turns ``accept``/``reject``/``send``/``close`` into ASGI
  ``websocket.*`` messages and ASGI ``receive`` into messages, keeping the
  connection's :class:`~propylon.websocket.ConnectionState`;
- :class:`ThreadWebSocket` is the sync variant over it, for event and
  blocking handlers: each call runs the async method on the loop
  (:func:`asyncio.run_coroutine_threadsafe`) and waits for it in its thread;
- :func:`serve_connection` runs a handler of any style on one connection and
  ends the connection as the API says when it returns or raises.

Sends (and ``accept``, ``reject``, ``close``) go out one at a time per
connection, in the order they were called; receives too. The adapter keeps
no queue of its own: a send returns once the ASGI server's ``send`` has
returned, so "waits while the send queue is full" is whatever that server's
``send`` waits for. Frames, limits, pings and compression are the ASGI
server's. This module does not route (:mod:`propylon.adapters._asgi` does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from propylon.adapters._hooks import describe
from propylon.websocket import (
    ABNORMAL_CLOSE,
    INTERNAL_ERROR_CLOSE,
    NO_STATUS_CLOSE,
    NORMAL_CLOSE,
    ConnectionState,
    HandlerStyle,
    WebSocketClosed,
    check_close,
    check_reject_status,
    check_subprotocol,
    is_normal_close,
    outgoing_message,
)

__all__ = ["ASGIWebSocket", "ThreadWebSocket", "refuse_handshake", "serve_connection"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Coroutine[Any, Any, Message]]
Send = Callable[[Message], Coroutine[Any, Any, None]]
T = TypeVar("T")

#: Application errors, with tracebacks: the logger the compiled server uses too.
error_logger = logging.getLogger("propylon.error")
log = logging.getLogger("propylon.adapters")

#: The ASGI extension that lets an application answer a handshake with any HTTP response.
HTTP_RESPONSE_EXTENSION = "websocket.http.response"


def _header_pairs(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    pairs = []
    for name, value in headers:
        raw_name = name if isinstance(name, bytes) else str(name).encode("latin-1")
        raw_value = value if isinstance(value, bytes) else str(value).encode("latin-1")
        pairs.append((raw_name.lower(), raw_value))
    return pairs


def _tokens(value: str) -> list[str]:
    return [token.strip() for token in value.split(",") if token.strip()]


async def refuse_handshake(
    scope: Scope, send: Send, status: int, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
) -> None:
    """Answer a handshake with ``status`` and ``body`` where the server offers
    the ``websocket.http.response`` extension; else close before accepting,
    which the server answers with ``403 Forbidden``."""
    if HTTP_RESPONSE_EXTENSION in scope.get("extensions", {}):
        fields = _header_pairs(headers)
        names = {name for name, _ in fields}
        if b"content-type" not in names and body:
            fields.append((b"content-type", b"text/plain; charset=utf-8"))
        if b"content-length" not in names:
            fields.append((b"content-length", str(len(body)).encode()))
        await send({"type": "websocket.http.response.start", "status": status, "headers": fields})
        await send({"type": "websocket.http.response.body", "body": bytes(body), "more_body": False})
    else:
        await send({"type": "websocket.close", "code": NORMAL_CLOSE})


class ASGIWebSocket:
    """The async connection object of one ASGI ``websocket`` scope, after its
    ``websocket.connect`` message; ``path`` is the path under the
    application's root."""

    def __init__(self, scope: Scope, path: str, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.path = path
        self.query_string: bytes = scope.get("query_string", b"")
        self.headers = [
            (name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in scope.get("headers", [])
        ]
        self.subprotocols: list[str] = list(scope.get("subprotocols") or [])
        self.extensions = [
            token.split(";", 1)[0].strip()
            for name, value in self.headers
            if name == "sec-websocket-extensions"
            for token in _tokens(value)
        ]
        client = scope.get("client")
        self.client: tuple[str, int] | None = (str(client[0]), int(client[1])) if client else None
        self.scheme: str = scope.get("scheme", "ws")
        self.http_version: str = scope.get("http_version", "1.1")
        self._subprotocol: str | None = None
        self._receive = receive
        self._send = send
        self.state = ConnectionState.CONNECTING
        #: The close that ended the connection: (code, reason), set once.
        self.closed_with: tuple[int, str] | None = None
        self._sending = asyncio.Lock()
        self._receiving = asyncio.Lock()

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol accepted; None before ``accept`` or when none was."""
        return self._subprotocol

    def __repr__(self) -> str:
        return f"<WebSocket {self.path!r} {self.state.value}>"

    # -- the handshake -------------------------------------------------------

    async def accept(self, subprotocol: str | None = None, headers: Iterable[tuple[str, str]] = ()) -> None:
        check_subprotocol(subprotocol, self.subprotocols)
        fields = _header_pairs(headers)
        async with self._sending:
            if self.state is not ConnectionState.CONNECTING:
                raise RuntimeError(f"accept() on a WebSocket that is already {self.state.value}")
            await self._accept(subprotocol, fields)

    async def _accept(self, subprotocol: str | None, fields: list[tuple[bytes, bytes]]) -> None:
        """Accept; called with the send lock held, while CONNECTING."""
        message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
        if fields:
            message["headers"] = fields
        await self._send(message)
        self.state = ConnectionState.OPEN
        self._subprotocol = subprotocol

    async def reject(self, status: int = 403, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> None:
        check_reject_status(status)
        async with self._sending:
            if self.state is not ConnectionState.CONNECTING:
                raise RuntimeError(f"reject() on a WebSocket that is already {self.state.value}")
            self.state = ConnectionState.REJECTED
            self.closed_with = (ABNORMAL_CLOSE, "")
            await refuse_handshake(self.scope, self._send, status, headers, bytes(body))

    async def _accept_implicitly(self) -> None:
        """``receive``, ``send``, iteration and ``close`` accept a connection
        the handler has neither accepted nor rejected."""
        if self.state is ConnectionState.CONNECTING:
            async with self._sending:
                if self.state is ConnectionState.CONNECTING:
                    await self._accept(None, [])

    # -- messages ------------------------------------------------------------

    def _closed_error(self) -> WebSocketClosed:
        code, reason = self.closed_with or (ABNORMAL_CLOSE, "")
        return WebSocketClosed(code, reason)

    def _mark_closed(self, code: int, reason: str) -> None:
        if self.closed_with is None:
            self.closed_with = (code, reason)
        if self.state is not ConnectionState.REJECTED:
            self.state = ConnectionState.CLOSED

    async def receive(self) -> str | bytes:
        await self._accept_implicitly()
        async with self._receiving:
            if self.state is not ConnectionState.OPEN:
                raise self._closed_error()
            message = await self._receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                if text is not None:
                    return str(text)
                return bytes(message.get("bytes") or b"")
            if kind == "websocket.disconnect":
                self._mark_closed(int(message.get("code", NO_STATUS_CLOSE)), str(message.get("reason") or ""))
                raise self._closed_error()
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a WebSocket")

    async def send(self, data: str | bytes | bytearray | memoryview) -> None:
        payload = outgoing_message(data)
        await self._accept_implicitly()
        async with self._sending:
            if self.state is not ConnectionState.OPEN:
                raise self._closed_error()
            message: Message = (
                {"type": "websocket.send", "text": payload}
                if isinstance(payload, str)
                else {"type": "websocket.send", "bytes": payload}
            )
            try:
                await self._send(message)
            except OSError as exc:  # uvicorn: ClientDisconnected, the peer is gone
                self._mark_closed(ABNORMAL_CLOSE, "")
                raise self._closed_error() from exc

    async def close(self, code: int = NORMAL_CLOSE, reason: str = "") -> None:
        check_close(code, reason)
        await self._close(code, reason)

    async def _close(self, code: int, reason: str) -> None:
        """Send a close frame, with any code (1011 for a handler that raised)."""
        await self._accept_implicitly()
        async with self._sending:
            if self.state is not ConnectionState.OPEN:
                return
            self._mark_closed(code, reason)
            try:
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
            except OSError:
                pass  # the peer is gone already: nothing to close

    def __aiter__(self) -> ASGIWebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except WebSocketClosed as closed:
            if is_normal_close(closed.code):
                raise StopAsyncIteration from None
            raise

    # -- the end of the handler ----------------------------------------------

    async def finish(self, error: BaseException | None) -> None:
        """End the connection after its handler: returned before accepting ->
        403, raised before accepting -> 500; after accepting, close with 1000
        or 1011 (nothing when it is closed already)."""
        async with self._sending:
            if self.state is ConnectionState.CONNECTING:
                self.state = ConnectionState.REJECTED
                self.closed_with = (ABNORMAL_CLOSE, "")
                if error is None:
                    await refuse_handshake(self.scope, self._send, 403, body=b"Forbidden\n")
                else:
                    await refuse_handshake(self.scope, self._send, 500, body=b"Internal Server Error\n")
                return
        await self._close(NORMAL_CLOSE if error is None else INTERNAL_ERROR_CLOSE, "")


class ThreadWebSocket:
    """The sync connection object over an :class:`ASGIWebSocket`: the same
    names, its methods callable from any thread but the event loop's own
    (where waiting for the loop could never end)."""

    def __init__(self, connection: ASGIWebSocket, loop: asyncio.AbstractEventLoop) -> None:
        self._connection = connection
        self._loop = loop
        self.path = connection.path
        self.query_string = connection.query_string
        self.headers = connection.headers
        self.subprotocols = connection.subprotocols
        self.extensions = connection.extensions
        self.client = connection.client
        self.scheme = connection.scheme
        self.http_version = connection.http_version

    @property
    def subprotocol(self) -> str | None:
        return self._connection.subprotocol

    def __repr__(self) -> str:
        return repr(self._connection)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            coroutine.close()
            raise RuntimeError(
                "a sync WebSocket method was called on the event loop's thread; "
                "an async handler uses its own (async) connection object"
            )
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def accept(self, subprotocol: str | None = None, headers: Iterable[tuple[str, str]] = ()) -> None:
        self._run(self._connection.accept(subprotocol, list(headers)))

    def reject(self, status: int = 403, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> None:
        self._run(self._connection.reject(status, list(headers), body))

    def receive(self) -> str | bytes:
        return self._run(self._connection.receive())

    def send(self, data: str | bytes | bytearray | memoryview) -> None:
        # Checked (and a memoryview copied) here, in the caller's thread.
        self._run(self._connection.send(outgoing_message(data)))

    def close(self, code: int = NORMAL_CLOSE, reason: str = "") -> None:
        check_close(code, reason)
        self._run(self._connection.close(code, reason))

    def __iter__(self) -> Iterator[str | bytes]:
        return self

    def __next__(self) -> str | bytes:
        try:
            return self.receive()
        except WebSocketClosed as closed:
            if is_normal_close(closed.code):
                raise StopIteration from None
            raise


async def serve_connection(
    style: HandlerStyle,
    handler: Any,
    connection: ASGIWebSocket,
    events: ThreadPoolExecutor,
    blocking: ThreadPoolExecutor,
) -> None:
    """Run ``handler`` on ``connection`` in its style, then end the connection.

    A :class:`WebSocketClosed` the handler lets through, once the connection
    is closed, ends it as a return does; any other exception is logged to
    ``propylon.error`` and answered 500 (before accepting) or closed with 1011.
    """
    loop = asyncio.get_running_loop()
    if style is HandlerStyle.EVENT:
        await _serve_events(handler, connection, ThreadWebSocket(connection, loop), events)
        return
    error: Exception | None = None
    try:
        if style is HandlerStyle.ASYNC:
            await handler(connection)
        else:
            await loop.run_in_executor(blocking, handler, ThreadWebSocket(connection, loop))
    except Exception as exc:
        if not _ends_quietly(exc, connection):
            error = exc
            error_logger.error("WebSocket handler for %s raised %s", connection.path, describe(exc), exc_info=exc)
    await connection.finish(error)


def _ends_quietly(exc: Exception, connection: ASGIWebSocket) -> bool:
    """Whether ``exc`` ends the handler as a return does: a
    :class:`WebSocketClosed` let through once this connection is closed (one
    raised for another connection, this one still open, is an error)."""
    return isinstance(exc, WebSocketClosed) and connection.state in (ConnectionState.CLOSED, ConnectionState.REJECTED)


async def _serve_events(
    handler: Any, connection: ASGIWebSocket, ws: ThreadWebSocket, events: ThreadPoolExecutor
) -> None:
    """An event handler: ``on_connect``, ``on_message`` per message and
    ``on_close`` once, each a job in ``events``; one at a time, in order,
    because the next message is received only after the last event ended."""
    loop = asyncio.get_running_loop()
    on_connect = getattr(handler, "on_connect", None)
    on_close = getattr(handler, "on_close", None)
    if on_connect is not None:
        try:
            await loop.run_in_executor(events, on_connect, ws)
        except Exception as exc:
            if not _ends_quietly(exc, connection):
                error_logger.error("WebSocket handler for %s raised %s", connection.path, describe(exc), exc_info=exc)
                await connection.finish(exc)
    if connection.state is ConnectionState.REJECTED:
        return  # never opened: no on_close
    await connection._accept_implicitly()
    while connection.state is ConnectionState.OPEN:
        try:
            message = await connection.receive()
        except WebSocketClosed:
            break
        try:
            await loop.run_in_executor(events, handler.on_message, ws, message)
        except Exception as exc:
            if not _ends_quietly(exc, connection):
                error_logger.error("WebSocket handler for %s raised %s", connection.path, describe(exc), exc_info=exc)
                await connection.finish(exc)
            break
    if on_close is not None:
        code, reason = connection.closed_with or (ABNORMAL_CLOSE, "")
        try:
            await loop.run_in_executor(events, on_close, ws, code, reason)
        except Exception as exc:
            error_logger.error("WebSocket handler for %s raised %s", connection.path, describe(exc), exc_info=exc)
