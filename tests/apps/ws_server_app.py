"""WebSocket handlers of every style, served by Propylon itself for
tests/test_websocket.py.

Handlers report what the client cannot see (how an iteration ended, which
code ``on_close`` got) as one stderr line each, ``WSREC <tag> <what>``, where
``<tag>`` is the handshake's query string: the test waits for that line.

======================  =============================================================
``/echo/async``         ``async def``: echoes
``/echo/event``         event handler: echoes
``/echo/blocking``      blocking handler: echoes
``/info/<style>``       sends the connection's attributes as JSON, then echoes
``/subprotocol``        tries an unoffered subprotocol (ValueError), then accepts
                        ``chat.v2`` when offered
``/reject``             rejects with 401, ``WWW-Authenticate`` and a body
``/reject/event``       event handler whose ``on_connect`` rejects with 429
``/refuse``             returns without accepting (403)
``/raise-early``        raises before accepting (500)
``/raise-late/<style>`` raises at the first message (1011, traceback logged); the
                        event handler's ``on_close`` reports its code
``/close``              event handler: closes with 4001 "go away" at the first message
``/iterate/<style>``    counts messages; reports ``ended N`` or ``raised CODE REASON``
``/chat``               event handler: each message goes to every other connection
``/lifecycle``          event handler: reports ``on_connect`` and each ``on_close``
``/sender/<style>``     sends ``n`` binary messages of ``size`` bytes (async or
                        blocking); reports ``send waited at I`` while a send has
                        waited over 0.5 s, then ``sent all``
======================  =============================================================

``app`` also has a WSGI application on every path (``/`` answers ``hello``);
``websocket_only`` has the same handlers and no WSGI application.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs

import propylon


def record(ws, what: str) -> None:
    tag = ws.query_string.decode("latin-1")
    print(f"WSREC {tag} {what}", file=sys.stderr, flush=True)


def _attributes(ws) -> str:
    return json.dumps({
        "path": ws.path, "query_string": ws.query_string.decode("latin-1"), "headers": ws.headers,
        "subprotocols": ws.subprotocols, "extensions": ws.extensions, "client": ws.client,
        "scheme": ws.scheme, "http_version": ws.http_version, "subprotocol": ws.subprotocol,
    })


# ------------------------------------------------------------------ echo


async def echo_async(ws) -> None:
    async for message in ws:
        await ws.send(message)


class EchoEvents:
    def on_message(self, ws, message) -> None:
        ws.send(message)


def echo_blocking(ws) -> None:
    for message in ws:
        ws.send(message)


# ------------------------------------------------------------------ attributes


async def info_async(ws) -> None:
    await ws.accept()
    await ws.send(_attributes(ws))
    async for message in ws:
        await ws.send(message)


class InfoEvents:
    def on_connect(self, ws) -> None:
        ws.accept()
        ws.send(_attributes(ws))

    def on_message(self, ws, message) -> None:
        ws.send(message)


def info_blocking(ws) -> None:
    ws.accept()
    ws.send(_attributes(ws))
    for message in ws:
        ws.send(message)


# ------------------------------------------------------------------ the handshake


def subprotocol(ws) -> None:
    try:
        ws.accept(subprotocol="not-offered")
        outcome = "accepted"
    except ValueError as exc:
        outcome = f"ValueError: {exc}"
    ws.accept(subprotocol="chat.v2" if "chat.v2" in ws.subprotocols else None)
    ws.send(json.dumps({"unoffered": outcome, "subprotocol": ws.subprotocol}))
    for message in ws:
        ws.send(message)


async def reject(ws) -> None:
    await ws.reject(401, headers=[("WWW-Authenticate", "Bearer"), ("X-Why", "no token")], body=b"who are you?\n")


class RejectEvents:
    def on_connect(self, ws) -> None:
        ws.reject(429, body=b"slow down\n")

    def on_message(self, ws, message) -> None:
        record(ws, "on_message of a rejected connection")

    def on_close(self, ws, code, reason) -> None:
        record(ws, "on_close of a rejected connection")


def refuse(ws) -> None:
    return None


def raise_early(ws) -> None:
    raise RuntimeError("the handler failed before accepting")


async def raise_late_async(ws) -> None:
    await ws.receive()
    raise RuntimeError(f"the handler failed after accepting {ws.query_string.decode()}")


class RaiseLateEvents:
    def on_message(self, ws, message) -> None:
        raise RuntimeError(f"the handler failed after accepting {ws.query_string.decode()}")

    def on_close(self, ws, code, reason) -> None:
        record(ws, f"on_close {code}")


def raise_late_blocking(ws) -> None:
    ws.receive()
    raise RuntimeError(f"the handler failed after accepting {ws.query_string.decode()}")


class CloseEvents:
    def on_message(self, ws, message) -> None:
        ws.close(4001, "go away")
        ws.close(4002, "closing twice does nothing")


# ------------------------------------------------------------------ how connections end


async def iterate_async(ws) -> None:
    count = 0
    try:
        async for message in ws:
            count += 1
            await ws.send(message)
    except propylon.WebSocketClosed as closed:
        record(ws, f"raised {closed.code} {closed.reason}")
    else:
        record(ws, f"ended {count}")


class IterateEvents:
    def on_message(self, ws, message) -> None:
        ws.send(message)

    def on_close(self, ws, code, reason) -> None:
        record(ws, f"on_close {code} {reason}")


def iterate_blocking(ws) -> None:
    count = 0
    try:
        for message in ws:
            count += 1
            ws.send(message)
    except propylon.WebSocketClosed as closed:
        record(ws, f"raised {closed.code} {closed.reason}")
    else:
        record(ws, f"ended {count}")


class Chat:
    """Every message goes to every other open connection."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.members: set[object] = set()

    def on_connect(self, ws) -> None:
        ws.accept()
        with self.lock:
            self.members.add(ws)
            count = len(self.members)
        ws.send(f"joined {count}")

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


