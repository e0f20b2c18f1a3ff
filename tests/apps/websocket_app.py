"""WebSocket handlers of every style, served through the ASGI adapter by
tests/test_adapters_websocket.py: ``asgi_app`` (the default blocking cap) and
``asgi_capped`` (``websocket_threads=2``).

``WEBSOCKET_MARKER`` names a file where handlers append what the client
cannot see (how an iteration ended).

=====================  ==============================================================
``/async/echo``        ``async def``: accepts ``echo.v2`` when offered, echoes
``/event/echo``        event handler: echoes; ``on_close`` appends ``event-closed CODE``
``/blocking/echo``     blocking handler: ``for msg in ws: ws.send(msg)``
``/info``              sends the connection's attributes as JSON, then echoes
``/reject``            rejects with 401, a ``WWW-Authenticate`` field and a body
``/event/reject``      event handler whose ``on_connect`` rejects with 429
``/refuse``            returns without accepting (403)
``/raise``             raises after the first message (close 1011)
``/raise-early``       raises before accepting (500)
``/close``             closes with 4001 "go away" after the first message
``/iterate/async``     ``async for``; appends how it ended (``ended N`` or ``raised CODE``)
``/iterate/blocking``  the same with ``for``
``/chat``              event handler: each message goes to every other connection
``/sync-on-loop``      ``async def`` that calls a sync method on the loop: RuntimeError
``/misuse/async``      tries each wrong call, sends the exception each raised, closes 4003
``/misuse/blocking``   the same with the sync variant
``/raise/event``       event handler whose ``on_message`` raises; ``on_close`` appends its code
``/raise/blocking``    blocking handler that raises after the first message
``/event/thread``      event handler: answers each message with the thread it ran on
``/blocking/thread``   blocking handler: the same
=====================  ==============================================================
"""

from __future__ import annotations

import asyncio
import json
import os
import threading

import propylon
from propylon import adapters
from propylon.adapters._websocket import ThreadWebSocket


def _mark(line: str) -> None:
    marker = os.environ.get("WEBSOCKET_MARKER")
    if marker:
        with open(marker, "a") as file:
            file.write(line + "\n")


async def async_echo(ws) -> None:
    await ws.accept(subprotocol="echo.v2" if "echo.v2" in ws.subprotocols else None)
    async for message in ws:
        await ws.send(message)


class EventEcho:
    def on_message(self, ws, message) -> None:
        ws.send(message)

    def on_close(self, ws, code, reason) -> None:
        _mark(f"event-closed {code}")


def blocking_echo(ws) -> None:
    for message in ws:
        ws.send(message)


async def info(ws) -> None:
    await ws.accept()
    await ws.send(json.dumps({
        "path": ws.path, "query_string": ws.query_string.decode("latin-1"), "headers": ws.headers,
        "subprotocols": ws.subprotocols, "extensions": ws.extensions, "client": ws.client,
        "scheme": ws.scheme, "http_version": ws.http_version, "subprotocol": ws.subprotocol,
        "thread": threading.current_thread().name,
    }))
    async for message in ws:
        await ws.send(message)


async def reject(ws) -> None:
    await ws.reject(401, headers=[("WWW-Authenticate", "Bearer")], body=b"who are you?\n")


class EventReject:
    def on_connect(self, ws) -> None:
        ws.reject(429, body=b"slow down\n")

    def on_message(self, ws, message) -> None:
        raise AssertionError("a rejected connection gets no message")

    def on_close(self, ws, code, reason) -> None:
        _mark("event-reject-closed")  # must not happen: it never opened


async def refuse(ws) -> None:
    return None


async def raise_after_accept(ws) -> None:
    await ws.receive()
    raise RuntimeError("the handler failed")


def raise_early(ws) -> None:
    raise RuntimeError("the handler failed before accepting")


async def close(ws) -> None:
    await ws.receive()
    await ws.close(4001, "go away")
    await ws.close(4002, "ignored: closing twice does nothing")


async def iterate_async(ws) -> None:
    count = 0
    try:
        async for _ in ws:
            count += 1
    except propylon.WebSocketClosed as closed:
        _mark(f"async raised {closed.code}")
    else:
        _mark(f"async ended {count}")


