"""WebSocket echo applications: every message comes back unchanged, a text
message as text and a binary one as binary. The Autobahn TestSuite
(``scripts/autobahn.py``) runs its fuzzing client against them.

One :class:`propylon.Application` per handler style of the WebSocket API
(``docs/spec/websocket.md``), each serving every path:

- ``async_app``: an ``async def`` handler, run on the worker's event loop;
- ``event_app``: an event handler (an object with ``on_message``), each
  message a short job on the thread pool;
- ``blocking_app``: a plain function holding a thread for the connection.

``asgi_app`` is the same echo as an ASGI 3 application (the ASGI WebSocket
protocol), for running the harness against an ASGI server such as uvicorn:
``scripts/autobahn.py --server-cmd "{python} -m uvicorn tests.apps.ws_echo:asgi_app --port {port}"``.
"""

from __future__ import annotations

from typing import Any

import propylon


async def echo_async(ws: Any) -> None:
    """Echo until the client closes: iteration ends at a normal close, and any
    other close code ends the handler through ``WebSocketClosed``."""
    async for message in ws:
        await ws.send(message)


class EchoEvents:
    """Echo each message from its ``on_message`` event; the handshake is
    accepted implicitly (no ``on_connect``)."""

    def on_message(self, ws: Any, message: str | bytes) -> None:
        ws.send(message)


def echo_blocking(ws: Any) -> None:
    """Echo on the connection's own thread until the client closes."""
    for message in ws:
        ws.send(message)


async_app = propylon.Application(websocket={"/": echo_async})
event_app = propylon.Application(websocket={"/": EchoEvents()})
blocking_app = propylon.Application(websocket={"/": echo_blocking})


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The echo as an ASGI 3 application (WebSocket scopes only; lifespan is
    acknowledged, plain HTTP gets 404)."""
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"WebSocket only\n"})
        return
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event["bytes"]})
        elif event["type"] == "websocket.disconnect":
            return


async def asgi_text_as_binary(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A wrong echo, for checking that the harness fails: a text message comes
    back as a binary one."""

    async def text_as_binary_send(event: dict[str, Any]) -> None:
        if event["type"] == "websocket.send" and event.get("text") is not None:
            event = {"type": "websocket.send", "bytes": event["text"].encode()}
        await send(event)

    await asgi_app(scope, receive, text_as_binary_send)