class Lifecycle:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.closes: dict[int, int] = {}

    def on_connect(self, ws) -> None:
        record(ws, "on_connect")

    def on_message(self, ws, message) -> None:
        ws.send(message)

    def on_close(self, ws, code, reason) -> None:
        with self.lock:
            self.closes[id(ws)] = self.closes.get(id(ws), 0) + 1
            count = self.closes[id(ws)]
        record(ws, f"on_close {code} {reason} call {count}")


def _sizes(ws) -> tuple[int, int]:
    query = parse_qs(ws.query_string.decode())
    return int(query["n"][0]), int(query["size"][0])


class SendWatch:
    """Reports ``send waited at I`` once a send has been waiting over 0.5 s
    (while it waits: a send that never returns is seen too)."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.current: tuple[int, float] | None = None
        self.reported = False

    def check(self) -> bool:
        """True once reported."""
        current = self.current
        if not self.reported and current is not None and time.monotonic() - current[1] > 0.5:
            self.reported = True
            record(self.ws, f"send waited at {current[0]}")
        return self.reported


def sender_blocking(ws) -> None:
    count, size = _sizes(ws)
    block = bytearray(os.urandom(size))
    watch = SendWatch(ws)
    done = threading.Event()

    def watcher() -> None:
        while not done.wait(0.05) and not watch.check():
            pass

    threading.Thread(target=watcher, daemon=True).start()
    for index in range(count):
        block[:8] = index.to_bytes(8, "big")
        watch.current = (index, time.monotonic())
        ws.send(block)
        watch.current = None
    done.set()
    record(ws, "sent all")
    for _ in ws:
        pass


async def sender_async(ws) -> None:
    count, size = _sizes(ws)
    block = bytearray(os.urandom(size))
    watch = SendWatch(ws)

    async def watcher() -> None:
        while not watch.check():
            await asyncio.sleep(0.05)

    watching = asyncio.get_running_loop().create_task(watcher())
    for index in range(count):
        block[:8] = index.to_bytes(8, "big")
        watch.current = (index, time.monotonic())
        await ws.send(block)
        watch.current = None
    watching.cancel()
    record(ws, "sent all")
    async for _ in ws:
        pass


# ------------------------------------------------------------------ the application


def wsgi(environ, start_response):
    body = b"hello" if environ["PATH_INFO"] == "/" else f"wsgi {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


HANDLERS = {
    "/echo/async": echo_async,
    "/echo/event": EchoEvents(),
    "/echo/blocking": echo_blocking,
    "/info/async": info_async,
    "/info/event": InfoEvents(),
    "/info/blocking": info_blocking,
    "/subprotocol": subprotocol,
    "/reject/event": RejectEvents(),
    "/reject": reject,
    "/refuse": refuse,
    "/raise-early": raise_early,
    "/raise-late/async": raise_late_async,
    "/raise-late/event": RaiseLateEvents(),
    "/raise-late/blocking": raise_late_blocking,
    "/close": CloseEvents(),
    "/iterate/async": iterate_async,
    "/iterate/event": IterateEvents(),
    "/iterate/blocking": iterate_blocking,
    "/chat": Chat(),
    "/lifecycle": Lifecycle(),
    "/sender/async": sender_async,
    "/sender/blocking": sender_blocking,
}

app = propylon.Application(wsgi=wsgi, websocket=HANDLERS)
websocket_only = propylon.Application(websocket=HANDLERS)
