"""WSGI 1.1 on any PEP 3333 server, as middleware.

``WSGI11Middleware(app)`` gives ``app`` the guarantees of
docs/spec/wsgi-1.1.md on gunicorn, waitress, mod_wsgi, uWSGI, wsgiref or any
other PEP 3333 server (what differs on uWSGI: :mod:`propylon.wsgi11.uwsgi_server`):

- ``wsgi.input`` is terminated and bounded by ``CONTENT_LENGTH``
  (:mod:`propylon.wsgi11.input`); a body cut short raises
  :class:`propylon.ClientDisconnected`; a chunked body the server left framed
  is de-chunked; a body over ``max_body_size`` is refused with ``413`` or
  ends the read with :class:`propylon.RequestBodyTooLarge`;
- on a CGI gateway, the body is read as the front end passes it, and read
  to its end before the response starts (:mod:`propylon.wsgi11.cgi`);
- ``wsgi.version`` is ``(1, 1)`` and ``wsgi.input_terminated`` is ``True``;
  ``HTTP_CONTENT_TYPE`` and ``HTTP_CONTENT_LENGTH``, which front ends such as
  nginx pass to FastCGI, SCGI and uwsgi gateways, are removed;
- ``wsgi.file_wrapper`` is a class (:class:`propylon.FileWrapper` unless the
  server is already a 1.1 server), and a wrapper over a regular file is handed
  to the server's own file wrapper, so its fast path is kept;
- the response never has more bytes than its ``Content-Length``, and one with
  fewer makes the server close the connection
  (:mod:`propylon.wsgi11.response`);
- ``close()`` on the application's response is called exactly once;
- optionally (``buffer_body=True``), the compatibility mode of Appendix B: a
  body of unknown length is read whole first and ``CONTENT_LENGTH`` set.

What it cannot do (docs/spec/wsgi-1.1.md, "Reference implementation"): make a
server accept a request it refuses before the application runs (mod_wsgi
without ``WSGIChunkedRequest On`` answers chunked requests with ``411``),
detect a server that ends its stream early *and* hides the length (no
``CONTENT_LENGTH`` but ``wsgi.input_terminated``), make a short response
visible where the process does not hold the connection (CGI, mod_wsgi
daemon mode), or speak HTTP/2.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from propylon.errors import RequestBodyError, RequestBodyTooLarge
from propylon.filewrapper import FileWrapper
from propylon.wsgi11 import flup, frontend, uwsgi_server
from propylon.wsgi11.cgi import CgiBody
from propylon.wsgi11.input import ByteSource, ChunkedDecoder, TerminatedInput, spool_body
from propylon.wsgi11.response import CloseOnce, GuardedResponse, ResponseGate, ServerFile, regular_file_remaining

__all__ = ["ServerProfile", "WSGI11Middleware", "is_wsgi11"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: The defaults of ``max_body_size`` and ``buffer_memory_limit``: Propylon's
#: ``--max-body-size`` and ``--buffer-memory-limit``. Stated here, not read
#: from ``propylon.config``: this package is also installed without the
#: server (the ``propylon-wsgi11`` distribution).
MAX_BODY_SIZE = 1024**3
BUFFER_MEMORY_LIMIT = 1024**2


def is_wsgi11(environ: dict[str, Any]) -> bool:
    """True when the server gives the WSGI 1.1 guarantees (section 9).

    Both keys are needed: ``wsgi.version`` alone is not trusted, because
    servers have reported ``(1, 1)`` without these semantics.
    """
    try:
        version = tuple(environ.get("wsgi.version", (1, 0)))
    except TypeError:
        return False
    return version >= (1, 1) and environ.get("wsgi.input_terminated") is True


@dataclass(frozen=True)
class ServerProfile:
    """What the server itself put in the environ, read before the middleware changes it."""

    wsgi11: bool
    #: The server ends ``wsgi.input`` at the end of the body: it says so
    #: (``wsgi.input_terminated``), or it is flup's FastCGI server, whose
    #: stream ends where the front end ends stdin (propylon/wsgi11/flup.py).
    terminated: bool
    #: The server's own ``wsgi.file_wrapper``, if any.
    file_wrapper: Any
    #: An exception from the response iterable after the headers makes the
    #: server close the connection. True of every server tested but
    #: mod_wsgi, which ends the response as if it were complete (Apache keeps
    #: the connection); there, only its own file path detects a short file.
    aborts_on_late_error: bool
    #: The ``uwsgi`` module when uWSGI is the server (propylon/wsgi11/uwsgi_server.py):
    #: its chunked-input API and ``sendfile()`` replace the generic paths.
    uwsgi: Any = None

    @classmethod
    def read(cls, environ: dict[str, Any]) -> ServerProfile:
        return cls(
            wsgi11=is_wsgi11(environ),
            terminated=environ.get("wsgi.input_terminated") is True or flup.fastcgi_stdin(environ),
            file_wrapper=environ.get("wsgi.file_wrapper"),
            aborts_on_late_error="mod_wsgi.version" not in environ,
            uwsgi=uwsgi_server.api(environ),
        )

    @property
    def answers_errors(self) -> bool:
        """Whether the server answers an application that raised before the
        head with a response of its own; uWSGI closes the connection instead."""
        return self.uwsgi is None

    @property
    def file_wrapper_class(self) -> type:
        """The class to offer the application: the server's on a 1.1 server, else ours."""
        if self.wsgi11 and isinstance(self.file_wrapper, type):
            return self.file_wrapper
        return FileWrapper


