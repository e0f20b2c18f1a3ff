"""The request body on a CGI gateway (RFC 3875), as ``wsgi.input``'s source.

Why this exists. A CGI script serves one request per process: the front end
(Apache ``mod_cgid``) passes the body on the script's standard input and
reads the response from its standard output. Three things about that differ
from a server that owns the connection, and each one breaks a WSGI 1.1
guarantee unless the gateway handles it:

- A body of unknown length: RFC 3875 §4.2 has the server remove transfer
  codings and pass ``CONTENT_LENGTH``, but Apache passes a de-chunked body
  with ``HTTP_TRANSFER_ENCODING`` still set and no ``CONTENT_LENGTH``, and
  ends stdin after it. Such a body is read to the end of stdin; it is never
  de-chunked again.
- A body the front end gave up on: Apache ends stdin the same way, whether
  the body is complete or the client went away. ``mod_cgid`` gives the
  script one Unix socket for stdin and stdout, and ends the input of a
  complete body with ``shutdown(SHUT_WR)`` but closes the socket when it
  abandons the request; on that socket, an end of input with the peer
  closed (``POLLHUP``) is a truncated body. Apache also sends ``SIGTERM``
  when it abandons a request (and ``SIGKILL`` 3 s later): the gateway
  notes it instead of dying at once, so that the application's next read
  raises, its next write fails, and its ``close()`` runs.
- An unread body: ``mod_cgid`` writes the whole body to the script before
  it reads any of the response, and a script that exits with body bytes
  unread resets the socket, so Apache loses the end of the response (or
  all of it) and keeps the connection. Before the first byte of the
  response, the gateway reads and discards what the application left of
  the body (:meth:`CgiBody.discard_rest`).

What it does not do: bound the body or detect one cut short by its length
(``TerminatedInput`` does, from ``CONTENT_LENGTH``), or make a short response
visible to the client: Apache replaces a CGI script's ``Content-Length``
with its own framing (since 2.4.59, CVE-2024-24795), and nothing a script
does when it ends (its exit status, a signal) reaches the client.
"""

from __future__ import annotations

import os
import select
import signal
import stat
import threading
from typing import Any, BinaryIO

from propylon.errors import ClientDisconnected, RequestBodyError

__all__ = ["CgiBody", "is_cgi"]

#: Read size while discarding an unread body.
BLOCK = 64 * 1024

_terminated = threading.Event()


def is_cgi(environ: dict[str, Any]) -> bool:
    """Whether this request came through a CGI gateway: the process serves one
    request (``wsgi.run_once``) and its own environment holds the request's CGI
    meta-variables (RFC 3875 §4.1), as the front end sets them for a script."""
    return (environ.get("wsgi.run_once") is True
            and os.environ.get("GATEWAY_INTERFACE", "").startswith("CGI/")
            and os.environ.get("REQUEST_METHOD") == environ.get("REQUEST_METHOD"))


def _note_termination(signum: int, frame: Any) -> None:
    _terminated.set()


def watch_termination() -> None:
    """Note the front end's ``SIGTERM`` instead of dying at once (RFC 3875 §3.4
    lets the server end a script; Apache does, when it abandons a request).

    Only from the main thread, and only where the signal has its default
    action: an application's own handler is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _note_termination)


def _same_socket(fd_in: int, fd_out: int) -> bool:
    try:
        a, b = os.fstat(fd_in), os.fstat(fd_out)
    except OSError:
        return False
    return stat.S_ISSOCK(a.st_mode) and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _peer_closed(fd: int) -> bool:
    if not hasattr(select, "poll"):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLHUP)
    return any(events & select.POLLHUP for _, events in poller.poll(0))


class CgiBody:
    """The request body on the script's stdin: a ``ByteSource`` for ``TerminatedInput``.

    ``length`` is ``CONTENT_LENGTH`` or ``None``; ``has_body`` tells a body of
    unknown length (read to the end of stdin) from no body at all;
    ``stdout_fd`` is where the response goes (the script's standard output).
    """

    def __init__(self, stdin: BinaryIO, length: int | None, has_body: bool, stdout_fd: int = 1) -> None:
        self._stdin = stdin
        self._length = length
        self.has_body = length is not None or has_body
        self._taken = 0
        self._ended = not self.has_body
        self._discarded = False
        try:
            fd = stdin.fileno()
        except (AttributeError, OSError, ValueError):
            fd = -1
        #: stdin is the socket stdout writes to: the front end can end the
        #: input only by a half-close, so a full close is an abandoned request.
        self._fd = fd if fd >= 0 and _same_socket(fd, stdout_fd) else -1

    @classmethod
    def for_request(cls, environ: dict[str, Any], length: int | None) -> CgiBody | None:
        """The body's source on a CGI gateway; ``None`` for any other server."""
        if not is_cgi(environ):
            return None
        watch_termination()
        return cls(environ["wsgi.input"], length, has_body="HTTP_TRANSFER_ENCODING" in environ)

    def read(self, size: int) -> bytes:
        if self._discarded:
            raise RequestBodyError("the rest of the request body was discarded when the response started: "
                                   "on CGI the front end reads the response only once the whole body is written")
        return self._take(size)

    def discard_rest(self) -> None:
        """Read what is left of the body and drop it, so that the front end can
        write all of it and then read the response. Errors are not raised here:
        the body is not the response's concern any more."""
        if self._ended:
            return
        self._discarded = True
        try:
            while self._take(BLOCK):
                pass
        except (OSError, ValueError):
            pass

    def _take(self, size: int) -> bytes:
        if self._ended or size == 0:
            return b""
        if self._length is not None:
            size = min(size, self._length - self._taken)
            if size == 0:
                self._ended = True
                return b""
        data = self._stdin.read(size)
        if data:
            self._taken += len(data)
            return data
        self._ended = True
        if self._length is None and (_terminated.is_set() or (self._fd >= 0 and _peer_closed(self._fd))):
            raise ClientDisconnected("the front end closed the CGI script's input without ending it: "
                                     "the request body is incomplete")
        return b""
