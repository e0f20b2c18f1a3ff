"""The general WSGI test application (``tests.apps.wsgi_app:app``), wrapped in wsgiref.validate.

Routes are chosen by the first segment of PATH_INFO. Query parameters tune
them; ``X-Record-Path`` names a file where a route records what it saw when the
client cannot be told (e.g. after a disconnect).

==================  =============================================================
``/``               ``hello`` (with Content-Length)
``/env[/...]``      the environ as JSON (str values, plus the wsgi.* flags)
``/echo``           the request body, read with ``read()``
``/input/MODE``     reads the body with one wsgi.input method (see ``_read_by``)
                    and reports the pieces, their hash, and what reads after
                    the end returned
``/input-ops``      the same for a sequence of read calls, ``ops`` (see
                    ``_apply_ops``), applied in turn until the end
``/hash``           reads the body in 64 KiB blocks, errors propagate; JSON
``/body-report``    records ``started``, reads like /hash but catches the read
                    error, and records what it saw as a JSON line
``/called``         logs ``APP-CALLED <token>`` on wsgi.errors, then like /hash
``/chunked``        ``n`` chunks, no Content-Length (chunked on HTTP/1.1)
``/empty-chunks``   empty chunks around "ab" and "cd"; ``cl=1`` adds Content-Length
``/fixed``          a fixed body with Content-Length (for HEAD)
``/write``          uses the write() callable, then returns one more chunk
``/write-wait``     write(b"early"), waits for ``release`` file, returns b"late"
``/exc-info``       start_response, then again with exc_info -> 503
``/expect-noread``  answers 200 without reading the body
``/log``            writes ``msg`` to wsgi.errors
``/block``          logs ``BLOCK-STARTED <token>``, waits for ``release`` file
``/big``            ``size`` bytes in 64 KiB chunks, with Content-Length
``/barrier``        waits until ``n`` requests with the same ``key`` are inside
``/close-record``   an iterable whose close() appends to X-Record-Path;
                    ``mode`` = normal | error | endless
``/cl-more``        declares Content-Length 10, yields 20 bytes
``/cl-less``        declares Content-Length 20, yields 10 bytes
``/stream-echo``    a generator that reads the body in ``n``-byte blocks while
                    the response is being sent (no Content-Length)
``/stash``          keeps this request's wsgi.input for /read-stash, reads nothing
``/read-stash``     reads the kept wsgi.input; JSON: what it read, or the error
``/status``         status ``code`` with no body (204, 304, ...)
==================  =============================================================
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs

import propylon
from tests.apps._validate import validated

TEXT = [("Content-Type", "text/plain")]
JSON = [("Content-Type", "application/json")]
BLOCK = 64 * 1024

ROUTES = {}


def route(name):
    def register(func):
        ROUTES[name] = func
        return func

    return register


def query(environ, name, default=None):
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return values[0] if values else default


def respond_json(start_response, data, status="200 OK"):
    body = json.dumps(data).encode()
    start_response(status, JSON + [("Content-Length", str(len(body)))])
    return [body]


def record(environ, text):
    """Append a line to the file named by the X-Record-Path request header, if any."""
    path = environ.get("HTTP_X_RECORD_PATH")
    if path:
        with open(path, "a") as f:
            f.write(text + "\n")


def wait_for_release(path, timeout=30.0):
    """Block until the test creates ``path`` (the test controls when a slow request ends)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"release file {path} never appeared")
        time.sleep(0.01)


@route("/")
def hello(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "5")])
    return [b"hello"]


@route("/env")
def env(environ, start_response):
    out = {key: value for key, value in environ.items() if isinstance(value, str)}
    out["wsgi.version"] = list(environ["wsgi.version"])
    out["wsgi.version_is_tuple"] = type(environ["wsgi.version"]) is tuple
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated"):
        out[key] = environ.get(key, "<absent>")
    out["file_wrapper_is_propylon"] = environ.get("wsgi.file_wrapper") is propylon.FileWrapper
    return respond_json(start_response, out)


@route("/echo")
def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]


def _read_by(inp, mode, n):
    """Read the whole body with one wsgi.input method; returns the pieces in order."""
    pieces = []
    if mode == "read":
        pieces.append(inp.read())
    elif mode == "read_none":
        pieces.append(inp.read(None))
    elif mode == "read_minus1":
        pieces.append(inp.read(-1))
    elif mode == "read_n":
        while piece := inp.read(n):
            pieces.append(piece)
    elif mode == "readline_then_read_n":
        pieces.append(inp.readline())
        while piece := inp.read(n):
            pieces.append(piece)
    elif mode == "readline":
        while line := inp.readline():
            pieces.append(line)
    elif mode == "readline_limit":
        while line := inp.readline(n):
            pieces.append(line)
    elif mode == "readlines":
        pieces.extend(inp.readlines())
    elif mode == "readlines_hint":
        while lines := inp.readlines(n):
            pieces.extend(lines)
    elif mode == "iter":
        pieces.extend(inp)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return pieces


