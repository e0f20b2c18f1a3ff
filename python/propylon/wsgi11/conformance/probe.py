"""The server side of the conformance kit: one WSGI application with a route per probe.

Mount :class:`ProbeApp` on the server under test (at ``/`` or under any
prefix: it routes on ``PATH_INFO``) and point the client
(``python -m propylon.wsgi11.conformance --url``) at it. Each route does one
thing the client cannot see from outside, and reports what happened, in the
response as JSON, or in a :class:`ProbeStore` when the client will have gone
by then (``GET /result/TOKEN`` reads it back):

==========================  ===================================================
``/environ``                what the server put in the environ (JSON)
``/read/METHOD``            reads the body with one ``wsgi.input`` method and
                            reports the pieces, then three more reads at the end
``/ignore-body``            answers without reading the body
``/record/TOKEN``           reads the body to its end and records the outcome
                            and the exception's kind (for bodies cut short by
                            the client)
``/limit[/TOKEN]``          reads the body to its end; a read error propagates
                            (recorded under TOKEN first, with its kind)
``/response``               ``produce`` body bytes against a declared length,
                            through the iterable or ``write()`` (``token``:
                            recorded once the response is returned)
``/file``                   a file through ``wsgi.file_wrapper`` (or a subclass
                            that records ``close()``); with ``token``, records
                            that the wrapper was returned, whether the file was
                            read in Python and how, and ``close()``
``/close/MODE/TOKEN``       an iterable whose ``close()`` is recorded
``/write``                  ``write(b"first-")``, then returns ``[b"second"]``
``/exc-info/WHEN``          ``start_response`` again with ``exc_info``
``/mark/TOKEN``             records only that it was called (the client checks
                            that records are visible to later requests)
``/result/TOKEN``           what a probe recorded under TOKEN (JSON), or 404
==========================  ===================================================

Reads that could block on a server without terminated input run on a helper
thread with a deadline, so that such a server gets a "blocked" report
instead of a hang. On a conforming server the body is already there and the
deadline is never reached.

What it does not do: judge. The client (``checks``) decides what passes.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

__all__ = ["ProbeApp", "ProbeStore", "pattern"]

#: How long a probe waits for one read before reporting it as blocked. Only a
#: server whose input is not terminated ever reaches it.
READ_DEADLINE = 5.0

JSON_HEADERS = [("Content-Type", "application/json")]

Environ = dict[str, Any]
#: PEP 3333's start_response(status, headers, exc_info=None) -> write.
StartResponse = Callable[..., Any]
Route = Callable[[Environ, StartResponse, list[str], dict[str, str]], Iterable[bytes]]


def pattern(length: int, offset: int = 0) -> bytes:
    """The bytes the file and response probes send: position modulo 251."""
    return bytes((i % 251) for i in range(offset, offset + length))


class ProbeStore:
    """Records from probes, read back by the client with ``GET /result/TOKEN``.

    In memory by default (one server process). With ``directory``, records are
    JSON files there, shared by every process of a multi-process server.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self._directory = Path(directory) if directory is not None else None
        self._memory: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def update(self, token: str, **fields: Any) -> None:
        with self._lock:
            record = self.get(token) or {}
            for key, value in fields.items():
                if key.endswith("+"):
                    record[key[:-1]] = record.get(key[:-1], 0) + value
                else:
                    record[key] = value
            if self._directory is None:
                self._memory[token] = record
            else:
                path = self._directory / f"{_safe(token)}.json"
                tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
                tmp.write_text(json.dumps(record))
                os.replace(tmp, path)

    def get(self, token: str) -> dict[str, Any] | None:
        if self._directory is None:
            kept = self._memory.get(token)
            return dict(kept) if kept is not None else None
        try:
            record: dict[str, Any] = json.loads((self._directory / f"{_safe(token)}.json").read_text())
            return record
        except FileNotFoundError:
            return None


def _safe(token: str) -> str:
    if not token or not all(c.isalnum() or c in "-_" for c in token):
        raise ValueError(f"bad token {token!r}")
    return token


