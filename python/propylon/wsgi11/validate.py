"""A WSGI 1.1 validator, in the spirit of :mod:`wsgiref.validate`.

``validator(app)`` returns an application that checks both sides of every
call against PEP 3333 and docs/spec/wsgi-1.1.md, and raises
:class:`WSGIViolation` (an ``AssertionError``) at the first breach:

- the **server**'s side: the environ (keys, types, ``wsgi.version == (1, 1)``,
  ``wsgi.input_terminated``, a class-type ``wsgi.file_wrapper`` whose
  ``close()`` is a method, ``CONTENT_LENGTH`` absent or exact), the input
  stream (never past ``CONTENT_LENGTH``, ``b""`` for ever after the end, no
  silent early end, errors that are ``OSError``), and ``close()`` on the
  response called exactly once;
- the **application**'s side: status and headers (no hop-by-hop headers, no
  1xx, a single numeric ``Content-Length``), ``start_response`` called once
  unless with ``exc_info``, ``write()`` and the iterable producing ``bytes``
  that match ``Content-Length``, no ``close()`` on ``wsgi.input``, file
  wrappers over open binary files.

Messages start with ``WSGI 1.1 server:`` or ``WSGI 1.1 application:`` so the
side at fault is plain. Unlike ``wsgiref.validate``, a file wrapper returned
by the application reaches the server as it is, so the server's fast path
is still exercised; and ``read()``, ``read(-1)``, ``read(None)`` are allowed
(section 1).

What it does not do: fix anything (that is :class:`WSGI11Middleware`), or check
what only the client can see (that is the conformance kit).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["WSGIViolation", "validator"]

_STATUS = re.compile(r"\A[2-9][0-9]{2} [\t\x20-\x7e\x80-\xff]*\Z")
_TOKEN = re.compile(r"\A[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_FIELD_VALUE = re.compile(r"\A[\t\x20-\x7e\x80-\xff]*\Z")
#: PEP 3333 "Other HTTP Features"; RFC 9110 §7.6.1 and RFC 9112 §6.1.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
_CGI_KEYS = ("REQUEST_METHOD", "SCRIPT_NAME", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL")
_checked_wrapper_classes: dict[int, type] = {}


class WSGIViolation(AssertionError):
    """A breach of PEP 3333 or WSGI 1.1, by the server or by the application."""


def _server(condition: object, message: str) -> None:
    if not condition:
        raise WSGIViolation(f"WSGI 1.1 server: {message}")


def _app(condition: object, message: str) -> None:
    if not condition:
        raise WSGIViolation(f"WSGI 1.1 application: {message}")


def validator(application: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Wrap ``application``; every call is checked on both sides."""

    def validated(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        _check_environ(environ)
        checked_input = CheckedInput(environ["wsgi.input"], environ.get("CONTENT_LENGTH"))
        environ["wsgi.input"] = checked_input
        response = _ResponseCheck(environ, start_response)
        result = application(environ, response.start_response)
        _app(result is not None, "returned None instead of an iterable of bytes")
        _app(not isinstance(result, (str, bytes)),
             f"returned {type(result).__name__} instead of an iterable of bytes; return [body]")
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            response.check_file_wrapper(result)
            return result  # as it is: the server's isinstance() test and fast path stay under test
        return CheckedIterable(result, response)

    return validated


# ------------------------------------------------------------------- server side


def _check_environ(environ: Any) -> None:
    _server(type(environ) is dict, f"environ must be a dict, got {type(environ).__name__} (PEP 3333)")
    for key in _CGI_KEYS:
        _server(key in environ, f"environ has no {key} (PEP 3333)")
    for key, value in environ.items():
        _server(isinstance(key, str), f"environ key {key!r} is not a str")
        if not key.startswith("wsgi.") and "." not in key:
            _server(type(value) is str, f"environ[{key!r}] is {type(value).__name__}, not str (PEP 3333)")
    for key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
        _server(key not in environ, f"environ has {key}; use {key[5:]} (PEP 3333)")
    for key in ("SCRIPT_NAME", "PATH_INFO"):
        value = environ.get(key, "")
        _server(value == "" or value.startswith("/"), f"{key} {value!r} must be empty or start with '/'")
    _server(environ.get("wsgi.version") == (1, 1) and type(environ.get("wsgi.version")) is tuple,
            f"wsgi.version is {environ.get('wsgi.version')!r}, expected the tuple (1, 1) (section 9)")
    _server(environ.get("wsgi.input_terminated") is True,
            f"wsgi.input_terminated is {environ.get('wsgi.input_terminated', '<absent>')!r}, expected True (section 2)")
    _server(environ.get("wsgi.url_scheme") in ("http", "https"),
            f"wsgi.url_scheme is {environ.get('wsgi.url_scheme')!r}, expected 'http' or 'https'")
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        _server(key in environ, f"environ has no {key} (PEP 3333)")
    for method in ("read", "readline", "readlines", "__iter__"):
        _server(hasattr(environ.get("wsgi.input"), method), f"wsgi.input has no {method}()")
    for method in ("write", "writelines", "flush"):
        _server(hasattr(environ.get("wsgi.errors"), method), f"wsgi.errors has no {method}()")
    length = environ.get("CONTENT_LENGTH")
    _server(length is None or (length.isascii() and length.isdigit()),
            f"CONTENT_LENGTH is {length!r}: it must be the exact length, or absent when unknown (section 3)")
    if "wsgi.file_wrapper" in environ:
        _check_file_wrapper_class(environ["wsgi.file_wrapper"])


def _check_file_wrapper_class(cls: Any) -> None:
    if _checked_wrapper_classes.get(id(cls)) is cls:
        return
    _server(isinstance(cls, type), f"wsgi.file_wrapper is {cls!r}, not a class (section 5)")
    probe = io.BytesIO(b"x")
    wrapper = cls(probe, 4096)
    _server(getattr(wrapper, "filelike", None) is probe and getattr(wrapper, "blksize", None) == 4096,
            f"{cls.__name__}(filelike, blksize) must keep its arguments as .filelike and .blksize (section 5)")
    _server("close" not in getattr(wrapper, "__dict__", {}),
            f"{cls.__name__} assigns close on the instance; it must be a method so subclasses can extend it "
            "(section 5)")
    wrapper.close()
    _server(probe.closed, f"{cls.__name__}.close() did not close the file (section 5)")
    _checked_wrapper_classes[id(cls)] = cls


class CheckedInput:
    """``wsgi.input`` as the application sees it under the validator."""

    def __init__(self, stream: Any, content_length: str | None) -> None:
        self._stream = stream
        self._declared = int(content_length) if content_length else None
        self._consumed = 0
        self._ended = False

    def _call(self, name: str, *args: Any) -> Any:
        _app(all(a is None or type(a) is int for a in args), f"wsgi.input.{name}{args}: the size must be an int")
        try:
            return getattr(self._stream, name)(*args)
        except OSError:
            raise
        except Exception as exc:
            raise WSGIViolation(f"WSGI 1.1 server: wsgi.input.{name}() raised {type(exc).__name__}: {exc}; "
                                "a body that cannot be read must raise an OSError (section 4)") from exc

    def _account(self, name: str, data: object, asked: int | None) -> bytes:
        if type(data) is not bytes:
            raise WSGIViolation(f"WSGI 1.1 server: wsgi.input.{name}() returned {type(data).__name__}, not bytes")
        if asked is not None and asked >= 0:
            _server(len(data) <= asked, f"wsgi.input.{name}({asked}) returned {len(data)} bytes")
        if self._ended:
            _server(data == b"", f"wsgi.input.{name}() returned bytes after the end of the body (section 1)")
        self._consumed += len(data)
        if self._declared is not None:
            _server(self._consumed <= self._declared,
                    f"wsgi.input returned {self._consumed} bytes, more than CONTENT_LENGTH {self._declared} "
                    "(section 1: the input must stop at the end of the body)")
        if data == b"" and (asked is None or asked != 0):
            if self._declared is not None:
                _server(self._consumed == self._declared,
                        f"wsgi.input ended after {self._consumed} of {self._declared} bytes without raising "
                        "an OSError (section 4: a truncated body is an error)")
            self._ended = True
        return data

    def read(self, *args: int | None) -> bytes:
        _app(len(args) <= 1, f"wsgi.input.read() takes at most one argument, got {len(args)}")
        data = self._call("read", *args)
        size = args[0] if args else None
        if size is None or size < 0:
            rest = self._account("read", data, None)
            self._account("read", b"", None)  # read() returns the rest: the body has ended
            return rest
        return self._account("read", data, size)

    def readline(self, size: int | None = -1) -> bytes:
        data = self._call("readline", size) if size not in (None, -1) else self._call("readline")
        return self._account("readline", data, size)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = self._call("readlines", hint) if hint not in (None, -1) else self._call("readlines")
        _server(isinstance(lines, list), f"wsgi.input.readlines() returned {type(lines).__name__}")
        checked = [self._account("readlines", line, None) for line in lines]
        if hint in (None, -1) or not checked:
            self._account("readlines", b"", None)
        return checked

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            yield self._account("__iter__", line, None)
        self._account("__iter__", b"", None)

    def close(self) -> None:
        _app(False, "called wsgi.input.close(); the server owns the input stream (PEP 3333)")


# -------------------------------------------------------------- application side


class _ResponseCheck:
    def __init__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> None:
        self.environ = environ
        self._start_response = start_response
        self.started = False
        self.declared: int | None = None
        self.status = ""
        self.produced = 0

    @property
    def enforced(self) -> bool:
        return (self.declared is not None and self.environ.get("REQUEST_METHOD") != "HEAD"
                and self.status[:3] not in ("204", "304"))

    def start_response(self, status: Any, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        _app(exc_info is None or (isinstance(exc_info, tuple) and len(exc_info) == 3),
             f"exc_info must be None or a sys.exc_info() tuple, got {exc_info!r}")
        _app(not self.started or exc_info is not None,
             "start_response() called a second time without exc_info (PEP 3333)")
        _app(type(status) is str, f"status {status!r} is not a str")
        _app(_STATUS.match(status), f"status {status!r} must be three digits, a space and a reason phrase, "
                                    "like '200 OK' (PEP 3333); 1xx statuses cannot be WSGI responses")
        _app(type(headers) is list, f"headers must be a list, got {type(headers).__name__} (PEP 3333)")
        lengths = []
        for item in headers:
            _app(type(item) is tuple and len(item) == 2, f"header {item!r} is not a (name, value) tuple")
            name, value = item
            _app(type(name) is str and _TOKEN.match(name), f"header name {name!r} is not a valid token")
            _app(type(value) is str and _FIELD_VALUE.match(value),
                 f"header {name}: value {value!r} must be a latin-1 str without control characters")
            _app(name.lower() not in HOP_BY_HOP, f"hop-by-hop header {name!r} is not allowed (PEP 3333)")
            _app(name.lower() != "status", "a 'Status' header is not allowed; pass the status to start_response")
            if name.lower() == "content-length":
                _app(value.isascii() and value.strip().isdigit(), f"Content-Length {value!r} is not a number")
                lengths.append(int(value))
        _app(len(set(lengths)) <= 1, f"several different Content-Length headers: {lengths}")
        self.started = True
        self.status = status
        self.declared = lengths[0] if lengths else None
        write = self._start_response(status, headers, exc_info) if exc_info else self._start_response(status, headers)

        def checked_write(data: bytes) -> None:
            _app(type(data) is bytes, f"write() takes bytes, got {type(data).__name__}")
            self.count(len(data))
            write(data)

        return checked_write

    def count(self, n: int) -> None:
        self.produced += n
        if self.enforced:
            assert self.declared is not None
            _app(self.produced <= self.declared,
                 f"produced {self.produced} body bytes, more than its Content-Length {self.declared} (section 8)")

    def finished(self) -> None:
        if self.enforced:
            _app(self.produced == self.declared,
                 f"produced {self.produced} body bytes, fewer than its Content-Length {self.declared} (section 8)")

    def check_file_wrapper(self, wrapper: Any) -> None:
        filelike = getattr(wrapper, "filelike", None)
        _app(not getattr(filelike, "closed", False), "returned a wsgi.file_wrapper over a closed file")
        _app(not isinstance(filelike, io.TextIOBase),
             "returned a wsgi.file_wrapper over a text file; open it in binary mode ('rb')")
        _app(self.started, "returned a wsgi.file_wrapper without calling start_response() (PEP 3333)")


class CheckedIterable:
    """The application's response iterable, checked as the server consumes it."""

    def __init__(self, result: Iterable[bytes], response: _ResponseCheck) -> None:
        self._result = result
        self._iter: Iterator[bytes] | None = None
        self._response = response
        self._closed = False
        self._done = False

    def __iter__(self) -> CheckedIterable:
        return self

    def __next__(self) -> bytes:
        _server(not self._closed, "iterated the response after calling close() (PEP 3333)")
        if self._iter is None:
            self._iter = iter(self._result)
        try:
            chunk = next(self._iter)
        except StopIteration:
            if not self._done:
                self._done = True
                _app(self._response.started, "the response ended without start_response() being called")
                self._response.finished()
            raise
        _app(type(chunk) is bytes, f"the response iterable yielded {type(chunk).__name__}, not bytes")
        if chunk:
            _app(self._response.started, "yielded body bytes before calling start_response() (PEP 3333)")
        self._response.count(len(chunk))
        return chunk

    def close(self) -> None:
        _server(not self._closed, "called close() on the response twice")
        self._closed = True
        close = getattr(self._result, "close", None)
        if close is not None:
            close()

    def __del__(self) -> None:
        if not self._closed:
            # Raised in __del__, so Python prints it ("Exception ignored in"),
            # as wsgiref.validate does: it cannot reach the caller any more.
            raise WSGIViolation("WSGI 1.1 server: the response iterable was garbage collected without being "
                                "closed (PEP 3333: the server must call close())")