class _Refused(Exception):
    """The request is answered by the middleware without calling the application."""

    def __init__(self, error: RequestBodyError) -> None:
        super().__init__(str(error))
        self.error = error


class WSGI11Middleware:
    """Wrap a WSGI application so it sees a WSGI 1.1 server.

    ``max_body_size``: largest request body in bytes (default 1 GiB,
    Propylon's ``--max-body-size``). ``buffer_body``: the compatibility mode of Appendix B,
    for applications that trust ``CONTENT_LENGTH`` (Django); bodies are
    buffered in memory up to ``buffer_memory_limit`` bytes, then in a
    temporary file. ``dechunk``: whether ``wsgi.input`` still carries HTTP/1.1
    chunked framing; ``None`` (the default) decides per request: a body with
    ``Transfer-Encoding: chunked``, no ``CONTENT_LENGTH``, on a server that
    does not set ``wsgi.input_terminated`` (wsgiref). Set it to ``False`` for
    a server that de-chunks without saying so.
    """

    def __init__(self, app: WSGIApp, *, max_body_size: int = MAX_BODY_SIZE,
                 buffer_body: bool = False, buffer_memory_limit: int = BUFFER_MEMORY_LIMIT,
                 dechunk: bool | None = None) -> None:
        if max_body_size < 0 or buffer_memory_limit < 0:
            raise ValueError("max_body_size and buffer_memory_limit must be 0 or more")
        self.app = app
        self.max_body_size = max_body_size
        self.buffer_body = buffer_body
        self.buffer_memory_limit = buffer_memory_limit
        self.dechunk = dechunk

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        server = ServerProfile.read(environ)
        gate = ResponseGate(environ, start_response, answer_errors=not server.answers_errors)
        cleanups: list[Callable[[], None]] = []
        behind_uwsgi_front_end = server.uwsgi is not None and uwsgi_server.behind_front_end(server.uwsgi)
        if (behind_uwsgi_front_end or frontend.behind_scgi(environ)) and (declared := _declared_or_none(environ)):
            counting = environ["wsgi.input"] = frontend.CountingInput(environ["wsgi.input"])
            cleanups.append(frontend.drain_rest(counting, declared))
        try:
            self._prepare_request(environ, server, gate, cleanups)
        except _Refused as refused:
            _run(cleanups)
            return [gate.answer_body_error(refused.error)]
        environ["wsgi.version"] = (1, 1)
        environ["wsgi.input_terminated"] = True
        environ["wsgi.file_wrapper"] = server.file_wrapper_class
        try:
            result = self.app(environ, gate.start_response)
        except RequestBodyError as error:
            try:
                return [gate.answer_body_error(error)]
            finally:
                _run(cleanups)
        except Exception as error:
            if gate.answers_errors and not gate.head_passed:
                try:
                    return [gate.answer_application_error(error)]
                finally:
                    _run(cleanups)
            _run(cleanups)
            raise
        except BaseException:
            _run(cleanups)
            raise
        return self._respond(gate, server, result, cleanups)

    # -- request ---------------------------------------------------------------------

    def _prepare_request(self, environ: dict[str, Any], server: ServerProfile, gate: ResponseGate,
                         cleanups: list[Callable[[], None]]) -> None:
        declared = _content_length(environ)
        if environ.get("CONTENT_LENGTH") == "":
            del environ["CONTENT_LENGTH"]  # PEP 3333 allows empty; section 3 wants it absent
        _drop_header_copies(environ)
        gateway = CgiBody.for_request(environ, declared)
        if gateway is not None:
            gate.before_head = gateway.discard_rest
        if declared is not None and declared > self.max_body_size:
            raise _Refused(RequestBodyTooLarge(
                f"CONTENT_LENGTH {declared} is over the maximum of {self.max_body_size} bytes"))
        source: ByteSource
        framed = False
        if gateway is not None:
            source, ends = gateway, gateway.has_body
        elif self._still_chunked(environ, server, declared):
            framed = True
            source = (uwsgi_server.ChunkedBody(server.uwsgi) if server.uwsgi is not None
                      else ChunkedDecoder(environ["wsgi.input"]))
            ends = True
        else:
            source, ends = environ["wsgi.input"], server.terminated
        stream = TerminatedInput(source, length=declared, terminated=ends, limit=self.max_body_size)
        # uWSGI's chunked-input API answers only in the thread uWSGI called
        # the application in; an application may read wsgi.input in another.
        read_first = framed and server.uwsgi is not None
        if (self.buffer_body or read_first) and declared is None and ends:
            try:
                length, spool = spool_body(stream, self.buffer_memory_limit)
            except RequestBodyError as error:
                raise _Refused(error) from error
            cleanups.append(spool.close)
            if self.buffer_body and (length or "HTTP_TRANSFER_ENCODING" in environ):
                environ["CONTENT_LENGTH"] = str(length)
            stream = TerminatedInput(spool, length=length, terminated=True, limit=self.max_body_size)
        environ["wsgi.input"] = stream

    def _still_chunked(self, environ: dict[str, Any], server: ServerProfile, declared: int | None) -> bool:
        if declared is not None:
            return False
        if self.dechunk is not None:
            return self.dechunk
        codings = environ.get("HTTP_TRANSFER_ENCODING", "").lower().split(",")
        return not server.terminated and codings[-1].strip() == "chunked"

    # -- response --------------------------------------------------------------------

    def _respond(self, gate: ResponseGate, server: ServerProfile, result: Iterable[bytes],
                 cleanups: list[Callable[[], None]]) -> Iterable[bytes]:
        if isinstance(result, (str, bytes)):
            _run(cleanups)
            raise TypeError(f"the application returned {type(result).__name__}, not an iterable of bytes "
                            "(PEP 3333); return [body] instead")
        wrapped_file = getattr(result, "filelike", None)
        if isinstance(result, (FileWrapper, server.file_wrapper_class)) and getattr(wrapped_file, "closed", False):
            CloseOnce(result, cleanups)()
            raise ValueError("the application returned a wsgi.file_wrapper over a closed file")
        if server.wsgi11 and isinstance(server.file_wrapper, type) and isinstance(result, server.file_wrapper):
            # A 1.1 server's own wrapper: the server sends it, enforces
            # Content-Length and calls close(); hand it over untouched.
            gate.pass_head()
            if cleanups:
                weakref.finalize(result, _run, cleanups)
            return result
        if isinstance(result, FileWrapper) and server.uwsgi is not None:
            # uWSGI's own wrapper ignores tell() and Content-Length: never handed to it.
            sent = uwsgi_server.send_file(server.uwsgi, gate, result, cleanups)
            if sent is not None:
                return sent
        elif isinstance(result, FileWrapper) and server.file_wrapper not in (None, FileWrapper):
            native = self._hand_to_server(gate, server, result, cleanups)
            if native is not None:
                return native
        if isinstance(result, FileWrapper):
            _declare_file_length(gate, result)
        return GuardedResponse(gate, result, cleanups)

    @staticmethod
    def _hand_to_server(gate: ResponseGate, server: ServerProfile, result: FileWrapper,
                        cleanups: list[Callable[[], None]]) -> Iterable[bytes] | None:
        """The server's own file wrapper over the application's file, or None to iterate instead."""
        if gate.head_passed:
            return None  # the application used write(): the server would not take its fast path
        remaining = regular_file_remaining(result)
        if remaining is None:
            return None
        if gate.declared is None:
            gate.set_header("Content-Length", str(remaining))
        elif remaining < gate.declared and server.aborts_on_late_error:
            return None  # iterated instead, so that the short body is detected (§8)
        assert gate.declared is not None
        closer = CloseOnce(result, cleanups)
        try:
            native: Iterable[bytes] = server.file_wrapper(ServerFile(result, gate.declared, closer), result.blksize)
        except Exception:  # noqa: BLE001 - a server wrapper that refuses our file: iterate instead
            return None
        gate.pass_head()
        # Servers that test the result against environ["wsgi.file_wrapper"]
        # after the call (gunicorn) must find their own class there again.
        gate.environ["wsgi.file_wrapper"] = server.file_wrapper
        try:
            weakref.finalize(native, closer)
        except TypeError:
            pass  # a C type without weak references (mod_wsgi): the server's close() is relied on
        return native


