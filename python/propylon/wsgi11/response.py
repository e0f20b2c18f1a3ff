"""The response side of WSGI 1.1 on a PEP 3333 server.

Theory of operation. :class:`ResponseGate` stands between the application and the
server's ``start_response``. It holds the status and headers the application
gave until the first body byte (or the end of the body) is ready, the way a
server does (PEP 3333, "Buffering and Streaming"), so that:

- a request body error that ends the application before any byte was produced
  can still become a ``413`` or ``400`` answer (docs/spec/wsgi-1.1.md §4);
- a file wrapper handed to the server's own fast path gets its
  ``Content-Length`` first (§6).

Every body byte, from the iterable or from ``write()``, goes through
:meth:`ResponseGate.admit`, which enforces the declared ``Content-Length`` (§8):
bytes past it are dropped and logged, and an iterable that ends short makes
the response fail with :class:`ResponseTooShort`, which every PEP 3333 server
answers by closing the connection once the headers are out.

:class:`GuardedResponse` is the iterable the server sees. It calls the
application's ``close()`` exactly once: when the server calls ``close()``, or,
for a server that never does, when it is garbage collected.

:class:`ServerFile` is how an application's :class:`FileWrapper` reaches a
server's *own* file wrapper without losing that server's fast path (sendfile
in gunicorn and mod_wsgi, the I/O thread in waitress): the same file, reads
capped at the response length, and ``close()`` running the application's
wrapper ``close()``.

What it does not do: check that the application used the interface correctly
(``validate`` does), or decide which file wrapper the environ offers
(``middleware`` does).
"""

from __future__ import annotations

import enum
import os
import stat
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any

from propylon.errors import ClientDisconnected, InvalidRequestBody, RequestBodyError, RequestBodyTooLarge
from propylon.filewrapper import FileWrapper
from propylon.wsgi11 import apache

__all__ = ["CloseOnce", "GuardedResponse", "ResponseGate", "ResponseTooShort", "ServerFile", "regular_file_remaining"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], Any]]

#: Statuses whose responses have no body whatever Content-Length says
#: (RFC 9110 §6.4.1: 1xx, 204, 304; a HEAD response likewise).
NO_BODY_STATUSES = (204, 304)


class ResponseTooShort(RuntimeError):
    """The application produced fewer body bytes than its Content-Length.

    Raised from the response iterable after its last byte, so that the server
    aborts the response (closes the connection) instead of leaving the client
    waiting for bytes that will never come, or reading the next response as
    the rest of this one.
    """


class _Stage(enum.Enum):
    NO_HEAD = "start_response not called yet"
    HELD = "status and headers held here, not yet given to the server"
    PASSED = "status and headers given to the server's start_response"


def _declared_length(headers: list[tuple[str, str]]) -> int | None:
    values = [v.strip() for k, v in headers if isinstance(k, str) and k.lower() == "content-length"]
    if len(values) == 1 and isinstance(values[0], str) and values[0].isdigit() and values[0].isascii():
        return int(values[0])
    return None  # absent, or not a usable number: not enforced (the validator reports it)


