"""The conformance checks: one per requirement of docs/spec/wsgi-1.1.md.

Every check talks to the probe application (``probe.py``) over real sockets
and returns an :class:`Outcome`: ``pass``, ``fail`` with a one-line reason, or
``n/a`` when the server cannot be asked (no HTTP/2, no ``--max-body-size``
given, no compatibility-mode URL given). Reasons name what was observed,
never timings, ports or tokens, so that a run's report is reproducible.

Groups: ``core`` checks need only the probe URL; ``limit`` checks need the
server's configured body limit; ``buffered`` checks need a URL where the
compatibility mode (Appendix B) is on; ``http2`` checks run when the server
speaks cleartext HTTP/2 with prior knowledge (and the ``h2`` package is
installed); ``info`` checks report a property the specification does not
require (they are never failures).

Bodies that never reach the application: a server that reads whole bodies
first, or a front end before a gateway (nginx before FastCGI, SCGI or uwsgi,
Apache before CGI or mod_wsgi daemon mode), may refuse a body cut short or
over the limit before the application is called. Section 4 is then met by
not calling the application, so ``truncated-length``, ``truncated-chunked``,
``http2-truncated`` and ``buffered-truncated`` pass, with a detail that says
the application was never called and what the client got (which of server
and front end refused it the client cannot tell); ``limit-declared``,
``limit-streamed`` and ``buffered-limit`` pass on such a ``413``. The checks on the exception's kind (``truncated-connection-error``,
``limit-efbig``) have no exception to judge then: not applicable, with the
same detail. A missing record counts as "never called" only once the probe's
records are shown to be visible to later requests (a multi-process server
needs a shared ``ProbeStore(directory)``); otherwise the check cannot complete
and fails.

Checks that have to wait to see whether the application was ever called
(bodies cut short by the client) are *deferred*: :func:`run` starts them
first and collects them last, so their waiting overlaps the other checks.

What it does not do: start servers, or decide how results are published
(``report.py``).
"""

from __future__ import annotations

import errno
import functools
import gzip
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from propylon.wsgi11.conformance.client import (
    RawResponse,
    Target,
    chunked,
    exchange,
    request_bytes,
    wait_for,
)
from propylon.wsgi11.conformance.probe import pattern

__all__ = ["CHECKS", "Check", "Context", "Outcome", "run"]

PASS, FAIL, NA = "pass", "fail", "n/a"

#: The body the input checks send: an empty line, a line longer than the
#: sized reads, and a last line without a newline.
BODY = b"line one\nline two\n\nthe fourth line is longer than the others\nfive"
LINES = BODY.splitlines(keepends=True)

#: How long to wait for a record that a probe writes after the client has
#: gone. A record that never comes means the application was never called.
RECORD_WAIT = 8.0
#: How long to wait for close() to be recorded once the response has been read.
CLOSE_WAIT = 15.0
#: How many ``/mark`` requests show that the probe's records are visible to the
#: next request (more than one: a multi-process server may hit the same process by chance).
RECORD_PROBES = 3


@dataclass(frozen=True)
class Outcome:
    result: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"result": self.result, "detail": self.detail}


def ok(detail: str = "") -> Outcome:
    return Outcome(PASS, detail)


def fail(detail: str) -> Outcome:
    return Outcome(FAIL, detail)


def na(detail: str) -> Outcome:
    return Outcome(NA, detail)


@dataclass
class Context:
    """What a check needs: where the probe is, and what the tester said about the server."""

    target: Target
    buffered: Target | None = None
    max_body_size: int | None = None
    _cache: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def token() -> str:
        return uuid.uuid4().hex

    def get(self, path: str, headers: list[tuple[str, str]] | None = None, target: Target | None = None) -> RawResponse:
        response = exchange(target or self.target, "GET", path, headers)
        if response is None:
            raise ConnectionError(f"GET {path}: the connection closed without a response")
        return response

    def post(self, path: str, body: bytes, headers: list[tuple[str, str]] | None = None,
             target: Target | None = None) -> RawResponse | None:
        return exchange(target or self.target, "POST", path, headers, body)

    def environ(self) -> dict[str, Any]:
        if "environ" not in self._cache:
            response = self.get("/environ")
            if response.status != 200:
                raise AssertionError(f"GET /environ answered {response.status}: is the probe application mounted there?")
            self._cache["environ"] = response.json()
        environ: dict[str, Any] = self._cache["environ"]
        return environ

    def record(self, token: str, target: Target | None = None) -> dict[str, Any] | None:
        response = self.get(f"/result/{token}", target=target)
        return response.json() if response.status == 200 else None

    def require_records(self, target: Target | None = None) -> None:
        """Make sure that what the probe records is visible to later requests, so
        that a missing record means the application was never called (and not
        that another process of the server keeps it). Raises if it is not."""
        target = target or self.target
        key = f"records {target.url}"
        if key not in self._cache:
            visible = True
            for _ in range(RECORD_PROBES):
                token = self.token()
                response = self.get(f"/mark/{token}", target=target)
                visible = visible and response.status == 200 and bool((self.record(token, target) or {}).get("marked"))
            self._cache[key] = visible
        if not self._cache[key]:
            raise AssertionError("a record the probe wrote was not visible to the next request: a missing "
                                 "record cannot show that the application was never called (give the probe a "
                                 "ProbeStore(directory) shared by the server's processes)")


@dataclass(frozen=True)
class Check:
    id: str
    section: str
    title: str
    group: str
    run: Callable[[Context], Any]
    #: For deferred checks: turns what ``run`` returned into the outcome.
    finish: Callable[[Context, Any], Outcome] | None = None


CHECKS: list[Check] = []


