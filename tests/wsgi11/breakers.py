"""Deliberately broken "servers", to prove that checks which every real server
passes can still fail.

Each breaker is WSGI middleware placed between the server and the probe
application that takes away one guarantee, the way a faulty server would
(``tests.wsgi11.apps`` mounts them at ``/break-CHECK``). Run on Propylon,
they cover the HTTP/2 checks too. ``unread-body`` needs a faulty server
rather than a faulty layer: tests/wsgi11/wsgiref_server.py ``--keep-alive``
serves several requests per connection without discarding unread bodies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def drops_write_data(app: App) -> App:
    """write() loses its bytes (``write-callable``)."""

    def broken(environ, start_response):
        def start(status, headers, exc_info=None):
            start_response(status, headers, exc_info) if exc_info else start_response(status, headers)
            return lambda data: None

        return app(environ, start)

    return broken


def never_closes(app: App) -> App:
    """The response's close() is never called (``close-called``)."""

    def broken(environ, start_response):
        result = app(environ, start_response)
        return (chunk for chunk in result)  # a generator's close() is not the result's

    return broken


def ignores_exc_info(app: App) -> App:
    """start_response() with exc_info neither replaces the head nor re-raises (``exc-info``)."""

    def broken(environ, start_response):
        state = {"started": False}

        def start(status, headers, exc_info=None):
            if state["started"]:
                return lambda data: None
            state["started"] = True
            return start_response(status, headers)

        return app(environ, start)

    return broken


def keeps_last_header(app: App) -> App:
    """Repeated request headers keep only their last value (``repeated-headers``)."""

    def broken(environ, start_response):
        if "HTTP_X_PROBE_MULTI" in environ:
            environ["HTTP_X_PROBE_MULTI"] = environ["HTTP_X_PROBE_MULTI"].split(",")[-1].strip()
        return app(environ, start_response)

    return broken


def says_http11(app: App) -> App:
    """HTTP/2 requests claim SERVER_PROTOCOL HTTP/1.1 (``http2-environ``)."""

    def broken(environ, start_response):
        environ["SERVER_PROTOCOL"] = "HTTP/1.1"
        return app(environ, start_response)

    return broken


def joins_cookies_with_commas(app: App) -> App:
    """Cookie fields joined with ", " like other headers (``http2-cookie``)."""

    def broken(environ, start_response):
        if "HTTP_COOKIE" in environ:
            environ["HTTP_COOKIE"] = environ["HTTP_COOKIE"].replace("; ", ", ")
        return app(environ, start_response)

    return broken


def guesses_length_zero(app: App) -> App:
    """A body of unknown length gets CONTENT_LENGTH "0" (``http2-body``)."""

    def broken(environ, start_response):
        environ.setdefault("CONTENT_LENGTH", "0")
        return app(environ, start_response)

    return broken


def drops_content_length(app: App) -> App:
    """The response's Content-Length is dropped, so a short body looks complete (``http2-short``)."""

    def broken(environ, start_response):
        def start(status, headers, exc_info=None):
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return app(environ, start)

    return broken


class _SilentEnd:
    """A wsgi.input whose errors become a quiet end of body."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, *args: Any) -> bytes:
        try:
            return self._stream.read(*args)
        except OSError:
            return b""


def hides_truncation(app: App) -> App:
    """A body cut short ends like a complete one (``http2-truncated``)."""

    def broken(environ, start_response):
        environ["wsgi.input"] = _SilentEnd(environ["wsgi.input"])
        return app(environ, start_response)

    return broken


def keeps_content_encoding(app: App) -> App:
    """A decoded body keeps HTTP_CONTENT_ENCODING, inviting a second decoding (``decoded-body``)."""

    def broken(environ, start_response):
        environ.setdefault("HTTP_CONTENT_ENCODING", "gzip")
        return app(environ, start_response)

    return broken


def quotes_path_info(app: App) -> App:
    """PATH_INFO left percent-encoded (``path-info``)."""

    def broken(environ, start_response):
        environ["PATH_INFO"] = quote(environ.get("PATH_INFO", ""), encoding="latin-1")
        return app(environ, start_response)

    return broken


class _Iterated:
    """A response the server can only iterate (its close() still reaches the result)."""

    def __init__(self, result: Any) -> None:
        self._result = result

    def __iter__(self):
        return iter(self._result)

    def close(self) -> None:
        self._result.close()


def exact_type_test(app: App) -> App:
    """File wrappers recognised with an exact type test: a subclass instance is
    iterated in Python, not sent the server's way (``file-wrapper-subclass``)."""

    def broken(environ, start_response):
        result = app(environ, start_response)
        cls = environ.get("wsgi.file_wrapper")
        if isinstance(cls, type) and isinstance(result, cls) and type(result) is not cls:
            return _Iterated(result)
        return result

    return broken