class ResponseGate:
    """One response on its way from the application to the server: the head held until
    the first body byte, the declared length, and the body bytes let through so far."""

    def __init__(self, environ: dict[str, Any], server_start_response: StartResponse, *,
                 answer_errors: bool = False) -> None:
        self.environ = environ
        #: Whether an exception from the application before the head reached
        #: the server is answered ``500`` here (for a server that would close
        #: the connection without a response: uWSGI).
        self.answers_errors = answer_errors
        self._server_start_response = server_start_response
        self._server_write: Callable[[bytes], Any] | None = None
        self._stage = _Stage.NO_HEAD
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.declared: int | None = None
        self.sent = 0
        self._surplus = 0
        #: Called once, just before the head goes to the server (a CGI gateway
        #: reads what is left of the request body there: propylon/wsgi11/cgi.py).
        self.before_head: Callable[[], None] | None = None

    # -- what the application calls -------------------------------------------------

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: ExcInfo | None = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self._stage is _Stage.PASSED:
                    # The server decides: it re-raises if the head is already
                    # on the wire, or replaces it (PEP 3333). A server that
                    # raises an error of its own instead (uWSGI: "headers
                    # already sent") gets the application's re-raised, as
                    # PEP 3333 asks.
                    try:
                        self._server_write = self._server_start_response(status, headers, exc_info)
                    except Exception as error:
                        if error is exc_info[1]:
                            raise
                        raise exc_info[1].with_traceback(exc_info[2]) from None
            finally:
                exc_info = None  # PEP 3333: avoid a reference cycle through the traceback
        elif self._stage is not _Stage.NO_HEAD:
            raise AssertionError("start_response() called a second time without exc_info (PEP 3333)")
        self.status = status
        self.headers = list(headers)
        self.declared = _declared_length(self.headers)
        if self._stage is _Stage.NO_HEAD:
            self._stage = _Stage.HELD
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write()`` callable, with Content-Length enforced."""
        if not isinstance(data, bytes):
            raise TypeError(f"write() takes bytes, not {type(data).__name__} (PEP 3333)")
        self.pass_head()
        data = self.admit(data)
        if data:
            assert self._server_write is not None
            self._server_write(data)

    # -- what the middleware calls --------------------------------------------------

    @property
    def head_passed(self) -> bool:
        return self._stage is _Stage.PASSED

    @property
    def head_held(self) -> bool:
        """Whether the application's status and headers are here, still open to change."""
        return self._stage is _Stage.HELD

    @property
    def enforced(self) -> bool:
        """Whether this response's body must match its Content-Length (not HEAD, 1xx, 204, 304)."""
        if self.declared is None or self.environ.get("REQUEST_METHOD") == "HEAD":
            return False
        code = self.status[:3]
        return not (code.isdigit() and (code.startswith("1") or int(code) in NO_BODY_STATUSES))

    def set_header(self, name: str, value: str) -> None:
        """Add or replace a header while it is still held here."""
        assert self._stage is _Stage.HELD
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()] + [(name, value)]
        self.declared = _declared_length(self.headers)

    def pass_head(self) -> None:
        """Give the held status and headers to the server (once)."""
        if self._stage is _Stage.PASSED:
            return
        if self._stage is _Stage.NO_HEAD:
            raise AssertionError("the application produced body bytes before calling start_response() (PEP 3333)")
        if self.before_head is not None:
            before, self.before_head = self.before_head, None
            before()
        self._server_write = self._server_start_response(self.status, self.headers)
        self._stage = _Stage.PASSED

    def admit(self, data: bytes) -> bytes:
        """The part of ``data`` that may be sent: nothing past Content-Length."""
        if not self.enforced:
            self.sent += len(data)
            return data
        assert self.declared is not None
        room = self.declared - self.sent
        if len(data) > room:
            self.log_surplus(len(data) - room)
            data = data[:room]
        self.sent += len(data)
        return data

    @property
    def complete(self) -> bool:
        return self.enforced and self.sent == self.declared

    def log_surplus(self, extra: int) -> None:
        if not self._surplus:
            self.log(f"the application produced more body bytes than its Content-Length ({self.declared}); "
                     "the rest was not sent (WSGI 1.1 §8)")
        self._surplus += extra

    def check_finished(self) -> None:
        """At the end of the body: a short body is an error the server must see."""
        if self.enforced and self.declared is not None and self.sent < self.declared:
            message = (f"the application produced {self.sent} body bytes but declared Content-Length "
                       f"{self.declared}; the response is incomplete (WSGI 1.1 §8)")
            self.log(message)
            # Every server tested but mod_wsgi closes the connection when the
            # iterable raises; mod_wsgi is asked to, where it can be.
            apache.close_connection(self.environ)
            raise ResponseTooShort(message)

    def answer_body_error(self, error: RequestBodyError) -> bytes:
        """Replace the response with an answer to a request body that could not be read.

        ``413`` for a body over the limit, ``400`` for any other body error
        (bad framing, or a client that went away). Only while nothing has
        reached the server: afterwards ``error`` is re-raised, and the server
        aborts the response.
        """
        if self._stage is _Stage.PASSED:
            raise error
        if isinstance(error, RequestBodyTooLarge):
            status, text = "413 Content Too Large", b"Request body too large\n"
        elif isinstance(error, InvalidRequestBody):
            status, text = "400 Bad Request", b"Invalid request body\n"
        elif isinstance(error, ClientDisconnected):
            status, text = "400 Bad Request", b"Incomplete request body\n"
        else:
            status, text = "400 Bad Request", b"Unreadable request body\n"
        self.log(f"request body error, answered {status[:3]}: {error}")
        self.status = status
        self.headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))]
        self.declared = len(text)
        self._stage = _Stage.HELD
        self.pass_head()
        return text

    def answer_application_error(self, error: Exception) -> bytes:
        """Replace the response with ``500``, for an application that raised
        before anything reached the server; the traceback goes to ``wsgi.errors``."""
        assert self._stage is not _Stage.PASSED
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.log(f"the application raised before its response started, answered 500:\n{detail}")
        text = b"Internal Server Error\n"
        self.status = "500 Internal Server Error"
        self.headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))]
        self.declared = len(text)
        self._stage = _Stage.HELD
        self.pass_head()
        return text

    def log(self, message: str) -> None:
        errors = self.environ.get("wsgi.errors")
        if errors is not None:
            try:
                errors.write(f"propylon.wsgi11: {message}\n")
                errors.flush()
            except Exception:  # noqa: BLE001 - a broken log stream must not break the response
                pass