def check(id: str, section: str, title: str,
          group: str = "core") -> Callable[[Callable[[Context], Outcome]], Callable[[Context], Outcome]]:
    def register(func: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        CHECKS.append(Check(id, section, title, group, func))
        return func

    return register


class DeferredCheck(Protocol):
    """A check class for :func:`deferred`: two static methods."""

    @staticmethod
    def start(ctx: Context) -> Any: ...

    @staticmethod
    def finish(ctx: Context, state: Any) -> Outcome: ...


DeferredCheckType = TypeVar("DeferredCheckType", bound=type[DeferredCheck])


def deferred(id: str, section: str, title: str,
             group: str = "core") -> Callable[[DeferredCheckType], DeferredCheckType]:
    """A check in two steps: ``start(ctx)`` acts, ``finish(ctx, state)`` judges later."""

    def register(cls: DeferredCheckType) -> DeferredCheckType:
        CHECKS.append(Check(id, section, title, group, cls.start, cls.finish))
        return cls

    return register


# =============================================================== environ (§2, §9)


@check("version", "§9", "`wsgi.version` is `(1, 1)`")
def check_version(ctx: Context) -> Outcome:
    version = ctx.environ().get("wsgi.version")
    return ok() if version == [1, 1] else fail(f"wsgi.version is {_tuple(version)}")


#: input-terminated-flag's detail when the key is not there.
ABSENT = "wsgi.input_terminated is absent"


@check("input-terminated-flag", "§2", "`wsgi.input_terminated` is `True`")
def check_input_terminated_flag(ctx: Context) -> Outcome:
    env = ctx.environ()
    if "wsgi.input_terminated" not in env:
        return fail(ABSENT)
    value = env["wsgi.input_terminated"]
    return ok() if value is True else fail(f"wsgi.input_terminated is {value!r}")


# ====================================================================== input (§1)


def _read_check(ctx: Context, method: str, judge: Callable[[list[Any]], str | None],
                end_value: Any = "") -> Outcome:
    """POST BODY to /read/METHOD with a second request pipelined behind it."""
    target = ctx.target
    with target.connect() as conn:
        conn.try_send(request_bytes(target, "POST", f"/read/{method}", [("Content-Type", "text/plain")], BODY)
                  + request_bytes(target, "GET", "/"))
        first = conn.read_response("POST")
        if first is None:
            return fail(f"{method}: the connection closed without a response")
        if first.status != 200:
            return fail(f"{method}: answered {first.status}")
        report = first.json()
        if report.get("blocked"):
            return fail(f"{_call(method)} blocked at the end of the body instead of returning (input not terminated)")
        if "error" in report:
            return fail(f"{_call(method)} raised {report['error'].split(':')[0]}")
        value = report["value"]
        flat = "".join(v if isinstance(v, str) else "".join(v) for v in value)
        if "GET " in flat or "HTTP/1.1" in flat:
            return fail(f"{_call(method)} returned the next request on the connection as body bytes")
        problem = judge(value)
        if problem:
            return fail(f"{_call(method)}: {problem}")
        after = report.get("after", [])
        if after != [end_value] * 3:
            shown = "blocked" if any(isinstance(a, dict) and a.get("blocked") for a in after) else repr(after[:1])
            return fail(f"{_call(method)} at the end of the body gave {shown}, expected {end_value!r} every time")
        second = conn.read_response()
        if second is not None and second.status != 200:
            return fail(f"{method}: the request pipelined after the body was answered {second.status}")
    return ok()


def _call(method: str) -> str:
    return {"read-n": "read(7)", "read-all": "read()", "read-minus1": "read(-1)", "read-none": "read(None)",
            "readline": "readline()", "readline-size": "readline(5)", "readlines": "readlines()",
            "iter": "iteration"}[method]


def _whole(pieces: list[str], most: int | None = None) -> str | None:
    if "".join(pieces).encode("latin-1") != BODY:
        return f"returned {len(''.join(pieces))} bytes that are not the {len(BODY)}-byte body"
    if most is not None and any(len(p) > most for p in pieces):
        return f"returned a piece longer than {most} bytes"
    return None


@check("read-size", "§1", "`read(n)` returns the body, then `b\"\"` at its end, and nothing of the next request")
def check_read_size(ctx: Context) -> Outcome:
    return _read_check(ctx, "read-n", lambda v: _whole(v, 7))


@check("read-all", "§1", "`read()`, `read(-1)`, `read(None)` return the whole body, then `b\"\"`")
def check_read_all(ctx: Context) -> Outcome:
    for method in ("read-all", "read-minus1", "read-none"):
        outcome = _read_check(ctx, method, lambda v: _whole(v))
        if outcome.result != PASS:
            return outcome
    return ok()


def _lines(value: list[str], size: int | None = None) -> str | None:
    problem = _whole(value, size)
    if problem:
        return problem
    expected = [line.decode("latin-1") for line in LINES]
    if size is None and value != expected:
        return "did not split the body into its lines"
    if size is not None:
        for piece in value[:-1]:
            if not piece.endswith("\n") and len(piece) < size:
                return "returned a short piece that does not end a line"
    return None


@check("readline", "§1", "`readline()` and `readline(size)` return lines, then `b\"\"`")
def check_readline(ctx: Context) -> Outcome:
    outcome = _read_check(ctx, "readline", lambda v: _lines(v))
    if outcome.result != PASS:
        return outcome
    return _read_check(ctx, "readline-size", lambda v: _lines(v, 5))


@check("readlines", "§1", "`readlines()` returns the lines, then `[]`")
def check_readlines(ctx: Context) -> Outcome:
    return _read_check(ctx, "readlines", lambda v: _lines(v[0]), end_value=[])


@check("iteration", "§1", "iterating `wsgi.input` yields the lines and stops")
def check_iteration(ctx: Context) -> Outcome:
    return _read_check(ctx, "iter", lambda v: _lines(v), end_value=[])


@check("unread-body", "§1", "a body the application did not read never reaches the next request")
def check_unread_body(ctx: Context) -> Outcome:
    target = ctx.target
    body = b"GET /smuggled HTTP/1.1\r\n\r\n" * 600  # 15 KiB that would parse as requests
    with target.connect() as conn:
        conn.try_send(request_bytes(target, "POST", "/ignore-body", [("Content-Type", "text/plain")], body)
                  + request_bytes(target, "GET", "/environ"))
        first = conn.read_response("POST")
        if first is None or first.status != 200:
            return fail(f"the request was answered {first.status if first else 'with a close'}")
        second = conn.read_response()
        if second is None:
            return ok("the connection was closed after the response")
        if second.status != 200 or b"wsgi.version" not in second.body:
            return fail(f"the unread body was parsed as a request (answered {second.status})")
        tail = conn.read_some(1) if conn.buf else b""
        if tail:
            return fail("more responses followed: the unread body was parsed as requests")
    return ok()


# ====================================================================== bodies (§3)


@check("content-length", "§3", "`CONTENT_LENGTH` is the exact length when present")
def check_content_length(ctx: Context) -> Outcome:
    response = ctx.post("/read/read-all", b"0123456789", [("Content-Type", "text/plain")])
    if response is None or response.status != 200:
        return fail(f"a 10-byte body was answered {response.status if response else 'with a close'}")
    report = response.json()
    if report.get("blocked"):
        return fail("read() of a 10-byte body blocked at its end (input not terminated)")
    if report.get("content_length") != "10":
        return fail(f"CONTENT_LENGTH for a 10-byte body is {report.get('content_length')!r}")
    if report.get("value") != ["0123456789"]:
        return fail("read() did not return the 10-byte body")
    response = ctx.get("/read/read-all")
    report = response.json()
    if report.get("blocked"):
        return fail("read() on a request without a body blocked")
    if report.get("content_length") not in (None, "0"):
        return fail(f"CONTENT_LENGTH for a request without a body is {report.get('content_length')!r}")
    if report.get("value") != [""]:
        return fail("read() on a request without a body did not return b''")
    return ok()


@check("chunked", "§3", "a chunked body reaches the application, `CONTENT_LENGTH` absent (or exact)")
def check_chunked(ctx: Context) -> Outcome:
    target = ctx.target
    raw = request_bytes(target, "POST", "/read/read-all",
                        [("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")],
                        chunked(BODY[:10], BODY[10:25], BODY[25:]))
    with target.connect() as conn:
        conn.try_send(raw)
        response = conn.read_response("POST")
    if response is None:
        return fail("the connection closed without a response")
    if response.status != 200:
        return fail(f"a chunked request was answered {response.status} before the application read it")
    report = response.json()
    if report.get("blocked"):
        return fail("read() of a chunked body blocked (the server passes the framing and no end)")
    if "error" in report:
        return fail(f"read() of a chunked body raised {report['error'].split(':')[0]}")
    if report.get("content_length") not in (None, str(len(BODY))):
        return fail(f"CONTENT_LENGTH for a {len(BODY)}-byte chunked body is {report['content_length']!r}, "
                    "expected it absent (or exact, if the server buffered the body)")
    if report.get("value") != [BODY.decode()]:
        return fail("read() did not return the de-chunked body")
    return ok()


@check("decoded-body", "§3", "a body the server decodes has no `HTTP_CONTENT_ENCODING`, no stale `CONTENT_LENGTH`")
def check_decoded_body(ctx: Context) -> Outcome:
    decoded = BODY * 20
    sent = gzip.compress(decoded)
    response = ctx.post("/read/read-all", sent, [("Content-Encoding", "gzip"), ("Content-Type", "text/plain")])
    if response is None or response.status != 200:
        return fail(f"a gzip-encoded body was answered {response.status if response else 'with a close'}")
    report = response.json()
    if report.get("blocked") or "error" in report:
        return fail(f"read() of a gzip-encoded body {'blocked' if report.get('blocked') else 'raised'}")
    value = report["value"][0].encode("latin-1")
    if value == sent:
        if report.get("content_encoding") == "gzip" and report.get("content_length") == str(len(sent)):
            return na("the server passes encoded request bodies through as sent")
        return fail("an undecoded body lost its Content-Encoding or Content-Length")
    if value != decoded:
        return fail("read() returned neither the body as sent nor the decoded body")
    if report.get("content_encoding") is not None:
        return fail(f"the body was decoded but HTTP_CONTENT_ENCODING is still {report['content_encoding']!r}")
    if report.get("content_length") not in (None, str(len(decoded))):
        return fail(f"the body was decoded but CONTENT_LENGTH is {report['content_length']!r}")
    return ok()


# ===================================================================== truncated (§4)


def _start_cut_short(ctx: Context, framing: str, target: Target | None = None) -> dict[str, Any]:
    """Send part of a body, then end the request stream (FIN); the probe records what it saw.

    The client keeps reading: a server that answers (an error, or whatever
    the application did) shows at once that its verdict is final. One that
    closes instead (some treat the half-close as the client leaving) is
    judged from the probe's record, with a deadline.
    """
    target = target or ctx.target
    token = ctx.token()
    if framing == "length":
        head = request_bytes(target, "POST", f"/record/{token}",
                             [("Content-Type", "application/octet-stream"), ("Content-Length", "100000")])
        partial = b"x" * 1000
    else:
        head = request_bytes(target, "POST", f"/record/{token}",
                             [("Content-Type", "application/octet-stream"), ("Transfer-Encoding", "chunked")])
        partial = b"3e8\r\n" + b"x" * 1000 + b"\r\n" + b"2710\r\n" + b"y" * 500
    conn = target.connect()
    conn.try_send(head + partial)
    # Wait until the application is inside its read (when it is called before
    # the body is complete), so the end comes mid-body, not before the call.
    wait_for(lambda: ctx.record(token, target), 1.0)
    try:
        conn.sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server closed already
    return {"token": token, "target": target, "conn": conn, "deadline": time.monotonic() + RECORD_WAIT}


def _cut_short_record(ctx: Context, state: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The probe's final record (None: the application was never called), and
    what the client got.

    An answer does not make the record final: a front end (nginx before a
    FastCGI gateway, Apache before a CGI script) answers the client while the
    gateway's application may still be reading. So the record is awaited until
    it has an outcome, or until the deadline the start set.
    """
    token, target, conn = state["token"], state["target"], state["conn"]
    try:
        response = conn.read_response("POST")
        answer = f"answered {response.status}" if response else "closed the connection without a response"
    except TimeoutError:
        answer = "neither answered nor closed the connection"
    except (ValueError, OSError):
        answer = "ended the connection inside its response"
    finally:
        conn.close()
    record = wait_for(lambda: (r := ctx.record(token, target)) and "outcome" in r and r,
                      max(0.0, state["deadline"] - time.monotonic()))
    if not record:
        record = ctx.record(token, target)
        if not record:
            ctx.require_records(target)  # missing: never called, not kept by another process
    return record, answer


#: The detail of a read of a body cut short that did not raise: it ended as
#: if the body were complete, or had not returned when the check looked (a
#: CGI front end may end the process first, and which comes first is timing).
NO_ERROR = "the read did not raise: it ended like a complete body, or never returned"

#: The detail of a pass where the body never reached the application.
NEVER_CALLED = ("the application was never called with the incomplete body (the server, or a front end "
                "before it, {answer})")


def _finish_cut_short(ctx: Context, state: dict[str, Any], what: str) -> Outcome:
    record, answer = _cut_short_record(ctx, state)
    if not record:
        return ok(NEVER_CALLED.format(answer=answer))
    if "outcome" not in record:
        return fail(f"{what}: {NO_ERROR}")
    if record["outcome"] == "error":
        return ok() if record.get("oserror") else fail(f"{what}: the read raised {record['error'].split(':')[0]}, "
                                                       "not an OSError")
    if record["outcome"] == "blocked":
        return fail(f"{what}: the read blocked after the client ended the request")
    return fail(f"{what}: {NO_ERROR}")


@deferred("truncated-length", "§4", "a `Content-Length` body cut short raises `OSError`, never a short `b\"\"`")
class CheckTruncatedLength:
    @staticmethod
    def start(ctx: Context) -> Any:
        return _start_cut_short(ctx, "length")

    @staticmethod
    def finish(ctx: Context, state: Any) -> Outcome:
        return _finish_cut_short(ctx, state, "Content-Length body cut short")


@deferred("truncated-chunked", "§4", "a chunked body cut short raises `OSError`")
class CheckTruncatedChunked:
    @staticmethod
    def start(ctx: Context) -> Any:
        return _start_cut_short(ctx, "chunked")

    @staticmethod
    def finish(ctx: Context, state: Any) -> Outcome:
        return _finish_cut_short(ctx, state, "chunked body cut short")


def _classes(record: dict[str, Any]) -> str:
    classes = record.get("classes") or [record.get("error", "?").split(":")[0]]
    return str(classes[0])


@deferred("truncated-connection-error", "§4", "a body the client cut short raises a `ConnectionError`")
class CheckTruncatedConnectionError:
    @staticmethod
    def start(ctx: Context) -> Any:
        return [("Content-Length", _start_cut_short(ctx, "length")), ("chunked", _start_cut_short(ctx, "chunked"))]

    @staticmethod
    def finish(ctx: Context, state: Any) -> Outcome:
        judged, refused = [], []
        for framing, started in state:
            record, answer = _cut_short_record(ctx, started)
            if not record:
                refused.append(f"{framing}: {answer}")
                continue
            if record.get("outcome") != "error":
                how = "no exception, the read blocked" if record.get("outcome") == "blocked" else NO_ERROR
                return fail(f"{framing} body cut short: {how}")
            if not record.get("connection_error"):
                return fail(f"{framing} body cut short: the read raised {_classes(record)}, "
                            "which is not a ConnectionError")
            judged.append(framing)
        if not judged:
            return na("the application was never called with an incomplete body, no exception to judge ("
                      + "; ".join(refused) + ")")
        return ok()


# ======================================================================== limits (App. A)


def _send_over_limit(ctx: Context, framing: str, target: Target | None = None,
                     ) -> tuple[RawResponse | None, bytes, str]:
    """POST a body over the limit to /limit/TOKEN: the response (None: closed
    without one), the body sent, and the token the probe records under."""
    assert ctx.max_body_size is not None
    body = b"z" * (ctx.max_body_size + (1 if framing == "length" else 65536))
    target = target or ctx.target
    token = ctx.token()
    path = f"/limit/{token}"
    if framing == "gzip":
        body = gzip.compress(body)
        raw = request_bytes(target, "POST", path, [("Content-Type", "application/octet-stream"),
                                                   ("Content-Encoding", "gzip")], body)
    elif framing == "length":
        raw = request_bytes(target, "POST", path, [("Content-Type", "application/octet-stream")], body)
    else:
        raw = request_bytes(target, "POST", path, [("Content-Type", "application/octet-stream"),
                                                   ("Transfer-Encoding", "chunked")],
                            chunked(*(body[i : i + 65536] for i in range(0, len(body), 65536))))
    with target.connect() as conn:
        conn.try_send(raw)  # the server may answer and close before it has all of it
        response = conn.read_response("POST")
    return response, body, token


def _over_limit(ctx: Context, framing: str, target: Target | None = None) -> Outcome:
    response, body, _ = _send_over_limit(ctx, framing, target)
    return _judge_over_limit(ctx, response, body, framing)


def _judge_over_limit(ctx: Context, response: RawResponse | None, body: bytes, framing: str) -> Outcome:
    assert ctx.max_body_size is not None
    if response is None:
        return fail("the connection closed without a response")
    if response.status == 413:
        return ok()
    if response.status == 200:
        report = response.json()
        if report.get("blocked"):
            return fail("the read blocked")
        read = report.get("value", 0)
        if framing == "gzip" and read == len(body):
            return na("the server passes encoded request bodies through as sent")
        if read > ctx.max_body_size:
            return fail(f"the application read {read} bytes, over the limit of {ctx.max_body_size}")
        return fail(f"the read ended after {read} bytes without an error, like a complete body")
    return fail(f"answered {response.status}, expected 413")


@check("limit-declared", "App. A", "a body declared over the limit is refused with 413, the application not called",
       group="limit")
def check_limit_declared(ctx: Context) -> Outcome:
    if ctx.max_body_size is None:
        return na("not checked: give --max-body-size")
    response, body, token = _send_over_limit(ctx, "length")
    outcome = _judge_over_limit(ctx, response, body, "length")
    if outcome.result != PASS:
        return outcome
    if ctx.record(token):
        return fail("answered 413, but only after the application was called and its read crossed the limit")
    ctx.require_records()
    return outcome


@check("limit-streamed", "§4", "a streamed body crossing the limit ends in 413, never a truncated body", group="limit")
def check_limit_streamed(ctx: Context) -> Outcome:
    if ctx.max_body_size is None:
        return na("not checked: give --max-body-size")
    return _over_limit(ctx, "chunked")


@check("limit-efbig", "§4", "a streamed body crossing the limit raises an `OSError` with `errno.EFBIG`, "
       "not a `ConnectionError`", group="limit")
def check_limit_efbig(ctx: Context) -> Outcome:
    if ctx.max_body_size is None:
        return na("not checked: give --max-body-size")
    target = ctx.target
    response, _, token = _send_over_limit(ctx, "chunked")
    # The probe records before it re-raises, so the record is there once the
    # server answered; a front end may answer first, hence the short wait.
    record = wait_for(lambda: (r := ctx.record(token, target)) and "outcome" in r and r, RECORD_WAIT / 4)
    if not record:
        ctx.require_records(target)
        answer = f"answered {response.status}" if response else "closed the connection without a response"
        return na(f"the application was never called with the body over the limit, no exception to judge "
                  f"(the server, or a front end before it, {answer})")
    if record["outcome"] != "error":
        return fail(f"no exception: the read {'blocked' if record['outcome'] == 'blocked' else 'returned'} "
                    f"(see limit-streamed)")
    if not record.get("oserror"):
        return fail(f"the read raised {_classes(record)}, not an OSError")
    if record.get("connection_error"):
        return fail(f"the read raised {_classes(record)}, a ConnectionError (the sign of a client gone)")
    if record.get("errno") != errno.EFBIG:
        code = record.get("errno")
        return fail(f"the read raised {_classes(record)} with errno "
                    f"{errno.errorcode.get(code, code) if isinstance(code, int) else code!r}, not EFBIG")
    return ok()


@check("limit-decoded", "App. A", "a body the server decodes is bounded after decoding (413)", group="limit")
def check_limit_decoded(ctx: Context) -> Outcome:
    if ctx.max_body_size is None:
        return na("not checked: give --max-body-size")
    return _over_limit(ctx, "gzip")


# ============================================================ compatibility mode (App. B)


@check("buffered-length", "App. B", "compatibility mode: a chunked body arrives with its exact `CONTENT_LENGTH`",
       group="buffered")
def check_buffered_length(ctx: Context) -> Outcome:
    if ctx.buffered is None:
        return na("not checked: give --buffered-url")
    target = ctx.buffered
    raw = request_bytes(target, "POST", "/read/read-n",
                        [("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")],
                        chunked(BODY[:10], BODY[10:]))
    with target.connect() as conn:
        conn.try_send(raw)
        response = conn.read_response("POST")
    if response is None or response.status != 200:
        return fail(f"a chunked request was answered {response.status if response else 'with a close'}")
    report = response.json()
    if report.get("content_length") != str(len(BODY)):
        return fail(f"CONTENT_LENGTH for a {len(BODY)}-byte chunked body is {report.get('content_length')!r}")
    if report.get("blocked") or "".join(report.get("value", [])) != BODY.decode():
        return fail("read(n) did not return the body")
    return ok()


@deferred("buffered-truncated", "App. B", "compatibility mode: a body cut short never reaches the application",
          group="buffered")
class CheckBufferedTruncated:
    @staticmethod
    def start(ctx: Context) -> Any:
        if ctx.buffered is None:
            return None
        return _start_cut_short(ctx, "chunked", ctx.buffered)

    @staticmethod
    def finish(ctx: Context, state: Any) -> Outcome:
        if state is None:
            return na("not checked: give --buffered-url")
        record, _ = _cut_short_record(ctx, state)
        if record:
            return fail("the application was called with a body the client never finished")
        return ok()


@check("buffered-limit", "App. B", "compatibility mode: a body over the limit is refused (413), the application not called",
       group="buffered")
def check_buffered_limit(ctx: Context) -> Outcome:
    if ctx.buffered is None or ctx.max_body_size is None:
        return na("not checked: give --buffered-url and --max-body-size")
    response, body, token = _send_over_limit(ctx, "chunked", ctx.buffered)
    outcome = _judge_over_limit(ctx, response, body, "chunked")
    if outcome.result != PASS:
        return outcome
    if ctx.record(token, ctx.buffered):
        return fail("answered 413, but only after the application was called and its read crossed the limit "
                    "(the body was streamed, not read whole first)")
    ctx.require_records(ctx.buffered)
    return outcome


# ================================================================ file_wrapper (§5, §6)


def _without_file_wrapper(ctx: Context) -> Outcome | None:
    """n/a for a server without ``wsgi.file_wrapper``, which stays optional
    (§5, "when present"; PEP 3333): an application then returns the reference
    class, which the server sends as any iterable (§8)."""
    if not ctx.environ().get("file_wrapper", {}).get("present"):
        return na("the server has no wsgi.file_wrapper (optional)")
    return None


@check("file-wrapper-class", "§5", "`wsgi.file_wrapper` is a subclassable class; `close()` is a method")
def check_file_wrapper_class(ctx: Context) -> Outcome:
    if (absent := _without_file_wrapper(ctx)) is not None:
        return absent
    info = ctx.environ()["file_wrapper"]
    if not info.get("is_class"):
        return fail(f"wsgi.file_wrapper is not a class ({info.get('name')})")
    if not info.get("subclassable"):
        return fail(f"{info['name']} cannot be subclassed")
    if "instantiation_error" in info:
        return fail(f"{info['name']}(filelike, blksize) raised {info['instantiation_error'].split(':')[0]}")
    if not info.get("keeps_attributes"):
        return fail(f"{info['name']} does not keep .filelike and .blksize")
    if not info.get("close_is_method"):
        return fail(f"{info['name']} assigns close on the instance, hiding a subclass's close()")
    if not info.get("close_closes_file"):
        return fail(f"{info['name']}.close() does not close the file")
    return ok()


def _file(ctx: Context, query: str, pipelined: bool = False,
          method: str = "GET") -> tuple[RawResponse | None, RawResponse | bool | None, bytes]:
    target = ctx.target
    with target.connect() as conn:
        data = request_bytes(target, method, f"/file?{query}")
        if pipelined:
            data += request_bytes(target, "GET", "/")
        conn.try_send(data)
        first = conn.read_response(method)
        second: RawResponse | bool | None = None
        if pipelined and first is not None and not first.incomplete:
            try:
                second = conn.read_response()
            except ValueError:
                second = False  # not a response: bytes past Content-Length
        rest = conn.buf
    return first, second, rest


@check("file-wrapper-subclass", "§5", "a subclass of `wsgi.file_wrapper` is sent as the class's own instances are, "
       "and its `close()` runs once")
def check_file_wrapper_subclass(ctx: Context) -> Outcome:
    if (absent := _without_file_wrapper(ctx)) is not None:
        return absent
    token = ctx.token()
    response, _, _ = _file(ctx, f"size=200000&mode=subclass&token={token}")
    if response is None:
        return fail("the connection closed without a response")
    if response.status != 200:
        return fail(f"answered {response.status}: {response.body[:80]!r}")
    if response.body != pattern(200000):
        return fail(f"sent {len(response.body)} bytes that are not the file")
    record = wait_for(lambda: _closed_or_bypassed(ctx, token), CLOSE_WAIT)
    if not record or not record.get("closed"):
        closed = (record or {}).get("file_closed")
        return fail("the subclass's close() was never called" + (" (the file was closed directly)" if closed else ""))
    # Recognised with isinstance(), not an exact type test: an instance of the
    # subclass is sent the way an instance of the server's own class is, so
    # where the server sends its own without reading them in Python (sendfile,
    # an I/O thread of its own), it sends the subclass's that way too.
    plain = ctx.token()
    response, _, _ = _file(ctx, f"size=200000&token={plain}")
    if response is None or response.status != 200 or response.body != pattern(200000):
        return fail("an instance of the server's own class was not sent "
                    f"({response.status if response else 'closed without a response'})")
    ctx.get("/")  # a later request: any second close() would have happened by now
    record = ctx.record(token) or {}
    if record.get("closed") != 1:
        return fail(f"the subclass's close() ran {record.get('closed')} times")
    own = ctx.record(plain) or {}
    if not own.get("returned"):
        ctx.require_records()
    sub_sites, own_sites = set(record.get("sites", [])), set(own.get("sites", []))
    if ((sub_sites and not own_sites) or (record.get("iterated") and not own.get("iterated"))
            or (not own.get("iterated") and sub_sites != own_sites)):
        return fail(f"a subclass instance is not sent as the server's own class is: the class's file was "
                    f"{_how_sent(own)}, the subclass's {_how_sent(record)} "
                    "(an exact type test instead of isinstance())")
    return ok()


def _how_sent(record: dict[str, Any]) -> str:
    """How the server took the file out of a wrapper, from the probe's record of its reads."""
    if record.get("iterated"):
        return str(record["iterated"])
    if record.get("sites"):
        return "read by " + ", ".join(record["sites"])
    return "not read in Python"


def _closed_or_bypassed(ctx: Context, token: str) -> dict[str, Any] | None:
    """The record once the subclass's close() ran, or once the file was closed without it."""
    record = ctx.record(token) or {}
    if record.get("closed") or (record.get("file_closed") and not record.get("closing")):
        return record
    return None


@check("file-wrapper-close-after-send", "§5", "the file wrapper's `close()` runs after the response is sent, not before")
def check_file_wrapper_close_after_send(ctx: Context) -> Outcome:
    if (absent := _without_file_wrapper(ctx)) is not None:
        return absent
    token = ctx.token()
    size = 16 * 1024 * 1024
    target = ctx.target
    with target.connect(rcvbuf=65536) as conn:
        conn.try_send(request_bytes(target, "GET", f"/file?size={size}&mode=subclass&token={token}"))
        head = conn.read_head()
        if head is None or head.status != 200:
            return fail(f"answered {head.status if head else 'with a close'}")
        conn.receive(65536)
        # The client stops reading; the server cannot have sent 16 MiB yet.
        early = (ctx.record(token) or {}).get("closed", 0)
        response = conn.read_body(head)
    if early:
        return fail("close() ran before the response had been sent")
    if response.incomplete or len(response.body) != size:
        return fail(f"the response ended after {len(response.body)} of the file's {size} bytes "
                    + ("(close() ran while it was being sent)" if (ctx.record(token) or {}).get("closed")
                       else "(incomplete)"))
    record = wait_for(lambda: _closed_or_bypassed(ctx, token), CLOSE_WAIT)
    if not record or not record.get("closed"):
        return fail("close() was not called after the response was sent"
                    + (" (the file was closed directly)" if (record or {}).get("file_closed") else ""))
    return ok()


@check("file-wrapper-close-on-disconnect", "§5", "the file wrapper's `close()` runs when the client goes away mid-file")
def check_file_wrapper_close_on_disconnect(ctx: Context) -> Outcome:
    if (absent := _without_file_wrapper(ctx)) is not None:
        return absent
    token = ctx.token()
    target = ctx.target
    with target.connect(rcvbuf=65536) as conn:
        conn.try_send(request_bytes(target, "GET", f"/file?size={16 * 1024 * 1024}&mode=subclass&token={token}"))
        head = conn.read_head()
        if head is None or head.status != 200:
            return fail(f"answered {head.status if head else 'with a close'}")
        conn.read_some(65536)
        conn.abort()
    record = wait_for(lambda: _closed_or_bypassed(ctx, token), CLOSE_WAIT)
    if not record or not record.get("closed"):
        return fail("close() was not called after the client went away"
                    + (" (the file was closed directly)" if (record or {}).get("file_closed") else ""))
    ctx.get("/")
    closed = (ctx.record(token) or {}).get("closed")
    return ok() if closed == 1 else fail(f"close() ran {closed} times")


@check("file-wrapper-position", "§6", "a wrapped file is sent from its current position (`tell()`)")
def check_file_wrapper_position(ctx: Context) -> Outcome:
    if (absent := _without_file_wrapper(ctx)) is not None:
        return absent
    response, _, _ = _file(ctx, "size=300000&skip=1000")
    if response is None or response.status != 200:
        return fail(f"answered {response.status if response else 'with a close'}")
    if response.body == pattern(299000, 1000):
        return ok()
    if response.body[:100] == pattern(100):
        return fail("the file was sent from its start, not from tell()")
    return fail(f"sent {len(response.body)} bytes that are not the file from tell()")


@check("file-wrapper-length", "§6", "a wrapped file is sent up to `Content-Length`, never more")
def check_file_wrapper_length(ctx: Context) -> Outcome:
    if (absent := _without_file_wrapper(ctx)) is not None:
        return absent
    response, second, rest = _file(ctx, "size=300000&declared=5000", pipelined=True)
    if response is None or response.status != 200:
        return fail(f"answered {response.status if response else 'with a close'}")
    if response.body != pattern(5000):
        return fail(f"the first {len(response.body)} bytes are not the file")
    if second is False or (second is None and rest):
        return fail("bytes past Content-Length were sent")
    if isinstance(second, RawResponse) and second.status != 200:
        return fail(f"bytes past Content-Length were sent (the next response was read as {second.status})")
    return ok()


@check("file-wrapper-short", "§8", "a wrapped file shorter than `Content-Length` makes the server close the connection")
def check_file_wrapper_short(ctx: Context) -> Outcome:
    if (absent := _without_file_wrapper(ctx)) is not None:
        return absent
    token = ctx.token()
    response, _, _ = _file(ctx, f"size=3000&declared=5000&token={token}", pipelined=True)
    return _judge_short(ctx, response, declared=5000, produced=3000, token=token)


def _judge_short(ctx: Context, response: RawResponse | None, declared: int, produced: int, token: str) -> Outcome:
    if response is None or response.status != 200:
        # Refusing before sending is not an incomplete body that looks whole,
        # but only if it is the short response being refused: the probe must
        # have returned it (a probe that failed answers 500 too).
        if not (ctx.record(token) or {}).get("returned"):
            ctx.require_records()
            error = ""
            if response is not None and response.header("content-type") == "application/json":
                error = ": " + str(response.json().get("error", ""))[:100]
            return fail(f"the probe application never returned its response "
                        f"({response.status if response else 'closed without a response'}{error})")
        if response is None:
            return ok("closed before the response head")
        return ok(f"answered {response.status}")  # refused before sending: not an incomplete body
    if response.header("content-length") != str(declared):
        return fail(f"Content-Length was changed to {response.header('content-length')} "
                    "instead of the connection being closed")
    if response.body[:produced] != pattern(produced):
        return fail("the body does not match")
    if len(response.body) > produced:
        return fail("the connection stayed open: the next response was read as the rest of the body")
    return ok()  # closed after the bytes there were


@check("file-wrapper-fast-path", "—", "a file wrapper over a regular file is not iterated in Python", group="info")
def check_file_wrapper_fast_path(ctx: Context) -> Outcome:
    if (absent := _without_file_wrapper(ctx)) is not None:
        return absent
    token = ctx.token()
    response, _, _ = _file(ctx, f"size=200000&token={token}")
    if response is None or response.status != 200 or response.body != pattern(200000):
        return fail("the file was not sent")
    ctx.get("/")
    record = ctx.record(token) or {}
    if not record.get("returned"):
        ctx.require_records()
        return fail("the probe never returned the file wrapper")
    if record.get("iterated"):
        return fail(f"the file was {record['iterated']}")
    return ok(f"sent by the server's own path (the file was {_how_sent(record)})")


# =============================================================== Content-Length (§8)


def _response_check(ctx: Context, declared: int, produce: int,
                    ) -> list[tuple[str, RawResponse | None, RawResponse | bool | None, bytes, str]]:
    """GET /response through the iterable and through write(), each with a request pipelined
    behind it. The second item is the next response, None if the connection closed, or False
    if what followed was not a response (bytes past Content-Length); the last is the token
    under which the probe recorded that it returned its response."""
    outcomes: list[tuple[str, RawResponse | None, RawResponse | bool | None, bytes, str]] = []
    for via in ("iter", "write"):
        target = ctx.target
        token = ctx.token()
        with target.connect() as conn:
            conn.try_send(request_bytes(target, "GET", f"/response?declared={declared}&produce={produce}&via={via}"
                                                       f"&token={token}")
                      + request_bytes(target, "GET", "/"))
            first = conn.read_response()
            second: RawResponse | bool | None = None
            if first is not None and not first.incomplete:
                try:
                    second = conn.read_response()
                except ValueError:
                    second = False
            rest = conn.buf
        outcomes.append((via, first, second, rest, token))
    return outcomes


@check("response-surplus", "§8", "never more body bytes than `Content-Length` (iterable and `write()`)")
def check_response_surplus(ctx: Context) -> Outcome:
    for via, first, second, rest, _ in _response_check(ctx, declared=10, produce=30):
        where = "write()" if via == "write" else "the iterable"
        if first is None or first.status != 200:
            return fail(f"{where}: answered {first.status if first else 'with a close'}")
        if first.body != pattern(10):
            return fail(f"{where}: the body is not the first 10 bytes")
        if second is False or (second is None and rest) or (isinstance(second, RawResponse) and second.status != 200):
            return fail(f"{where}: the bytes past Content-Length were sent")
    return ok()


@check("response-short", "§8", "fewer body bytes than `Content-Length` close the connection (iterable and `write()`)")
def check_response_short(ctx: Context) -> Outcome:
    for via, first, _, _, token in _response_check(ctx, declared=30, produce=10):
        outcome = _judge_short(ctx, first, declared=30, produced=10, token=token)
        if outcome.result != PASS:
            return fail(f"{'write()' if via == 'write' else 'the iterable'}: {outcome.detail}")
    return ok()


# ======================================================= PEP 3333 rules still held (§10)


def _close_count(ctx: Context, token: str) -> Any:
    """How many times the probe saw ``close()`` for ``token`` (None: not yet)."""
    return (ctx.record(token) or {}).get("closed")


@check("close-called", "§10", "`close()` on the response is called once: at the end, on error, on disconnect")
def check_close_called(ctx: Context) -> Outcome:
    tokens = {}
    for mode in ("normal", "error"):
        tokens[mode] = token = ctx.token()
        try:
            with ctx.target.connect() as conn:
                conn.try_send(request_bytes(ctx.target, "GET", f"/close/{mode}/{token}"))
                conn.read_response()
        except (TimeoutError, ValueError, OSError):
            pass  # an aborted response is expected for "error"
    tokens["disconnect"] = token = ctx.token()
    with ctx.target.connect(rcvbuf=65536) as conn:
        conn.try_send(request_bytes(ctx.target, "GET", f"/close/abandon/{token}"))
        conn.read_head()
        conn.read_some(100000)
        conn.abort()
    for mode, token in tokens.items():
        closed = wait_for(functools.partial(_close_count, ctx, token), CLOSE_WAIT)
        if not closed:
            return fail(f"close() was not called ({mode})")
    ctx.get("/")
    for mode, token in tokens.items():
        count = _close_count(ctx, token)
        if count != 1:
            return fail(f"close() was called {count} times ({mode})")
    return ok()


@check("write-callable", "§10", "bytes given to `write()` come before the iterable's")
def check_write_callable(ctx: Context) -> Outcome:
    response = ctx.get("/write")
    if response.status != 200 or response.body != b"first-second":
        return fail(f"answered {response.status} {response.body[:40]!r}")
    return ok()


@check("exc-info", "§10", "`start_response(..., exc_info)` replaces the head before it is sent, re-raises after")
def check_exc_info(ctx: Context) -> Outcome:
    response = ctx.get("/exc-info/before")
    if response.status != 500 or response.body != b"replaced":
        return fail(f"before the head was sent: answered {response.status} {response.body[:40]!r}")
    token = ctx.token()
    try:
        with ctx.target.connect() as conn:
            conn.try_send(request_bytes(ctx.target, "GET", f"/exc-info/after/{token}"))
            conn.read_response()
    except (TimeoutError, ValueError, OSError):
        pass
    record = wait_for(lambda: ctx.record(token), CLOSE_WAIT)
    if not record or not record.get("reraised"):
        return fail("after the head was sent: start_response() did not re-raise the exception")
    return ok()


@check("repeated-headers", "§10", "repeated request headers are joined with a comma")
def check_repeated_headers(ctx: Context) -> Outcome:
    value = ctx.get("/environ", [("X-Probe-Multi", "a"), ("X-Probe-Multi", "b")]).json().get("HTTP_X_PROBE_MULTI")
    if value in ("a, b", "a,b"):
        return ok()
    return fail(f"two X-Probe-Multi fields became {value!r}")


@check("path-info", "§10", "`PATH_INFO` is percent-decoded (latin-1 code points), `QUERY_STRING` is not")
def check_path_info(ctx: Context) -> Outcome:
    env = ctx.get("/environ/caf%C3%A9%20x?q=%20a&b=%C3%A9").json()
    path, query = env.get("PATH_INFO", ""), env.get("QUERY_STRING")
    if not path.endswith("/environ/caf\u00c3\u00a9 x"):
        return fail(f"PATH_INFO for /environ/caf%C3%A9%20x is {path!r}")
    if query != "q=%20a&b=%C3%A9":
        return fail(f"QUERY_STRING is {query!r}, expected it as sent")
    return ok()


# =========================================================================== HTTP/2 (App. C)


def _h2(ctx: Context) -> Any:
    if "h2" not in ctx._cache:
        from propylon.wsgi11.conformance import http2  # here: needs the optional h2 package

        ctx._cache["h2"] = http2.detect(ctx.target)
    return ctx._cache["h2"]


def _http2_check(func: Callable[[Context, Any], Outcome]) -> Callable[[Context], Outcome]:
    def run(ctx: Context) -> Outcome:
        try:
            client = _h2(ctx)
        except ImportError:
            return na("not checked: the h2 package is not installed")
        if client is None:
            return na("the server does not speak cleartext HTTP/2")
        return func(ctx, client)

    return run


def _register_http2(id: str, title: str, func: Callable[[Context, Any], Outcome], section: str = "App. C") -> None:
    CHECKS.append(Check(id, section, title, "http2", _http2_check(func)))


def _http2_environ(ctx: Context, client: Any) -> Outcome:
    env = client.request("GET", "/environ").json()
    if env.get("SERVER_PROTOCOL") != "HTTP/2.0":
        return fail(f"SERVER_PROTOCOL is {env.get('SERVER_PROTOCOL')!r}")
    if env.get("HTTP_HOST") != ctx.target.authority:
        return fail(f"HTTP_HOST is {env.get('HTTP_HOST')!r}, not the :authority")
    if any(key.startswith(("HTTP__", "HTTP_:")) for key in env.get("keys", [])):
        return fail("pseudo-headers appear as HTTP_ keys")
    return ok()


def _http2_cookie(ctx: Context, client: Any) -> Outcome:
    env = client.request("GET", "/environ", headers=[("cookie", "a=1"), ("cookie", "b=2")]).json()
    return ok() if env.get("HTTP_COOKIE") == "a=1; b=2" else fail(f"split cookies became {env.get('HTTP_COOKIE')!r}")


def _http2_body(ctx: Context, client: Any) -> Outcome:
    response = client.request("POST", "/read/read-all", body=[BODY[:10], BODY[10:]])
    report = response.json()
    if report.get("content_length") is not None:
        return fail(f"CONTENT_LENGTH for a body without content-length is {report['content_length']!r}")
    return ok() if report.get("value") == [BODY.decode()] else fail("read() did not return the body")


def _http2_short(ctx: Context, client: Any) -> Outcome:
    response = client.request("GET", "/response?declared=30&produce=10")
    if response.reset:
        return ok()
    return fail(f"the stream ended normally after {len(response.body)} of 30 bytes instead of being reset")


def _http2_truncated(ctx: Context, client: Any) -> Outcome:
    token = ctx.token()
    client.cancel_mid_body(f"/record/{token}", declared=100000, sent=1000)
    record = wait_for(lambda: (r := ctx.record(token)) and "outcome" in r and r, RECORD_WAIT) or ctx.record(token)
    if not record:
        ctx.require_records()
        return ok("the application was never called with the incomplete body")
    if "outcome" not in record:
        return fail("a stream reset mid-body: the application's read neither returned nor raised")
    if record["outcome"] == "error" and record.get("oserror"):
        if not record.get("connection_error"):
            return fail(f"a stream reset mid-body: the read raised {_classes(record)}, which is not a ConnectionError")
        return ok()
    return fail(f"a stream reset mid-body gave: {record['outcome']} after {record.get('bytes')} bytes")


_register_http2("http2-environ", "HTTP/2 requests get the same environ (`SERVER_PROTOCOL`, `HTTP_HOST`)", _http2_environ)
_register_http2("http2-cookie", "HTTP/2 cookie fields are joined with `\"; \"`", _http2_cookie)
_register_http2("http2-body", "an HTTP/2 body without `content-length` is streamed, `CONTENT_LENGTH` absent", _http2_body, "§3")
_register_http2("http2-short", "an HTTP/2 response shorter than `Content-Length` is reset", _http2_short, "§8")
_register_http2("http2-truncated", "an HTTP/2 stream reset mid-body raises `OSError`, a `ConnectionError`",
                _http2_truncated, "§4")


# ======================================================================== derived (§2)


def _derived_honest(results: dict[str, Outcome]) -> Outcome:
    """§2: a server that sets wsgi.input_terminated, to any value, keeps the
    key's promise: read(size), readline(), readlines() and iteration end at
    the body's end (nothing of read() without a size, nor of section 4)."""
    flag = results["input-terminated-flag"]
    if flag.detail == ABSENT:
        return ok("wsgi.input_terminated is not set")
    broken = [cid for cid in INPUT_CHECKS if results[cid].result == FAIL]
    if broken:
        return fail(f"wsgi.input_terminated is set, but {', '.join(broken)} failed")
    return ok()


#: What the key promises, as the servers that introduced it keep it.
INPUT_CHECKS = ("read-size", "readline", "readlines", "iteration")


def _derived(ctx: Context) -> Outcome:
    raise AssertionError("derived from the other checks' outcomes, not run")


#: Checks judged from the outcomes of others, after them.
DERIVED: dict[str, Callable[[dict[str, Outcome]], Outcome]] = {"input-terminated-honest": _derived_honest}
#: The checks each derived check is judged from (run with it, whatever was selected).
DERIVED_FROM: dict[str, tuple[str, ...]] = {"input-terminated-honest": ("input-terminated-flag", *INPUT_CHECKS)}
CHECKS.append(Check("input-terminated-honest", "§2",
                    "`wsgi.input_terminated` is only set where the input is terminated", "core", _derived))


# =========================================================================== running


def run(ctx: Context, only: list[str] | None = None, parallel: int = 4,
        timings: dict[str, float] | None = None) -> dict[str, Outcome]:
    """Run every check (or those in ``only``); return outcomes by check id, in CHECKS order.

    Checks run ``parallel`` at a time (they use separate connections and
    tokens). Deferred checks start first, all at once, so that their waiting
    overlaps the rest. ``timings``, if given, receives the seconds each check
    took (for tuning the kit; never part of a report).
    """
    selected = [c for c in CHECKS if only is None or c.id in only]
    needed = {c.id for c in selected} | {dep for c in selected for dep in DERIVED_FROM.get(c.id, ())}
    running = [c for c in CHECKS if c.id in needed]

    def attempt(check: Check, step: Callable[[], Any]) -> Any:
        start = time.monotonic()
        try:
            return step()
        except Exception as exc:  # noqa: BLE001 - a check that cannot complete is a failure
            return fail(f"the check could not complete: {type(exc).__name__}: {_first_line(exc)}")
        finally:
            if timings is not None:
                timings[check.id] = timings.get(check.id, 0.0) + time.monotonic() - start

    later = [c for c in running if c.finish is not None]
    plain = [c for c in running if c.finish is None and c.id not in DERIVED]
    with ThreadPoolExecutor(max_workers=max(1, parallel, len(later))) as pool:
        starting = {c.id: pool.submit(attempt, c, functools.partial(c.run, ctx)) for c in later}
        states = {cid: future.result() for cid, future in starting.items()}
    results: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {c.id: pool.submit(attempt, c, functools.partial(c.run, ctx)) for c in plain}
        results.update({cid: future.result() for cid, future in futures.items()})
    for c in later:
        state = states[c.id]
        assert c.finish is not None
        results[c.id] = state if isinstance(state, Outcome) else attempt(c, functools.partial(c.finish, ctx, state))
    for cid, derive in DERIVED.items():
        if cid in needed:
            results[cid] = derive(results)
    return {c.id: results[c.id] for c in selected}


def _tuple(value: Any) -> str:
    return f"({', '.join(map(str, value))})" if isinstance(value, list) else repr(value)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:120]