def reads_past_the_end(app: App) -> App:
    """``wsgi.input_terminated`` is set, but ``readline()`` returns a line
    after the body's end (``input-terminated-honest``)."""

    class PastTheEnd:
        def __init__(self, stream: Any) -> None:
            self._stream, self._extra = stream, b"past the end\n"

        def read(self, *args: Any) -> bytes:
            return self._stream.read(*args)

        def readline(self, *args: Any) -> bytes:
            line = self._stream.readline(*args)
            if not line:
                line, self._extra = self._extra, b""
            return line

        def readlines(self, *args: Any) -> list[bytes]:
            return self._stream.readlines(*args)

        def __iter__(self) -> Any:
            return iter(self._stream)

    def broken(environ, start_response):
        environ["wsgi.input"] = PastTheEnd(environ["wsgi.input"])
        environ["wsgi.input_terminated"] = True
        return app(environ, start_response)

    return broken


class _ReadsTheFile:
    """A file wrapper's file read in Python by the server, in ``blksize`` blocks,
    without the wrapper's ``__next__`` (PEP 3333's ``iter(lambda: ...)`` fallback)."""

    def __init__(self, wrapper: Any) -> None:
        self._wrapper = wrapper

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self._wrapper.filelike.read(self._wrapper.blksize), b"")

    def close(self) -> None:
        self._wrapper.close()


def exact_type_test_reading(app: App) -> App:
    """File wrappers recognised with an exact type test (waitress 3.0.0 tests
    ``app_iter.__class__ is ReadOnlyFileBasedBuffer``): a subclass
    instance's file is read in Python with ``iter(lambda: filelike.read(n), b"")``
    instead of being sent the server's way (``file-wrapper-subclass``; the old
    probe saw only reads made inside a method named ``__next__``)."""

    def broken(environ, start_response):
        result = app(environ, start_response)
        cls = environ.get("wsgi.file_wrapper")
        if isinstance(cls, type) and isinstance(result, cls) and type(result) is not cls:
            return _ReadsTheFile(result)
        return result

    return broken


class _NextByAnotherName:
    """A server's buffer iterated through a method named ``next``, assigned to
    ``__next__``, as waitress's ReadOnlyFileBasedBuffer is."""

    def __init__(self, wrapper: Any) -> None:
        self._wrapper = wrapper

    def __iter__(self) -> _NextByAnotherName:
        return self

    def next(self) -> bytes:
        block = self._wrapper.filelike.read(self._wrapper.blksize)
        if not block:
            raise StopIteration
        return block

    __next__ = next

    def close(self) -> None:
        self._wrapper.close()


def exact_type_test_aliased(app: App) -> App:
    """What waitress 3.0.0 does: an exact type test, and the subclass
    instance's file read by a ``next`` method assigned to ``__next__``
    (``file-wrapper-subclass``: the old probe looked for a frame named ``__next__``)."""

    def broken(environ, start_response):
        result = app(environ, start_response)
        cls = environ.get("wsgi.file_wrapper")
        if isinstance(cls, type) and isinstance(result, cls) and type(result) is not cls:
            return _NextByAnotherName(result)
        return result

    return broken


def _read_loop(wrapper: Any) -> Iterator[bytes]:
    """A server's own loop over a wrapper's file, outside any method of the wrapper."""
    try:
        yield from iter(lambda: wrapper.filelike.read(wrapper.blksize), b"")
    finally:
        wrapper.close()


def exact_type_test_looping(app: App) -> App:
    """Like :func:`exact_type_test_reading`, with the server's read loop in a
    function of its own rather than in an iterable's ``__iter__``
    (``file-wrapper-subclass``: the file is read from another place than the
    class's file is)."""

    def broken(environ, start_response):
        result = app(environ, start_response)
        cls = environ.get("wsgi.file_wrapper")
        if isinstance(cls, type) and isinstance(result, cls) and type(result) is not cls:
            return _read_loop(result)
        return result

    return broken