def _after_eof(inp):
    """What reads after the end return: each must be b"" at once (WSGI 1.1: input is terminated)."""
    results = []
    for call in (lambda: inp.read(1), lambda: inp.read(), lambda: inp.readline(), lambda: inp.read(8192)):
        try:
            results.append(call().decode("latin-1"))
        except Exception as exc:  # reported to the test, which fails on anything but ""
            results.append(f"raised {type(exc).__name__}: {exc}")
    return results


def _framing(environ):
    return {
        "CONTENT_LENGTH": environ.get("CONTENT_LENGTH", "<absent>"),
        "HTTP_CONTENT_ENCODING": environ.get("HTTP_CONTENT_ENCODING", "<absent>"),
        "HTTP_TRANSFER_ENCODING": environ.get("HTTP_TRANSFER_ENCODING", "<absent>"),
        "SERVER_PROTOCOL": environ["SERVER_PROTOCOL"],
    }


@route("/input")
def input_(environ, start_response):
    mode = environ["PATH_INFO"].split("/")[2]
    inp = environ["wsgi.input"]
    pieces = _read_by(inp, mode, int(query(environ, "n", "7")))
    data = b"".join(pieces)
    return respond_json(start_response, {
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "pieces": [len(p) for p in pieces],
        "after_eof": _after_eof(inp),
        **_framing(environ),
    })


def _apply_ops(inp, ops):
    """Apply the read operations ``ops`` in turn, again and again, until one
    finds the end of the body. Each: ``r`` read(), ``rN`` read(N), ``l``
    readline(), ``lN`` readline(N), ``s`` readlines(), ``sN`` readlines(N),
    ``i`` next(iter(inp)). Returns the pieces read."""
    pieces = []
    while True:
        for op in ops:
            n = int(op[1:]) if len(op) > 1 else None
            if op[0] == "r":
                got = [inp.read() if n is None else inp.read(n)]
            elif op[0] == "l":
                got = [inp.readline() if n is None else inp.readline(n)]
            elif op[0] == "s":
                got = inp.readlines() if n is None else inp.readlines(n)
            else:
                got = [next(iter(inp), b"")]
            got = [piece for piece in got if piece]
            if not got:
                return pieces
            pieces.extend(got)


@route("/input-ops")
def input_ops(environ, start_response):
    inp = environ["wsgi.input"]
    pieces = _apply_ops(inp, query(environ, "ops").split(","))
    data = b"".join(pieces)
    return respond_json(start_response, {
        "pieces": [len(p) for p in pieces],
        "sha256": hashlib.sha256(data).hexdigest(),
        "after_eof": _after_eof(inp),
    })


def _hash_body(inp):
    digest = hashlib.sha256()
    length = 0
    while block := inp.read(BLOCK):
        digest.update(block)
        length += len(block)
    return {"length": length, "sha256": digest.hexdigest()}


@route("/hash")
def hash_(environ, start_response):
    result = _hash_body(environ["wsgi.input"])  # read errors propagate to the server
    return respond_json(start_response, {**result, **_framing(environ)})


@route("/called")
def called(environ, start_response):
    environ["wsgi.errors"].write(f"APP-CALLED {query(environ, 'token')}\n")
    return hash_(environ, start_response)


@route("/body-report")
def body_report(environ, start_response):
    inp = environ["wsgi.input"]
    seen = {"bytes_read": 0}
    record(environ, "started")  # lets a test wait until the app runs before it disconnects
    try:
        while block := inp.read(4096):
            seen["bytes_read"] += len(block)
        seen["error"] = None
    except Exception as exc:
        seen["error"] = type(exc).__name__
        seen["message"] = str(exc)
        seen["is_oserror"] = isinstance(exc, OSError)
        for name in ("RequestBodyError", "ClientDisconnected", "RequestBodyTooLarge", "InvalidRequestBody"):
            seen["is_" + name] = isinstance(exc, getattr(propylon, name))
    record(environ, json.dumps(seen))
    return respond_json(start_response, seen)


@route("/chunked")
def chunked(environ, start_response):
    n = int(query(environ, "n", "5"))
    start_response("200 OK", TEXT)
    return (b"chunk-%d;" % i for i in range(n))


@route("/empty-chunks")
def empty_chunks(environ, start_response):
    headers = TEXT + ([("Content-Length", "4")] if query(environ, "cl") else [])
    start_response("200 OK", headers)
    return iter([b"", b"ab", b"", b"", b"cd", b""])


@route("/fixed")
def fixed(environ, start_response):
    body = b"fixed body\n"
    start_response("200 OK", TEXT + [("Content-Length", str(len(body)))])
    return [body]


