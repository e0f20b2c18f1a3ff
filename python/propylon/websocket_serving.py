"""How the compiled server runs WebSocket handlers (``docs/spec/websocket.md``).

The compiled bridge (``src/py/websocket``) makes a
``propylon._core.WebSocketConnection`` for each handshake (the sync variant of
the connection object: its waits happen in Rust without the GIL) and calls one
of these, by the handler's style (:func:`propylon.websocket.handler_style`):

- :func:`start_async` on the worker's event loop: :func:`run_async` runs
  ``await handler(ws)`` as a task, ``ws`` an :class:`AsyncWebSocket` over the
  connection;
- :func:`run_blocking` on the connection's own thread: ``handler(ws)``;
- :func:`events_connect` on a pool thread: ``on_connect(ws)``, then the
  implicit accept (each message then goes to ``on_message`` from Rust).

Each applies the API's rules on how a handler ends: returning before the
handshake is answered rejects it with 403, returning after closes with 1000;
raising answers 500 before, closes with 1011 after (the traceback goes to the
``propylon.error`` log); a :class:`~propylon.websocket.WebSocketClosed` that
escapes the handler is the connection ending, not an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from propylon.websocket import WebSocketClosed, is_normal_close

__all__ = ["AsyncWebSocket", "events_connect", "run_async", "run_blocking", "start_async"]

_log = logging.getLogger("propylon.error")

#: Tasks of async handlers (the loop keeps only weak references to tasks).
_running: set[asyncio.Task[None]] = set()


class AsyncWebSocket:
    """The async variant of the connection object: the same names as the
    sync one, its methods coroutines. Waits resolve futures of the worker's
    loop, which the server completes when a message or room arrives."""

    __slots__ = ("_conn", "_loop")

    def __init__(self, conn: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._conn = conn
        self._loop = loop

    path = property(lambda self: self._conn.path)
    query_string = property(lambda self: self._conn.query_string)
    headers = property(lambda self: self._conn.headers)
    subprotocols = property(lambda self: self._conn.subprotocols)
    extensions = property(lambda self: self._conn.extensions)
    client = property(lambda self: self._conn.client)
    scheme = property(lambda self: self._conn.scheme)
    http_version = property(lambda self: self._conn.http_version)
    subprotocol = property(lambda self: self._conn.subprotocol)

    async def accept(self, subprotocol: str | None = None, headers: Iterable[tuple[str, str]] = ()) -> None:
        self._conn.accept(subprotocol, headers)

    async def reject(self, status: int = 403, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> None:
        self._conn.reject(status, headers, body)

    async def receive(self) -> str | bytes:
        # The future gets the next message itself (or raises the close), so
        # a wait costs one call into the server.
        future = self._loop.create_future()
        message: str | bytes | None = self._conn.receive_or_wait(future)
        if message is None:
            message = await future
        return message

    async def send(self, data: str | bytes | bytearray | memoryview) -> None:
        conn = self._conn
        if conn.send_nowait(data):
            return
        while True:
            future = self._loop.create_future()
            if conn.send_or_wait(data, future):
                return
            await future

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._conn.close(code, reason)

    def __aiter__(self) -> AsyncWebSocket:
        return self

    async def __anext__(self) -> str | bytes:
        try:
            return await self.receive()
        except WebSocketClosed as closed:
            if is_normal_close(closed.code):
                raise StopAsyncIteration from None
            raise

    def __repr__(self) -> str:
        return f"<AsyncWebSocket {self.scheme} {self.path}>"


def start_async(handler: Any, conn: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Start ``handler`` for ``conn`` as a task of ``loop`` (called on it)."""
    task = loop.create_task(run_async(handler, conn, loop))
    _running.add(task)
    task.add_done_callback(_running.discard)


async def run_async(handler: Any, conn: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Run an async handler to its end, and end the connection as it ended."""
    try:
        await handler(AsyncWebSocket(conn, loop))
    except WebSocketClosed as exc:
        if conn.closed is None:
            # Another connection's close, let through: an error here.
            _failed(conn, exc)
            return
    except asyncio.CancelledError:
        # The worker's loop is stopping.
        _ended(conn)
        raise
    except Exception as exc:  # noqa: BLE001 - the handler's failure: logged, 500 or 1011
        _failed(conn, exc)
        return
    _ended(conn)


def run_blocking(handler: Any, conn: Any) -> None:
    """Run a blocking handler to its end, on the connection's own thread."""
    try:
        handler(conn)
    except WebSocketClosed as exc:
        if conn.closed is None:
            _failed(conn, exc)
            return
    except Exception as exc:  # noqa: BLE001 - the handler's failure: logged, 500 or 1011
        _failed(conn, exc)
        return
    _ended(conn)


def events_connect(handler: Any, conn: Any) -> bool:
    """An event handler's connection: ``on_connect(ws)`` if it has one, then
    the implicit accept. True when the connection is open for messages."""
    on_connect = getattr(handler, "on_connect", None)
    try:
        if on_connect is not None:
            on_connect(conn)
    except Exception as exc:  # noqa: BLE001 - on_connect's failure: logged, 500 or 1011
        if isinstance(exc, WebSocketClosed) and conn.closed is not None:
            return bool(conn.accepted)
        _failed(conn, exc)
        # An accepted connection still gets its on_close.
        return bool(conn.accepted)
    if not conn.answered:
        conn.accept()
    return bool(conn.accepted)


def _ended(conn: Any) -> None:
    """The handler returned: 403 if it never answered the handshake, else a
    normal close."""
    if not conn.answered:
        conn.reject(403)
    else:
        conn.close(1000)


def _failed(conn: Any, exc: BaseException) -> None:
    _log.error("error in WebSocket handler for %s", conn.path, exc_info=exc)
    conn.fail()