def _guarded(call: Callable[[], Any], deadline: float = READ_DEADLINE) -> dict[str, Any]:
    """Run ``call`` on a helper thread; report its value, its error, or that it blocked."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - reported to the client
            outcome["error"] = f"{type(exc).__name__}: {exc}"
            outcome.update(_exception_kind(exc))
            outcome["exception"] = exc

    thread = threading.Thread(target=run, name="wsgi11-probe-read", daemon=True)
    thread.start()
    thread.join(deadline)
    if thread.is_alive():
        return {"blocked": True}
    return outcome


def _exception_kind(exc: BaseException) -> dict[str, Any]:
    """What section 4 says a framework may rely on, as the application sees it:
    ``isinstance(exc, OSError)``, ``isinstance(exc, ConnectionError)`` and
    ``exc.errno``, with the class and its bases for the report."""
    return {"oserror": isinstance(exc, OSError), "connection_error": isinstance(exc, ConnectionError),
            "errno": getattr(exc, "errno", None) if isinstance(exc, OSError) else None,
            "classes": [f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__
                        if c not in (BaseException, object)]}


_KIND_FIELDS = ("oserror", "connection_error", "errno", "classes")


def _text(data: Any) -> Any:
    if isinstance(data, bytes):
        return data.decode("latin-1")
    if isinstance(data, list):
        return [_text(d) for d in data]
    return repr(data)


#: How each ``/read/METHOD`` reads: (first pass until the end, one more read after it).
_READERS: dict[str, tuple[Callable[[Any], list[Any]], Callable[[Any], Any]]] = {
    "read-n": (lambda s: list(iter(lambda: s.read(7), b"")), lambda s: s.read(7)),
    "read-all": (lambda s: [s.read()], lambda s: s.read()),
    "read-minus1": (lambda s: [s.read(-1)], lambda s: s.read(-1)),
    "read-none": (lambda s: [s.read(None)], lambda s: s.read(None)),
    "readline": (lambda s: list(iter(s.readline, b"")), lambda s: s.readline()),
    "readline-size": (lambda s: list(iter(lambda: s.readline(5), b"")), lambda s: s.readline(5)),
    "readlines": (lambda s: [s.readlines()], lambda s: s.readlines()),
    "iter": (lambda s: list(s), lambda s: list(s)),
}


class ProbeApp:
    """The probe application. ``store``: where probes record (default: in memory)."""

    def __init__(self, store: ProbeStore | None = None) -> None:
        self.store = store or ProbeStore()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        parts = [p for p in environ.get("PATH_INFO", "").split("/") if p]
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        route: Route | None = getattr(self, "route_" + (parts[0].replace("-", "_") if parts else "index"), None)
        if route is None:
            return _respond(start_response, "404 Not Found", {"error": f"no probe {environ.get('PATH_INFO')!r}"})
        return route(environ, start_response, parts[1:], query)

    # -- environ ----------------------------------------------------------------------

    def route_index(self, environ: Environ, start_response: StartResponse, args: list[str],
                  query: dict[str, str]) -> Iterable[bytes]:
        return _respond(start_response, "200 OK", {"probe": "propylon.wsgi11.conformance"})

    def route_environ(self, environ: Environ, start_response: StartResponse, args: list[str],
                  query: dict[str, str]) -> Iterable[bytes]:
        keys = ("wsgi.version", "wsgi.input_terminated", "wsgi.multithread", "wsgi.multiprocess",
                "SERVER_PROTOCOL", "CONTENT_LENGTH", "HTTP_HOST", "HTTP_COOKIE", "HTTP_X_PROBE_MULTI",
                "HTTP_TRANSFER_ENCODING", "HTTP_CONTENT_ENCODING", "SERVER_SOFTWARE", "REQUEST_METHOD",
                "PATH_INFO", "QUERY_STRING", "SCRIPT_NAME")
        report: dict[str, Any] = {k: _jsonable(environ[k]) for k in keys if k in environ}
        report["keys"] = sorted(environ)
        report["file_wrapper"] = _describe_file_wrapper(environ.get("wsgi.file_wrapper"))
        return _respond(start_response, "200 OK", report)

    # -- input ------------------------------------------------------------------------

    def route_read(self, environ: Environ, start_response: StartResponse, args: list[str],
                  query: dict[str, str]) -> Iterable[bytes]:
        method = args[0] if args else "read-all"
        if method not in _READERS:
            return _respond(start_response, "404 Not Found", {"error": f"no read method {method!r}"})
        first, again = _READERS[method]
        stream = environ["wsgi.input"]
        report: dict[str, Any] = {
            "content_length": environ.get("CONTENT_LENGTH"),
            "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
            "content_encoding": environ.get("HTTP_CONTENT_ENCODING"),
        }
        outcome = _guarded(lambda: first(stream))
        report.update({k: v for k, v in outcome.items() if k != "exception"})
        if "value" in outcome:
            report["value"] = _text(outcome["value"])
            after = []
            for _ in range(3):
                more = _guarded(lambda: again(stream))
                if "value" not in more:
                    after.append({k: v for k, v in more.items() if k != "exception"})
                    break
                after.append(_text(more["value"]))
            report["after"] = after
        return _respond(start_response, "200 OK", report)

    def route_ignore_body(self, environ: Environ, start_response: StartResponse, args: list[str],
                  query: dict[str, str]) -> Iterable[bytes]:
        return _respond(start_response, "200 OK", {"ignored": True})

    def route_record(self, environ: Environ, start_response: StartResponse, args: list[str],
                  query: dict[str, str]) -> Iterable[bytes]:
        token = args[0]
        self.store.update(token, entered=True)
        stream = environ["wsgi.input"]
        total = 0

        def drain() -> int:
            nonlocal total
            while block := stream.read(16384):
                total += len(block)
            return total

        outcome = _guarded(drain, deadline=READ_DEADLINE * 4)
        if outcome.get("blocked"):
            self.store.update(token, outcome="blocked", bytes=total)
        elif "error" in outcome:
            self.store.update(token, outcome="error", error=outcome["error"], bytes=total,
                              **{k: outcome[k] for k in _KIND_FIELDS})
            if outcome["oserror"]:
                raise outcome["exception"]  # let the server (or middleware) answer it
        else:
            self.store.update(token, outcome="complete", bytes=total,
                              content_length=environ.get("CONTENT_LENGTH"))
        return _respond(start_response, "200 OK", self.store.get(token) or {})

    def route_limit(self, environ: Environ, start_response: StartResponse, args: list[str],
                  query: dict[str, str]) -> Iterable[bytes]:
        token = args[0] if args else None
        if token:
            self.store.update(token, entered=True)
        stream = environ["wsgi.input"]
        outcome = _guarded(lambda: len(stream.read()))
        report = {k: v for k, v in outcome.items() if k != "exception"}
        if token:
            self.store.update(token, outcome="error" if "error" in outcome else
                              "blocked" if outcome.get("blocked") else "complete", **report)
        if "exception" in outcome and outcome["oserror"]:
            raise outcome["exception"]  # the server (or middleware) must answer 413
        return _respond(start_response, "200 OK", report)

    def route_mark(self, environ: Environ, start_response: StartResponse, args: list[str],
                  query: dict[str, str]) -> Iterable[bytes]:
        self.store.update(args[0], marked=True)
        return _respond(start_response, "200 OK", {"marked": True})

    def route_result(self, environ: Environ, start_response: StartResponse, args: list[str],
                  query: dict[str, str]) -> Iterable[bytes]:
        record = self.store.get(args[0]) if args else None
        if record is None:
            return _respond(start_response, "404 Not Found", {"error": "no record"})
        return _respond(start_response, "200 OK", record)

    # -- responses --------------------------------------------------------------------

    def route_response(self, environ: Environ, start_response: StartResponse, args: list[str],
                  query: dict[str, str]) -> Iterable[bytes]:
        declared = query.get("declared")
        produce = int(query.get("produce", "0"))
        headers = [("Content-Type", "application/octet-stream")]
        if declared is not None:
            headers.append(("Content-Length", declared))
        body = pattern(produce)
        if query.get("token"):
            self.store.update(query["token"], returned=True)
        if query.get("via") == "write":
            write = start_response("200 OK", headers)
            for i in range(0, len(body), 10):
                write(body[i : i + 10])
            return []
        start_response("200 OK", headers)
        return (body[i : i + 10] for i in range(0, len(body), 10))

    def route_file(self, environ: Environ, start_response: StartResponse, args: list[str],
                  query: dict[str, str]) -> Iterable[bytes]:
        size = int(query.get("size", "100000"))
        skip = int(query.get("skip", "0"))
        token = query.get("token")
        path = _pattern_file(size)
        file_wrapper: Any = environ.get("wsgi.file_wrapper")
        filelike = _RecordingFile(io.FileIO(path, "rb"), self.store, token)
        os.unlink(path)  # the open descriptor keeps the data; nothing is left behind
        try:
            if skip:
                filelike.read(skip)  # by reading, so the buffer runs ahead of tell()
            if file_wrapper is None:
                raise LookupError("the environ has no wsgi.file_wrapper")
            if query.get("mode") == "subclass":
                wrapper = _recording_subclass(file_wrapper)(filelike, 8192)
                wrapper.probe_store, wrapper.probe_token = self.store, token
            else:
                wrapper = file_wrapper(filelike, 8192)
        except BaseException as exc:  # noqa: BLE001 - any failure is the answer the check reads
            filelike.close()
            return _respond(start_response, "500 Internal Server Error",
                            {"error": f"{type(exc).__name__}: {exc}"})
        headers = [("Content-Type", "application/octet-stream")]
        if "declared" in query:
            headers.append(("Content-Length", query["declared"]))
        start_response("200 OK", headers)
        if token:
            self.store.update(token, returned=True)
        filelike.arm()
        response: Iterable[bytes] = wrapper
        return response

    def route_close(self, environ: Environ, start_response: StartResponse, args: list[str],
                  query: dict[str, str]) -> Iterable[bytes]:
        mode, token = args[0], args[1]
        store = self.store
        store.update(token, closed=0)

        class Recorded:
            def __iter__(self) -> Iterator[bytes]:
                if mode == "error":
                    yield b"partial"
                    raise RuntimeError("the probe fails on purpose after its first chunk")
                count = 1 if mode == "normal" else 4096
                for _ in range(count):
                    yield b"x" * 16384

            def close(self) -> None:
                store.update(token, **{"closed+": 1})

        headers = [("Content-Type", "application/octet-stream")]
        if mode == "normal":
            headers.append(("Content-Length", "16384"))
        start_response("200 OK", headers)
        return Recorded()

    def route_write(self, environ: Environ, start_response: StartResponse, args: list[str],
                  query: dict[str, str]) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])
        write(b"first-")
        return [b"second"]

    def route_exc_info(self, environ: Environ, start_response: StartResponse, args: list[str],
                  query: dict[str, str]) -> Iterable[bytes]:
        when = args[0] if args else "before"
        headers = [("Content-Type", "text/plain")]
        if when == "before":
            start_response("200 OK", headers)
            try:
                raise RuntimeError("replaced before anything was sent")
            except RuntimeError:
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            return [b"replaced"]
        token = args[1]
        store = self.store

        def body() -> Iterator[bytes]:
            yield b"x" * 100
            try:
                raise RuntimeError("raised after the headers were sent")
            except RuntimeError:
                try:
                    start_response("500 Internal Server Error", headers, sys.exc_info())
                except RuntimeError as again:
                    store.update(token, reraised=str(again) == "raised after the headers were sent")
                    raise
                store.update(token, reraised=False)
                yield b"start_response did not re-raise"

        start_response("200 OK", headers)
        return body()


# ----------------------------------------------------------------------- helpers


def _respond(start_response: Callable[..., Any], status: str, report: dict[str, Any]) -> list[bytes]:
    body = json.dumps(report, sort_keys=True).encode()
    start_response(status, JSON_HEADERS + [("Content-Length", str(len(body)))])
    return [body]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return repr(value)


def _describe_file_wrapper(cls: Any) -> dict[str, Any]:
    """What the client cannot see: is it a class, can it be subclassed, is close() a method."""
    if cls is None:
        return {"present": False}
    report: dict[str, Any] = {"present": True, "name": getattr(cls, "__qualname__", repr(cls)),
                              "is_class": isinstance(cls, type)}
    if not report["is_class"]:
        return report
    try:
        type("Sub", (cls,), {})
        report["subclassable"] = True
    except TypeError as exc:
        report["subclassable"] = False
        report["subclass_error"] = str(exc)
    probe = io.BytesIO(b"abc")
    try:
        instance = cls(probe, 4096)
    except Exception as exc:  # noqa: BLE001
        report["instantiation_error"] = f"{type(exc).__name__}: {exc}"
        return report
    report["keeps_attributes"] = getattr(instance, "filelike", None) is probe and getattr(instance, "blksize", None) == 4096
    report["close_is_method"] = "close" not in getattr(instance, "__dict__", {}) and callable(getattr(cls, "close", None))
    try:
        instance.close()
        report["close_closes_file"] = probe.closed
    except Exception as exc:  # noqa: BLE001
        report["close_closes_file"] = False
        report["close_error"] = f"{type(exc).__name__}: {exc}"
    return report


def _pattern_file(size: int) -> str:
    fd, path = tempfile.mkstemp(prefix="wsgi11-probe-")
    with os.fdopen(fd, "wb") as f:
        block = pattern(251 * 261)  # a whole number of periods: blocks can be repeated
        written = 0
        while written < size:
            n = min(len(block), size - written)
            f.write(block[:n])
            written += n
    return path


#: The methods through which Python iterates an object (``__getitem__``: the
#: old sequence protocol, which ``iter()`` falls back on).
_ITERATION_METHODS = ("__iter__", "__next__", "__getitem__")


def _within(code: Any, outer: Any) -> bool:
    """Whether ``code`` is ``outer`` or a function, lambda or generator defined inside it."""
    if code is outer:
        return True
    return any(_within(code, const) for const in outer.co_consts if hasattr(const, "co_consts"))


def _iterating_frame(frame: Any) -> str | None:
    """The iteration method on the stack above ``frame``, if any: a frame running
    code of ``__iter__``, ``__next__`` or ``__getitem__`` (or of a lambda or
    generator inside one) of the class of its ``self``, whatever the method's own
    name is (waitress assigns ``__next__ = next``)."""
    depth = 0
    while frame is not None and depth < 64:
        owner = frame.f_locals.get("self")
        if owner is not None:
            for cls in type(owner).__mro__:
                for name in _ITERATION_METHODS:
                    code = getattr(cls.__dict__.get(name), "__code__", None)
                    if code is not None and _within(frame.f_code, code):
                        return f"{type(owner).__qualname__}.{name}"
        frame = frame.f_back
        depth += 1
    return None


def _read_site(frame: Any) -> str:
    """Where a read of the wrapped file comes from: the function that called it,
    as ``module.qualified name`` (the probe's own frames skipped), or ``C code``
    when no Python function did (a wrapper iterated in C)."""
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    if frame is None:
        return "C code"
    code = frame.f_code
    return f"{frame.f_globals.get('__name__', '?')}.{getattr(code, 'co_qualname', code.co_name)}"


class _RecordingFile(io.BufferedReader):
    """A regular file that records (under its token) how the server read it, if it did.

    Once :meth:`arm` is called (when the probe returns the wrapper), every read
    records its *site* (:func:`_read_site`: the function that called it), so
    that the way an instance of a subclass is sent can be compared with the way
    one of the server's own class is; ``sendfile()`` reads nothing. A read that
    runs inside an iteration method of any object (the wrapper's ``__next__``
    under any name, a generator or lambda in its ``__iter__``, ``__getitem__``,
    a middleware's iterable) also records that the file was *iterated*.
    """

    def __init__(self, raw: io.FileIO, store: ProbeStore, token: str | None) -> None:
        super().__init__(raw)
        self._store, self._token = store, token
        self._armed = False
        self._iterated = False
        self._sites: list[str] = []

    def arm(self) -> None:
        """From now on reads are the server's: record how they happen."""
        self._armed = True

    def _note(self, frame: Any) -> None:
        if self._token is None or not self._armed:
            return
        site = _read_site(frame)
        if site not in self._sites:
            self._sites.append(site)
            self._store.update(self._token, sites=sorted(self._sites))
        if not self._iterated and (how := _iterating_frame(frame)) is not None:
            self._iterated = True
            self._store.update(self._token, iterated=f"read through {how}")

    def read(self, size: int | None = -1) -> bytes:
        self._note(sys._getframe(0).f_back)
        return super().read(size)

    def read1(self, size: int = -1) -> bytes:
        self._note(sys._getframe(0).f_back)
        return super().read1(size)

    def readinto(self, buffer: Any) -> int:
        self._note(sys._getframe(0).f_back)
        return super().readinto(buffer)

    def readinto1(self, buffer: Any) -> int:
        self._note(sys._getframe(0).f_back)
        return super().readinto1(buffer)

    def close(self) -> None:
        if self._token and not self.closed:
            self._store.update(self._token, file_closed=True)
        super().close()


_SUBCLASSES: dict[Any, type] = {}


def _recording_subclass(base: Any) -> type:
    """A subclass of the server's wrapper that records close(), as middleware would
    (section 5), and the first call of the base's ``__next__``, ``__getitem__`` or
    ``read`` (for the report: which of them a server that reads a subclass
    instance's file calls)."""
    if base not in _SUBCLASSES:

        def close(self: Any) -> None:
            self.probe_store.update(self.probe_token, closing=True)  # before the file closes
            base.close(self)
            self.probe_store.update(self.probe_token, **{"closed+": 1})

        def recorded(name: str) -> Callable[..., Any]:
            inherited = getattr(base, name)

            def method(self: Any, *args: Any) -> Any:
                token = getattr(self, "probe_token", None)
                if token and not getattr(self, "probe_iterated", False):
                    self.probe_iterated = True
                    self.probe_store.update(token, called=f"{name}()")
                return inherited(self, *args)

            method.__name__ = name
            return method

        namespace: dict[str, Any] = {"close": close}
        for name in ("__next__", "__getitem__", "read"):
            if callable(getattr(base, name, None)):
                namespace[name] = recorded(name)
        _SUBCLASSES[base] = type(f"Recording{base.__name__}", (base,), namespace)
    return _SUBCLASSES[base]