class _PlainErrors:
    """A wsgi.input whose errors lose their kind: every ``OSError`` becomes a plain one."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, *args: Any) -> bytes:
        try:
            return self._stream.read(*args)
        except OSError as exc:
            raise OSError(str(exc)) from None


def plain_oserror(app: App) -> App:
    """A body cut short, or over the limit, raises a plain ``OSError``: neither a
    ``ConnectionError`` nor ``errno.EFBIG`` (``truncated-connection-error``,
    ``limit-efbig``, ``http2-truncated``; the old ``truncated-*`` and
    ``http2-truncated`` passed it)."""

    def broken(environ, start_response):
        environ["wsgi.input"] = _PlainErrors(environ["wsgi.input"])
        return app(environ, start_response)

    return broken


class _StopsEarly:
    """The response's iterable, whose ``close()`` is called (once) three quarters
    into the file, where the response then ends."""

    def __init__(self, result: Any, cut: int) -> None:
        self._result, self._cut = result, cut
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for chunk in self._result:
            yield chunk
            sent += len(chunk)
            if sent >= self._cut:
                self.close()
                return

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._result.close()


def closes_before_the_end(app: App) -> App:
    """A file wrapper's ``close()`` runs while the file is being sent, and the
    response stops there short of its Content-Length (``file-wrapper-close-after-send``;
    the old check read whatever came until the close and did not count it)."""

    def broken(environ, start_response):
        size = int(parse_qs(environ.get("QUERY_STRING", "")).get("size", ["0"])[0])

        def start(status, headers, exc_info=None):
            if size and not any(k.lower() == "content-length" for k, _ in headers):
                headers = [*headers, ("Content-Length", str(size))]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        result = app(environ, start)
        return _StopsEarly(result, size * 3 // 4) if size else result

    return broken


def drops_file_wrapper(app: App) -> App:
    """``wsgi.file_wrapper`` is offered, but gone when the probe sends a file,
    which it then cannot do: it answers 500 (``file-wrapper-short``; the old
    check took any non-200 answer for a server refusing the short response)."""

    def broken(environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/file"):
            environ.pop("wsgi.file_wrapper", None)
        return app(environ, start_response)

    return broken


def streams_the_body(app: App) -> App:
    """Mounted where the compatibility mode should be: the body is streamed, so a
    body over the limit reaches the application, whose read raises, and only then
    becomes a 413 (``buffered-limit``; the old check saw the 413 alone)."""
    return app


def refuses_late(app: App) -> App:
    """A declared length over the limit is not refused up front: the application
    is called, and the 413 comes when its read crosses the limit (the
    middleware, shown the body as one of unknown length). ``limit-declared``;
    the old check saw the 413 alone. Needs a server without a limit of its own
    (``UNBOUNDED``)."""
    bounded: list[App] = []

    def broken(environ, start_response):
        if not bounded:  # here: tests.wsgi11.apps (the limit) imports this module
            from propylon.wsgi11 import WSGI11Middleware
            from tests.wsgi11.apps import LIMIT

            bounded.append(WSGI11Middleware(app, max_body_size=LIMIT))
        environ.pop("CONTENT_LENGTH", None)
        return bounded[0](environ, start_response)

    return broken


class _BlocksOnError:
    """A wsgi.input whose read, when the body fails, blocks instead of raising."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, *args: Any) -> bytes:
        try:
            return self._stream.read(*args)
        except OSError:
            threading.Event().wait(30)
            return b""


def blocks_after_reset(app: App) -> App:
    """A read after the client reset its stream blocks, neither returning nor
    raising (``http2-truncated``; the old check took a record without an outcome
    for an application never called)."""

    def broken(environ, start_response):
        environ["wsgi.input"] = _BlocksOnError(environ["wsgi.input"])
        return app(environ, start_response)

    return broken


#: Check id -> the breaker that makes it fail.
BREAKERS: dict[str, Callable[[App], App]] = {
    "write-callable": drops_write_data,
    "close-called": never_closes,
    "exc-info": ignores_exc_info,
    "repeated-headers": keeps_last_header,
    "http2-environ": says_http11,
    "http2-cookie": joins_cookies_with_commas,
    "http2-body": guesses_length_zero,
    "http2-short": drops_content_length,
    "http2-truncated": hides_truncation,
    "decoded-body": keeps_content_encoding,
    "limit-decoded": hides_truncation,
    "path-info": quotes_path_info,
    "input-terminated-honest": reads_past_the_end,
}

#: Breakers run whatever the real servers do: for checks that real servers
#: already fail for one of their requirements, a breaker for another
#: requirement of the same check that none of them breaks, and for each way a
#: check used to pass a server that breaks its rule. Keyed by the mount name:
#: the check id, or ``CHECK.VARIANT`` for a second breaker of one check.
PARTIAL_BREAKERS: dict[str, Callable[[App], App]] = {
    "file-wrapper-subclass": exact_type_test,
    "file-wrapper-subclass.reads-the-file": exact_type_test_reading,
    "file-wrapper-subclass.server-loop": exact_type_test_looping,
    "file-wrapper-subclass.aliased-next": exact_type_test_aliased,
    "truncated-connection-error": plain_oserror,
    "limit-efbig": plain_oserror,
    "file-wrapper-close-after-send": closes_before_the_end,
    "file-wrapper-short": drops_file_wrapper,
    "buffered-limit": streams_the_body,
    "http2-truncated.blocks": blocks_after_reset,
    "http2-truncated.plain-oserror": plain_oserror,
    "limit-declared": refuses_late,
}

#: Breakers that need a server without a body limit of its own (one with the
#: limit refuses the body before the breaker sees it).
UNBOUNDED = {"limit-declared"}


def breaker_check(name: str) -> str:
    """The check a breaker mounted as ``break-NAME`` makes fail."""
    return name.partition(".")[0]