def _drop_header_copies(environ: dict[str, Any]) -> None:
    """Remove ``HTTP_CONTENT_TYPE`` and ``HTTP_CONTENT_LENGTH``.

    A gateway behind a front end may pass every request header as an
    ``HTTP_*`` variable, these two included (RFC 3875 §4.1.18 allows it; nginx
    does for FastCGI, SCGI and uwsgi), but a WSGI environ has them only as
    ``CONTENT_TYPE`` and ``CONTENT_LENGTH`` (PEP 3333; ``wsgiref.validate``
    rejects the copies). The length is the gateway's ``CONTENT_LENGTH`` alone:
    the header's copy is not what the body is bounded by.
    """
    content_type = environ.pop("HTTP_CONTENT_TYPE", None)
    if content_type is not None and not environ.get("CONTENT_TYPE"):
        environ["CONTENT_TYPE"] = content_type
    environ.pop("HTTP_CONTENT_LENGTH", None)


def _declare_file_length(gate: ResponseGate, result: FileWrapper) -> None:
    """Give a regular file iterated here the ``Content-Length`` a server's own
    file path would give it (waitress's does), so that the client can tell the
    response's end from the connection's and a short file is seen short (§8).
    Servers without a ``wsgi.file_wrapper`` of their own (flup) need it most:
    behind nginx, a response without a length is sent chunked, and ends
    cleanly whatever happened to the file."""
    if not gate.head_held or gate.declared is not None or gate.status[:3] in ("204", "304"):
        return
    remaining = regular_file_remaining(result)
    if remaining is not None:
        gate.set_header("Content-Length", str(remaining))


def _content_length(environ: dict[str, Any]) -> int | None:
    value = environ.get("CONTENT_LENGTH", "")
    if value in ("", None):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise _Refused(RequestBodyError(f"the server passed an invalid CONTENT_LENGTH {value!r}"))


def _declared_or_none(environ: dict[str, Any]) -> int | None:
    try:
        return _content_length(environ)
    except _Refused:
        return None


def _run(cleanups: list[Callable[[], None]]) -> None:
    for cleanup in cleanups:
        cleanup()
    cleanups.clear()
