"""Application objects for the lifecycle and configuration tests
(``tests.apps.application_app:NAME``).

The apps record what happens to them, one line each, in the file named by
their ``record`` configuration key (``--app-config record=PATH``):
``startup THREAD LOOP``, ``request``, ``block-started``, ``response-closed``,
``shutdown THREAD LOOP`` (``LOOP`` is ``KIND:ID`` of the running event loop,
``KIND`` being ``asyncio`` or ``uvloop``, or ``-`` outside one).

WSGI routes of :data:`app` and :data:`async_app`:

==============  ==============================================================
``/``           JSON: how many times startup ran, and ``server``'s fields
``/config``     JSON: ``server.config``, each value with its type's name
``/block``      records ``block-started``, waits for the file ``release``
                (query parameter) to exist, answers ``released``; the body's
                close() records ``response-closed``
==============  ==============================================================

The other names are applications that are wrong in one way each (the
bad-input tests) or that only show one feature.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import propylon

_state: dict[str, Any] = {"startups": 0, "server": None, "record": None}


def _record(line: str) -> None:
    path = _state["record"]
    if path:
        with open(path, "a") as file:
            file.write(line + "\n")


def _loop_id() -> str:
    """``KIND:ID`` of the running loop (KIND: ``asyncio`` or ``uvloop``), or ``-``."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "-"
    return f"{type(loop).__module__.split('.')[0]}:{id(loop)}"


class _Body:
    """A response body whose close() records that the response went out."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        _record("response-closed")


def _json(start_response: Any, value: object) -> list[bytes]:
    body = json.dumps(value).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    query = {key: values[-1] for key, values in parse_qs(environ["QUERY_STRING"]).items()}
    server: propylon.ServerInfo | None = _state["server"]
    if path == "/config":
        assert server is not None
        return _json(start_response, {key: [value, type(value).__name__] for key, value in server.config.items()})
    if path == "/block":
        _record("block-started")
        release = Path(query["release"])
        deadline = time.monotonic() + 30
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "8")])
        return _Body([b"released"])
    _record("request")
    fields = {}
    if server is not None:
        fields = {
            "name": server.name, "version": server.version, "protocols": sorted(server.protocols),
            "features": sorted(server.features), "worker": server.worker, "workers": server.workers,
        }  # fmt: skip
    return _json(start_response, {"startups": _state["startups"], "server": fields, "path": path,
                                  "script_name": environ["SCRIPT_NAME"]})


def _startup(server: propylon.ServerInfo) -> None:
    _state["startups"] += 1
    _state["server"] = server
    _state["record"] = server.config.get("record")
    _record(f"startup {threading.current_thread().name} {_loop_id()}")


def _shutdown() -> None:
    _record(f"shutdown {threading.current_thread().name} {_loop_id()}")


async def _async_startup(server: propylon.ServerInfo) -> None:
    await asyncio.sleep(0)
    _startup(server)


async def _async_shutdown() -> None:
    await asyncio.sleep(0)
    _shutdown()


#: Sync hooks, no __config__: every given key reaches server.config as given.
app = propylon.Application(wsgi=wsgi, on_startup=_startup, on_shutdown=_shutdown)

#: Async hooks.
async_app = propylon.Application(wsgi=wsgi, on_startup=_async_startup, on_shutdown=_async_shutdown)

#: A declared configuration: one key of each type, one required.
configured = propylon.Application(
    wsgi=wsgi,
    config={"record": "", "debug": False, "workers": 1, "ratio": 0.5, "name": "default", "database_url": str},
    on_startup=_startup,
)

#: Only a WSGI callable.
wsgi_only = propylon.Application(wsgi=wsgi)


class Raw:
    """The protocol written by hand: WSGI under /api only, a WebSocket handler
    under /ws that accepts nothing, and a stream prefix this server does not
    serve."""

    __routes__: ClassVar[dict[str, list[str]]] = {"wsgi": ["/api/"], "websocket": ["/ws"], "stream": ["/rpc"]}

    def __endpoint__(self, protocol: str) -> Any:
        return {"wsgi": wsgi, "websocket": lambda connection: None, "stream": lambda stream: None}.get(protocol)


raw = Raw()


# ------------------------------------------------------------- one fault each


def _raise_startup(server: propylon.ServerInfo) -> None:
    raise ValueError("the database is not there")


async def _raise_async_startup(server: propylon.ServerInfo) -> None:
    await asyncio.sleep(0)
    raise ValueError("the database is not there")


async def _raise_timeout_startup(server: propylon.ServerInfo) -> None:
    raise TimeoutError("the database did not answer")


def _hang_startup(server: propylon.ServerInfo) -> None:
    time.sleep(600)


async def _hang_async_startup(server: propylon.ServerInfo) -> None:
    await asyncio.sleep(600)


async def _block_async_startup(server: propylon.ServerInfo) -> None:
    time.sleep(600)  # blocks the event loop itself


def _raise_shutdown() -> None:
    _record("shutdown-raising")
    raise RuntimeError("could not flush")


def _hang_shutdown() -> None:
    _record("shutdown-hanging")
    time.sleep(600)


startup_raises = propylon.Application(wsgi=wsgi, on_startup=_raise_startup)
async_startup_raises = propylon.Application(wsgi=wsgi, on_startup=_raise_async_startup)
async_startup_raises_timeout = propylon.Application(wsgi=wsgi, on_startup=_raise_timeout_startup)
startup_hangs = propylon.Application(wsgi=wsgi, on_startup=_hang_startup)
async_startup_hangs = propylon.Application(wsgi=wsgi, on_startup=_hang_async_startup)
async_startup_blocks = propylon.Application(wsgi=wsgi, on_startup=_block_async_startup)
shutdown_raises = propylon.Application(wsgi=wsgi, on_startup=_startup, on_shutdown=_raise_shutdown)
shutdown_hangs = propylon.Application(wsgi=wsgi, on_startup=_startup, on_shutdown=_hang_shutdown)

missing_static = propylon.Application(wsgi=wsgi, static={"/static": "tests/apps/no-such-directory"})
file_static = propylon.Application(wsgi=wsgi, static={"/assets": propylon.Static("tests/apps/application_app.py")})
bad_prefix = propylon.Application(wsgi=wsgi, static={"static": "tests/apps"})
bad_config = propylon.Application(wsgi=wsgi, config={"retries": None})  # type: ignore[dict-item]
bad_preload = propylon.Application(wsgi=wsgi, preload=["/static/data.bin"])


class NotCallableEndpoint:
    def __endpoint__(self, protocol: str) -> object:
        return "not a function" if protocol == "wsgi" else None


not_callable_endpoint = NotCallableEndpoint()


class RaisingEndpoint:
    def __endpoint__(self, protocol: str) -> object:
        raise KeyError(protocol)


raising_endpoint = RaisingEndpoint()


class BadRoutes:
    __routes__: ClassVar[dict[str, str]] = {"wsgi": "/api"}

    def __endpoint__(self, protocol: str) -> object:
        return wsgi if protocol == "wsgi" else None


bad_routes = BadRoutes()

