"""A small application object that shows what Propylon does.

Run it from the repository root::

    propylon examples.showcase:app
    # then open http://127.0.0.1:8000/ , or try HTTP/2 by prior knowledge:
    curl --http2-prior-knowledge http://127.0.0.1:8000/env
    # the 103 Early Hints before the page, and a precompressed asset:
    curl -v -H 'Accept: text/html' http://127.0.0.1:8000/ -o /dev/null
    curl -sI -H 'Accept-Encoding: br' http://127.0.0.1:8000/static/showcase.css
    # the chat over TLS, its WebSocket on the page's HTTP/2 connection (RFC 8441):
    propylon examples.showcase:app --certfile cert.pem --keyfile key.pem
    # then open https://127.0.0.1:8000/static/chat.html in two windows

Pages (the WSGI application, ``wsgi_app``):

- ``/``        this list
- ``/echo``    sends the request body back (try a chunked or gzip'd upload with --decompress)
- ``/stream``  a generator response without Content-Length (chunked on HTTP/1.1, DATA frames on HTTP/2)
- ``/file``    this file, through ``environ["wsgi.file_wrapper"]`` (sent by the server, not by Python)
- ``/env``     the WSGI environ as JSON (``wsgi.version`` is ``[1, 1]``)

And ``/chat``, a WebSocket endpoint (``chat``, an ``async def`` handler on the
worker's event loop): every text message a client sends goes to every open
connection as JSON, ``{"from": "guest-2", "text": "..."}``, with a notice
(``"from": null``) when someone joins or leaves. Its page is
``/static/chat.html``; over TLS the browser opens the WebSocket on the page's
HTTP/2 connection (RFC 8441) and the join notice says so.

And ``/static/``: ``examples/static/``, served by the server itself (no
Python, no application thread), with precompressed siblings, validators,
ranges and a cache policy; the page's style sheet and script are announced
with ``103 Early Hints`` before the page. ``app.startup`` logs what the server
offers this deployment.

``wsgi_app`` is plain WSGI and runs on any PEP 3333 server; ``app`` runs on
any server through ``propylon.adapters.asgi(app)`` / ``propylon.adapters.wsgi(app)``.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import time
from itertools import count
from pathlib import Path
from typing import Any

import propylon

INDEX = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>Propylon showcase</title>
<link rel="stylesheet" href="/static/showcase.css">
<script src="/static/showcase.js" defer></script>
<h1>Propylon showcase</h1>
<p>Served over {protocol} by a Rust server running a plain WSGI 1.1 application.
Its style sheet and script come from the server's static mount, announced with
103 Early Hints while this page was being made.</p>
<ul>
  <li><a href="/echo">/echo</a>: POST a body and get it back
      (<code>curl -T file.bin -H 'Transfer-Encoding: chunked' http://HOST/echo</code>)</li>
  <li><a href="/stream">/stream</a>: a generator response, streamed as it is produced</li>
  <li><a href="/file">/file</a>: this application's source, through <code>wsgi.file_wrapper</code></li>
  <li><a href="/env">/env</a>: the WSGI environ as JSON</li>
  <li><a href="/static/chat.html">/static/chat.html</a>: a chat over the WebSocket endpoint
      <code>/chat</code> (open it in two windows; over TLS it runs on the page's HTTP/2 connection)</li>
  <li><a href="/static/showcase.css">/static/showcase.css</a>: a static file, sent
      precompressed (<code>curl -sI -H 'Accept-Encoding: br' http://HOST/static/showcase.css</code>)</li>
</ul>
<div id="facts">(the script fills this in)</div>
"""


def index(environ, start_response):
    body = INDEX.format(protocol=html.escape(environ["SERVER_PROTOCOL"])).encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


def echo(environ, start_response):
    # WSGI 1.1: the input is terminated, so read() to the end works for chunked
    # and HTTP/2 bodies that have no CONTENT_LENGTH.
    body = environ["wsgi.input"].read()
    if environ["REQUEST_METHOD"] == "GET":
        body = b"POST something here and it comes back.\n"
    content_type = environ.get("CONTENT_TYPE") or "application/octet-stream"
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])

    def lines():
        for i in range(1, 11):
            yield f"line {i} of 10, produced at {time.strftime('%H:%M:%S')}\n".encode()

    return lines()