@route("/write")
def write_(environ, start_response):
    write = start_response("200 OK", TEXT)
    write(b"first ")
    write(b"second ")
    return [b"third"]


@route("/write-wait")
def write_wait(environ, start_response):
    write = start_response("200 OK", TEXT)
    write(b"early")  # PEP 3333: sent (headers first) before write() returns
    wait_for_release(query(environ, "release"))
    return [b"late"]


@route("/write-then-read")
def write_then_read(environ, start_response):
    write = start_response("200 OK", TEXT)
    write(b"early ")  # sent before write() returns: the response has started
    return [environ["wsgi.input"].read()]


@route("/exc-info")
def exc_info(environ, start_response):
    start_response("200 OK", TEXT)
    try:
        raise ValueError("boom exc-info")
    except ValueError:
        # Nothing was sent yet, so this replaces the first status (PEP 3333).
        start_response("503 Service Unavailable", TEXT + [("Content-Length", "7")], sys.exc_info())
    return [b"handled"]


@route("/expect-noread")
def expect_noread(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "6")])
    return [b"unread"]


@route("/log")
def log(environ, start_response):
    environ["wsgi.errors"].write(query(environ, "msg", "") + "\n")
    environ["wsgi.errors"].flush()
    start_response("200 OK", TEXT + [("Content-Length", "6")])
    return [b"logged"]


@route("/block")
def block(environ, start_response):
    environ["wsgi.errors"].write(f"BLOCK-STARTED {query(environ, 'token')}\n")
    wait_for_release(query(environ, "release"))
    start_response("200 OK", TEXT + [("Content-Length", "8")])
    return [b"released"]


@route("/big")
def big(environ, start_response):
    size = int(query(environ, "size"))
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])

    def blocks():
        sent = 0
        while sent < size:
            n = min(BLOCK, size - sent)
            yield b"x" * n
            sent += n

    return blocks()


_barriers: dict[str, threading.Barrier] = {}
_barriers_lock = threading.Lock()


@route("/barrier")
def barrier(environ, start_response):
    with _barriers_lock:
        gate = _barriers.setdefault(query(environ, "key"), threading.Barrier(int(query(environ, "n")), timeout=20))
    gate.wait()  # BrokenBarrierError -> 500 if the requests are not handled concurrently
    return respond_json(start_response, {"REMOTE_PORT": environ["REMOTE_PORT"]})


class RecordingBody:
    """A response iterable whose close() appends ``closed after N chunks`` to the record file."""

    def __init__(self, environ, chunks):
        self.environ = environ
        self.chunks = chunks
        self.count = 0

    def __iter__(self):
        for chunk in self.chunks:
            self.count += 1
            yield chunk

    def close(self):
        record(self.environ, f"closed after {self.count} chunks")


def _failing_chunks():
    yield b"one"
    raise RuntimeError("boom close-record error")


@route("/close-record")
def close_record(environ, start_response):
    mode = query(environ, "mode", "normal")
    start_response("200 OK", TEXT)
    if mode == "normal":
        return RecordingBody(environ, [b"one", b"two", b"three"])
    if mode == "error":
        return RecordingBody(environ, _failing_chunks())
    if mode == "endless":  # 1 GiB: far more than any socket buffer, and bounded
        return RecordingBody(environ, (b"y" * BLOCK for _ in range(16 * 1024)))
    raise ValueError(mode)


@route("/cl-more")
def cl_more(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "10")])
    return [b"0123456789", b"abcdefghij"]


@route("/cl-less")
def cl_less(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "20")])
    return [b"0123456789"]


@route("/stream-echo")
def stream_echo(environ, start_response):
    inp = environ["wsgi.input"]
    n = int(query(environ, "n", "8192"))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return iter(lambda: inp.read(n), b"")


_stash = {}


@route("/stash")
def stash(environ, start_response):
    _stash["input"] = environ["wsgi.input"]
    start_response("200 OK", TEXT + [("Content-Length", "7")])
    return [b"stashed"]


@route("/read-stash")
def read_stash(environ, start_response):
    inp = _stash.pop("input")
    try:
        data = inp.read()
        result = {"read": data.decode("latin-1"), "error": None}
    except Exception as exc:
        result = {"read": None, "error": type(exc).__name__, "message": str(exc)}
    return respond_json(start_response, result)


@route("/status")
def status(environ, start_response):
    code = query(environ, "code", "204")
    # wsgiref.validate: no Content-Type on the responses that have no content.
    start_response(f"{code} Whatever", [] if code in ("204", "304") else TEXT)
    return []


def dispatch(environ, start_response):
    name = "/" + environ["PATH_INFO"].split("/")[1]
    handler = ROUTES.get(name)
    if handler is None:
        start_response("404 Not Found", TEXT + [("Content-Length", "9")])
        return [b"not found"]
    return handler(environ, start_response)


app = validated(dispatch)
