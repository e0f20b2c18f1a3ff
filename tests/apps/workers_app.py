"""The application of tests/test_workers.py: a worker that can be made to
die, hang or sleep, and that says which process and which code served.

The process that imports this module appends its id to ``imported`` in the
directory ``WORKERS_APP_DIR`` names. Each worker's ``startup(server)`` writes a file ``started-<worker>-<workers>-<pid>``
into that directory, and ``shutdown()`` writes
``stopped-<pid>``: the test sees every worker start and stop.

Routes: ``/pid`` (the worker's process id), ``/version`` (``VERSION`` of the
module ``version_module.py`` in the test directory, imported with this one: a
worker that reloaded the code answers the new one; "one" without it), ``/slow?s=N`` (sleeps N seconds; with ``&mark=1`` first
appends a line to ``arrived`` in the test directory), ``/stuck`` (waits for
ever, inside ``wait_here_for_ever``), ``/segv`` (a segmentation fault), ``/multiprocess``
(``wsgi.multiprocess``),
``/exit`` (``os._exit(3)``).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs

import propylon

_DIR = Path(os.environ.get("WORKERS_APP_DIR", "."))


def _version() -> str:
    path = _DIR / "version_module.py"
    if not path.exists():
        return "one"
    spec = importlib.util.spec_from_file_location("version_module", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.VERSION)


VERSION = _version()
# Which process imported this module: the supervisor with --preload, else each worker.
with open(_DIR / "imported", "a") as _f:
    _f.write(f"{os.getpid()}\n")


def _text(start_response, text: str):
    body = text.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def wait_here_for_ever() -> None:
    threading.Event().wait()


def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/pid":
        return _text(start_response, str(os.getpid()))
    if path == "/multiprocess":
        return _text(start_response, str(environ["wsgi.multiprocess"]))
    if path == "/version":
        return _text(start_response, VERSION)
    if path == "/slow":
        if query.get("mark"):
            with open(_DIR / "arrived", "a") as f:
                f.write(f"{os.getpid()}\n")
        time.sleep(float(query.get("s", ["1"])[0]))
        return _text(start_response, f"slept {os.getpid()}")
    if path == "/stuck":
        wait_here_for_ever()
    if path == "/segv":
        ctypes.string_at(0)
    if path == "/exit":
        os._exit(3)
    return _text(start_response, "hello")


def startup(server) -> None:
    (_DIR / f"started-{server.worker}-{server.workers}-{os.getpid()}").write_text(VERSION)


def shutdown() -> None:
    (_DIR / f"stopped-{os.getpid()}").write_text("")


app = propylon.Application(wsgi=wsgi, on_startup=startup, on_shutdown=shutdown)
