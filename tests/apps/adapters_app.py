"""One application object, written by hand against the protocol
(``__endpoint__``, ``__routes__``, ``__static__``, ``__config__``,
``startup``, ``shutdown``), served by the adapters' tests on every server.

``tests.apps.adapters_app:app`` is the object itself (also a WSGI callable, so
a server that only knows WSGI serves its WSGI part); ``asgi_app`` and
``wsgi_app`` are the adapters around it.

Environment: ``ADAPTERS_STATIC`` the static directory (mounted at ``/static``),
``ADAPTERS_MARKER`` a file where ``startup`` and ``shutdown`` append a line;
``PROPYLON_APP_SECRET`` is required by ``__config__``.

==============  =================================================================
``/hello``      the ``greeting`` from ``server.config`` (``startup`` saw it)
``/server``     JSON: whether ``startup`` ran, and the ``server`` object it got
``/echo``       the request body, read 1000 bytes at a time; JSON length + hash
``/stream``     three chunks from a generator, no Content-Length
``/error``      raises before start_response
``/endless``    chunks without end; its close() appends ``endless-closed`` to the marker
==============  =================================================================
"""

from __future__ import annotations

import hashlib
import json
import os
from types import SimpleNamespace
from typing import ClassVar

from propylon import adapters


class Site:
    __routes__: ClassVar = {"wsgi": ["/"], "websocket": ["/ws"]}
    __preload__: ClassVar = ["/static/app.css", "</static/font.woff2>; rel=preload; as=font; crossorigin"]
    __config__: ClassVar = {"greeting": "hello", "retries": 3, "ratio": 0.5, "debug": False, "secret": str,
                  "fail_startup": False}

    def __init__(self) -> None:
        static = os.environ.get("ADAPTERS_STATIC")
        self.__static__ = {
            "/static": SimpleNamespace(directory=static, cache_control="public, max-age=60")
        } if static else {}
        self.server = None

    def __endpoint__(self, protocol: str):
        return self.wsgi if protocol == "wsgi" else None

    def _mark(self, line: str) -> None:
        marker = os.environ.get("ADAPTERS_MARKER")
        if marker:
            with open(marker, "a") as file:
                file.write(f"{line} {os.getpid()}\n")

    def startup(self, server) -> None:
        if server.config["fail_startup"]:
            raise RuntimeError("database unreachable")
        self.server = server
        self._mark("startup")

    async def shutdown(self) -> None:
        self._mark("shutdown")

    def wsgi(self, environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/hello":
            greeting = self.server.config["greeting"] if self.server else "no startup"
            return _reply(start_response, greeting.encode())
        if path == "/server":
            server = self.server
            report = {"started": server is not None}
            if server is not None:
                report.update(name=server.name, version=server.version, protocols=sorted(server.protocols),
                              features=sorted(server.features), worker=server.worker, workers=server.workers,
                              config=dict(server.config))
            return _reply(start_response, json.dumps(report).encode(), "application/json")
        if path == "/echo":
            body = environ["wsgi.input"]
            digest, size = hashlib.sha256(), 0
            while chunk := body.read(1000):
                digest.update(chunk)
                size += len(chunk)
            report = {"size": size, "sha256": digest.hexdigest(), "terminated": environ.get("wsgi.input_terminated")}
            return _reply(start_response, json.dumps(report).encode(), "application/json")
        if path == "/stream":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return (part for part in (b"one ", b"two ", b"three"))
        if path == "/endless":
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return Endless(self)
        if path == "/error":
            raise RuntimeError("the application failed")
        return _reply(start_response, f"wsgi {path}".encode())

    def __call__(self, environ, start_response):
        return self.wsgi(environ, start_response)


class Endless:
    """An endless response body: the server must stop iterating when the client goes."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def __iter__(self):
        while True:
            yield b"x" * 16384

    def close(self) -> None:
        self.site._mark("endless-closed")


def _reply(start_response, body: bytes, content_type: str = "text/plain"):
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


app = Site()
asgi_app = adapters.asgi(app)
wsgi_app = adapters.wsgi(app)