def iterate_blocking(ws) -> None:
    count = 0
    try:
        for _ in ws:
            count += 1
    except propylon.WebSocketClosed as closed:
        _mark(f"blocking raised {closed.code}")
    else:
        _mark(f"blocking ended {count}")


class Chat:
    """Every message goes to every other open connection, sent from the
    thread of the sender's event."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.members: set[object] = set()

    def on_connect(self, ws) -> None:
        ws.accept()
        with self.lock:
            self.members.add(ws)
        ws.send(f"joined {len(self.members)}")

    def on_message(self, ws, message) -> None:
        with self.lock:
            others = [member for member in self.members if member is not ws]
        for member in others:
            try:
                member.send(message)
            except propylon.WebSocketClosed:
                pass

    def on_close(self, ws, code, reason) -> None:
        with self.lock:
            self.members.discard(ws)


async def sync_on_loop(ws) -> None:
    await ws.accept()
    try:
        # The sync variant, used on the loop's own thread, must refuse rather than wait forever.
        ThreadWebSocket(ws, asyncio.get_running_loop()).send("never")
    except RuntimeError as exc:
        await ws.send(f"RuntimeError: {exc}")


def _outcome(call) -> str:
    try:
        call()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


async def _async_outcome(call) -> str:
    try:
        await call()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


async def misuse_async(ws) -> None:
    outcomes = [await _async_outcome(lambda: ws.accept(subprotocol="not-offered"))]
    await ws.accept(subprotocol="offered")
    outcomes += [
        await _async_outcome(lambda: ws.accept()),
        await _async_outcome(lambda: ws.reject(403)),
        await _async_outcome(lambda: ws.send(3)),
        await _async_outcome(lambda: ws.close(1006)),
        await _async_outcome(lambda: ws.close(4000, "x" * 124)),
    ]
    await ws.send(json.dumps({"subprotocol": ws.subprotocol, "outcomes": outcomes}))
    await ws.close(4003, "done")
    outcomes = [await _async_outcome(lambda: ws.send("late")), await _async_outcome(ws.receive),
                await _async_outcome(lambda: ws.close())]
    _mark("async after close: " + " | ".join(outcomes))


def misuse_blocking(ws) -> None:
    outcomes = [_outcome(lambda: ws.accept(subprotocol="not-offered"))]
    ws.accept(subprotocol="offered")
    outcomes += [
        _outcome(lambda: ws.accept()),
        _outcome(lambda: ws.reject(403)),
        _outcome(lambda: ws.send(3)),
        _outcome(lambda: ws.close(1006)),
        _outcome(lambda: ws.close(4000, "x" * 124)),
    ]
    ws.send(json.dumps({"subprotocol": ws.subprotocol, "outcomes": outcomes}))
    ws.close(4003, "done")
    outcomes = [_outcome(lambda: ws.send("late")), _outcome(ws.receive), _outcome(lambda: ws.close())]
    _mark("blocking after close: " + " | ".join(outcomes))


class EventRaise:
    def on_message(self, ws, message) -> None:
        raise RuntimeError("on_message failed")

    def on_close(self, ws, code, reason) -> None:
        _mark(f"event-raise-closed {code}")


def raise_blocking(ws) -> None:
    ws.receive()
    raise RuntimeError("the blocking handler failed")


class EventThread:
    def on_message(self, ws, message) -> None:
        ws.send(f"{message} {threading.current_thread().name}")


def blocking_thread(ws) -> None:
    for message in ws:
        ws.send(f"{message} {threading.current_thread().name}")


app = propylon.Application(websocket={
    "/async/echo": async_echo,
    "/event/echo": EventEcho(),
    "/blocking/echo": blocking_echo,
    "/info": info,
    "/reject": reject,
    "/event/reject": EventReject(),
    "/refuse": refuse,
    "/raise": raise_after_accept,
    "/raise-early": raise_early,
    "/close": close,
    "/iterate/async": iterate_async,
    "/iterate/blocking": iterate_blocking,
    "/chat": Chat(),
    "/sync-on-loop": sync_on_loop,
    "/misuse/async": misuse_async,
    "/misuse/blocking": misuse_blocking,
    "/raise/event": EventRaise(),
    "/raise/blocking": raise_blocking,
    "/event/thread": EventThread(),
    "/blocking/thread": blocking_thread,
})

asgi_app = adapters.asgi(app)
asgi_capped = adapters.asgi(app, websocket_threads=2)