def source_file(environ, start_response):
    f = open(__file__, "rb")
    # No Content-Length: for a regular file the server sets it (size - position).
    start_response("200 OK", [("Content-Type", "text/x-python; charset=utf-8")])
    return environ["wsgi.file_wrapper"](f, 64 * 1024)


def env(environ, start_response):
    shown = {key: value for key, value in environ.items() if isinstance(value, (str, bool, int))}
    shown["wsgi.version"] = list(environ["wsgi.version"])
    body = json.dumps(shown, indent=2, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


ROUTES = {"/": index, "/echo": echo, "/stream": stream, "/file": source_file, "/env": env}


def wsgi_app(environ, start_response):
    handler = ROUTES.get(environ["PATH_INFO"])
    if handler is None:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"not found\n"]
    return handler(environ, start_response)


#: The longest chat message passed on, in characters; longer ones are cut.
CHAT_MAX_TEXT = 2000
#: Messages queued for one reader. A reader that falls this far behind (its
#: server-side send queue full as well) misses messages rather than holding up
#: the others: each connection's messages are sent by a task of its own.
CHAT_BACKLOG = 256


class ChatMember:
    """One open connection of the chat: its name and its backlog of outgoing
    messages, sent in order by a task of its own (:meth:`deliver`), so that a
    slow reader does not hold up a broadcast."""

    def __init__(self, ws: Any, number: int) -> None:
        self.ws = ws
        self.number = number
        self.name = f"guest-{number}"
        self.backlog: asyncio.Queue[str] = asyncio.Queue(CHAT_BACKLOG)

    def tell(self, message: dict[str, Any]) -> None:
        self.queue(json.dumps(message))

    def queue(self, text: str) -> None:
        if not self.backlog.full():
            self.backlog.put_nowait(text)

    async def deliver(self) -> None:
        """Send the backlog, in order, until the connection closes."""
        try:
            while True:
                await self.ws.send(await self.backlog.get())
        except propylon.WebSocketClosed:
            pass


class ChatRoom:
    """The chat's open connections: this worker's (one room per worker process)."""

    def __init__(self) -> None:
        self.members: set[ChatMember] = set()
        self._numbers = count(1)

    def join(self, ws: Any) -> ChatMember:
        member = ChatMember(ws, next(self._numbers))
        self.members.add(member)
        return member

    def leave(self, member: ChatMember) -> None:
        self.members.discard(member)

    def broadcast(self, message: dict[str, Any]) -> None:
        text = json.dumps(message)
        for member in self.members:
            member.queue(text)


room = ChatRoom()


async def chat(ws):
    """The ``/chat`` WebSocket endpoint: each text message a client sends goes to
    every open connection as ``{"from": NAME, "text": TEXT}``; joins and leaves
    are announced with ``"from": null``."""
    await ws.accept()
    others = [member.name for member in sorted(room.members, key=lambda member: member.number)]
    me = room.join(ws)
    sender = asyncio.create_task(me.deliver())
    me.tell({"from": None, "you": me.name,
             "text": f"You are {me.name}. Here: {', '.join(others) or 'nobody else yet'}."})  # fmt: skip
    room.broadcast({"from": None, "text": f"{me.name} joined (WebSocket over HTTP/{ws.http_version}, {ws.scheme})"})
    try:
        async for message in ws:
            if isinstance(message, str) and message.strip():
                room.broadcast({"from": me.name, "text": message[:CHAT_MAX_TEXT]})
    except propylon.WebSocketClosed:
        pass  # closed with an error code, or dropped: a leave all the same
    finally:
        room.leave(me)
        sender.cancel()
        room.broadcast({"from": None, "text": f"{me.name} left"})


def on_startup(server):
    logging.getLogger("showcase").info(
        "%s %s serves %s with %s", server.name, server.version,
        ", ".join(sorted(server.protocols)), ", ".join(sorted(server.features)),
    )  # fmt: skip


app = propylon.Application(
    wsgi=wsgi_app,
    websocket={"/chat": chat},
    static={
        # The assets change with the code: revalidated (ETag) after a minute.
        "/static/": propylon.Static(Path(__file__).parent / "static", cache_control="public, max-age=60"),
    },
    preload=["/static/showcase.css", "/static/showcase.js"],
    on_startup=on_startup,
)
