"""What the middleware does differently when uWSGI is the server.

Why this exists. uWSGI (2.0) differs from the other PEP 3333 servers in
three ways that the generic paths cannot work around:

- **Chunked request bodies.** With ``--http-socket``, uWSGI passes a chunked
  request with neither ``CONTENT_LENGTH`` nor a stream of its body:
  ``wsgi.input`` reads nothing, and the framed body stays on the socket.
  Its only way to the body is its own chunked-input API, ``uwsgi.chunked_read()``,
  which returns one de-chunked part per call, ``b""`` after the last one, and
  raises ``OSError`` when the connection ends inside the body or its framing
  is bad. :class:`ChunkedBody` reads through it. The API answers only in the
  thread uWSGI called the application in (elsewhere, with ``--threads``, it
  raises ``SystemError``), and an application may read ``wsgi.input`` in
  another, so the middleware reads such a body whole before calling the
  application (as waitress does with every body), into memory or a temporary
  file, bounded by ``max_body_size``; ``CONTENT_LENGTH`` stays absent unless
  ``buffer_body`` is set. (Behind a front end, on the uwsgi protocol, the
  front end passes a length: nginx buffers chunked bodies.)
- **The file wrapper.** uWSGI's ``wsgi.file_wrapper`` is a function, not a
  class, and uWSGI recognises its result by identity and sends the file
  whole, from offset 0, whatever ``tell()`` or ``Content-Length`` say
  (WSGI 1.1 §5, §6). The middleware offers its own class instead and sends a
  wrapped regular file with ``uwsgi.sendfile(fd, 0, position, length)``,
  which takes an offset and a length (:class:`SentFile`); uWSGI closes the
  descriptor it is given, so it gets a duplicate.
- **Errors before the response starts.** When the application raises before
  uWSGI has a status, uWSGI closes the connection without a response; the
  middleware answers ``500`` itself (:attr:`ServerProfile.answers_errors`
  in ``middleware``).

Behind a front end, on the uwsgi protocol, the front end hands the whole
request to uWSGI before it reads the response (nginx does), and nothing in
uWSGI reads a body the application left unread; once uWSGI closes the socket
with unread bytes in it, nginx's write fails and it answers ``502`` in place
of the response. uWSGI's documentation asks applications to read the body,
or ``--post-buffering``; the middleware reads what is left of it
(propylon/wsgi11/frontend.py, as over SCGI) when no socket of the instance speaks HTTP
itself (``uwsgi.opt``), so never from a client directly.

What it does not do: anything unless the request is served by uWSGI (the
``uwsgi.version`` key, and the ``uwsgi`` module importable: it exists only
inside a uWSGI process), or decide which of these applies (the middleware does).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from propylon.errors import ClientDisconnected
from propylon.filewrapper import FileWrapper
from propylon.wsgi11.response import CloseOnce, ResponseGate, regular_file_remaining

__all__ = ["ChunkedBody", "SentFile", "api", "behind_front_end", "send_file"]

#: ``uwsgi.sendfile()`` parses its position and length as C ``int``s.
SENDFILE_MAX = 2**31 - 1
#: uWSGI options that make an instance speak HTTP to clients itself.
HTTP_SOCKET_OPTIONS = ("http-socket", "http11-socket", "https-socket", "http", "https", "https2",
                       "http-socket-modifier1")


def api(environ: dict[str, Any]) -> Any | None:
    """The ``uwsgi`` module if uWSGI serves this request, else ``None``."""
    if "uwsgi.version" not in environ:
        return None
    try:
        return importlib.import_module("uwsgi")  # exists only inside a uWSGI process
    except ImportError:
        return None


class ChunkedBody:
    """A chunked request body, de-chunked by uWSGI's ``uwsgi.chunked_read()``.

    ``read(size)`` returns at most ``size`` bytes, ``b""`` after the last
    chunk. A failed part (the connection ended inside the body, or bad
    framing: uWSGI does not tell them apart) raises ``ClientDisconnected``.
    """

    def __init__(self, uwsgi: Any) -> None:
        self._uwsgi = uwsgi
        self._part = b""
        self._done = False

    def read(self, size: int) -> bytes:
        while not self._part and not self._done:
            try:
                part = self._uwsgi.chunked_read()
            except OSError as error:
                self._done = True
                raise ClientDisconnected(f"the chunked request body could not be read whole: {error}") from error
            if part:
                self._part = part
            else:
                self._done = True
        data, self._part = self._part[:size], self._part[size:]
        return data


class SentFile:
    """The response iterable for a wrapped regular file: on the first ``next()``,
    the head goes to uWSGI, then ``length`` bytes of the file from
    ``position`` through ``uwsgi.sendfile()``; ``close()`` runs the wrapper's
    ``close()`` (and the middleware's clean-ups) once."""

    def __init__(self, uwsgi: Any, gate: ResponseGate, fd: int, position: int, length: int,
                 closer: CloseOnce) -> None:
        self._uwsgi = uwsgi
        self._gate = gate
        self._fd = fd
        self._position = position
        self._length = length
        self._closer = closer
        self._sent = False

    def __iter__(self) -> SentFile:
        return self

    def __next__(self) -> bytes:
        if self._sent:
            raise StopIteration
        self._sent = True
        self._gate.pass_head()
        if self._length:
            # uWSGI closes the descriptor it is given: a duplicate, so the
            # application's file stays open until its close().
            self._uwsgi.sendfile(os.dup(self._fd), 0, self._position, self._length)
            self._gate.sent += self._length
        raise StopIteration

    def close(self) -> None:
        self._closer()


def send_file(uwsgi: Any, gate: ResponseGate, result: FileWrapper,
              cleanups: list[Callable[[], None]]) -> SentFile | None:
    """``result`` sent by ``uwsgi.sendfile()``, or ``None`` to iterate it instead.

    Iterated instead: a file that is not a regular file with a descriptor, a
    response whose head already went out through ``write()``, one without a
    body to enforce (HEAD, 204, 304), a file shorter than ``Content-Length``
    (iterating detects the short body, §8), or offsets past what
    ``uwsgi.sendfile()`` takes.
    """
    if gate.head_passed:
        return None
    remaining = regular_file_remaining(result)
    if remaining is None:
        return None
    if gate.declared is None:
        gate.set_header("Content-Length", str(remaining))
    if not gate.enforced or gate.declared is None or remaining < gate.declared:
        return None
    filelike: Any = result.filelike
    position: int = filelike.tell()
    if position + gate.declared > SENDFILE_MAX:
        return None
    return SentFile(uwsgi, gate, filelike.fileno(), position, gate.declared, CloseOnce(result, cleanups))


def behind_front_end(uwsgi: Any) -> bool:
    """Whether no socket of this uWSGI instance speaks HTTP to clients itself."""
    options = getattr(uwsgi, "opt", None) or {}
    return not any(name in options for name in HTTP_SOCKET_OPTIONS)