class CloseOnce:
    """Calls the application's ``close()`` (and the middleware's clean-ups) exactly once."""

    def __init__(self, result: object, cleanups: list[Callable[[], None]]) -> None:
        self._result = result
        self._cleanups = cleanups
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._result = None
            for cleanup in self._cleanups:
                cleanup()


class GuardedResponse:
    """The iterable the server gets: Content-Length enforced, ``close()`` once."""

    def __init__(self, gate: ResponseGate, result: Iterable[bytes], cleanups: list[Callable[[], None]]) -> None:
        self._gate = gate
        self._result = result
        self._iter: Iterator[bytes] | None = None
        self._done = False
        self._closer = CloseOnce(result, cleanups)
        # A server that drops the response without calling close() (PEP 3333
        # says it must not) still gets the application's close() called.
        self._finalizer = weakref.finalize(self, self._closer)

    def __iter__(self) -> GuardedResponse:
        return self

    def __next__(self) -> bytes:
        gate = self._gate
        if self._done:
            raise StopIteration
        if self._closer.done:
            raise ValueError("the response iterable was iterated after close() (PEP 3333)")
        if gate.complete:
            # Content-Length is met: look once more so that surplus is logged,
            # then stop (never ask the application for more than that).
            self._done = True
            self._look_for_surplus()
            raise StopIteration
        try:
            if self._iter is None:
                self._iter = iter(self._result)
            chunk = next(self._iter)
        except StopIteration:
            self._done = True
            gate.pass_head()
            gate.check_finished()
            raise
        except RequestBodyError as error:
            # The application let a body error out before producing a byte:
            # answer it (re-raised if the server already has a head).
            self._iter = iter(())
            return gate.admit(gate.answer_body_error(error))
        except Exception as error:
            if not gate.answers_errors or gate.head_passed:
                raise
            self._iter = iter(())
            return gate.admit(gate.answer_application_error(error))
        if not isinstance(chunk, bytes):
            raise TypeError(f"the response iterable yielded {type(chunk).__name__}, not bytes (PEP 3333)")
        gate.pass_head()
        return gate.admit(chunk)

    def _look_for_surplus(self) -> None:
        try:
            if self._iter is None:  # Content-Length was met by write()
                self._iter = iter(self._result)
            extra = next(self._iter)
        except StopIteration:
            return
        if isinstance(extra, bytes) and extra:
            self._gate.log_surplus(len(extra))

    def close(self) -> None:
        self._closer()


class ServerFile:
    """The application's file as given to the server's own ``wsgi.file_wrapper``.

    Reads stop ``length`` bytes past the position the file had when it was
    handed over, however the server moves around in it (waitress peeks: it
    reads, seeks back, and reads again), so servers that read rather than
    send the descriptor stay within Content-Length. ``close()`` runs the
    application's wrapper ``close()``, once, so a subclass's close actions
    happen when the server is done with the file (§5).
    """

    def __init__(self, wrapper: Any, length: int, closer: Callable[[], None]) -> None:
        self._file: IO[bytes] = wrapper.filelike
        self._end: int = self._file.tell() + length
        self._closer = closer

    def read(self, size: int | None = -1) -> bytes:
        left = self._end - self._file.tell()
        if left <= 0:
            return b""
        return self._file.read(left if size is None or size < 0 else min(size, left))

    def fileno(self) -> int:
        return self._file.fileno()

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return bool(self._file.closed)

    def close(self) -> None:
        self._closer()


def regular_file_remaining(wrapper: FileWrapper) -> int | None:
    """Bytes from the file's position to its end, if ``wrapper`` holds an open
    regular file with a descriptor; ``None`` otherwise.

    Also moves the descriptor's offset to the file object's logical position:
    a buffered reader reads ahead, and some servers (gunicorn) send from the
    descriptor's offset, not from ``tell()``. A seek inside the read-ahead
    buffer does not move the descriptor, so the buffer is dropped first by a
    seek to the end.
    """
    filelike: Any = wrapper.filelike
    try:
        fd = filelike.fileno()
        position = filelike.tell()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not isinstance(position, int):
            return None
        filelike.seek(0, os.SEEK_END)
        filelike.seek(position)
        if os.lseek(fd, 0, os.SEEK_CUR) != position:
            return None
    except (AttributeError, OSError, ValueError, TypeError):
        return None
    return max(0, info.st_size - position)
