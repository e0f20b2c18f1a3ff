"""The request side of WSGI 1.1 on a PEP 3333 server: a terminated ``wsgi.input``.

Theory of operation. A PEP 3333 server hands the application a stream and a
``CONTENT_LENGTH``; some servers end the stream there (gunicorn, waitress,
mod_wsgi), others give the raw connection (wsgiref), where reading past the
length blocks or eats the next request. :class:`TerminatedInput` puts the
WSGI 1.1 rules (docs/spec/wsgi-1.1.md sections 1, 4 and 5) on top of either:

- it never asks the server's stream for a byte past ``CONTENT_LENGTH``, so it
  ends there whatever the server does, and returns ``b""`` for ever after;
- a stream that ends *before* ``CONTENT_LENGTH`` is a truncated body: the read
  raises :class:`propylon.ClientDisconnected` instead of returning ``b""``;
- a body of unknown length is read to the end only where that end is known to
  exist: the server said its stream is terminated (``wsgi.input_terminated``),
  or the body is chunked and :class:`ChunkedDecoder` removes the framing the
  server left in place; otherwise there is no body (PEP 3333's reading of an
  absent ``CONTENT_LENGTH``), and nothing is read from the connection;
- every byte counts against a limit; crossing it raises
  :class:`propylon.RequestBodyTooLarge`;
- once a read has raised, every later read raises the same error.

What it does not do: decide which of those cases applies (the middleware
does, from the environ), decode content codings, or buffer (``spool_body``
below does, for the compatibility mode of Appendix B).
"""

from __future__ import annotations

import tempfile
from typing import IO, BinaryIO, NoReturn, Protocol

from propylon.errors import ClientDisconnected, InvalidRequestBody, RequestBodyError, RequestBodyTooLarge

__all__ = ["ChunkedDecoder", "TerminatedInput", "spool_body"]

#: Read size when the application asks for "everything" (read() or readline()).
BLOCK = 64 * 1024

#: Longest chunk-size line accepted, extensions included. RFC 9112 sets no
#: limit; h11 and Node.js both stop at a few KiB (h11: 64 KiB for any line,
#: Node: 16 KiB for all heads). 4 KiB is more than any real client sends.
MAX_CHUNK_LINE = 4096

#: Longest trailer section accepted after the last chunk, in bytes.
MAX_TRAILERS = 64 * 1024


class ByteSource(Protocol):
    def read(self, size: int, /) -> bytes: ...


class ChunkedDecoder:
    """Removes HTTP/1.1 chunked framing (RFC 9112 §7.1) from a raw stream.

    For servers that pass a chunked request body through as sent (wsgiref
    does: its ``wsgi.input`` is the connection). ``read(n)`` returns at most
    ``n`` bytes of the current chunk, so it never waits for bytes beyond the
    chunk the client is sending, and ``b""`` after the last chunk and its
    trailer section. Bad framing raises :class:`InvalidRequestBody`; the
    stream ending inside the body raises :class:`ClientDisconnected`.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._left = 0  # bytes left in the current chunk
        self._done = False

    def read(self, size: int) -> bytes:
        if self._done or size == 0:
            return b""
        if self._left == 0:
            self._left = self._chunk_size()
            if self._left == 0:
                self._trailers()
                self._done = True
                return b""
        data = self._raw.read(min(size, self._left))
        if not data:
            raise ClientDisconnected("the connection closed inside a chunk of the request body")
        self._left -= len(data)
        if self._left == 0:
            self._expect_crlf()
        return data

    def _line(self, what: str) -> bytes:
        line = self._raw.readline(MAX_CHUNK_LINE + 1)
        if not line:
            raise ClientDisconnected(f"the connection closed before the {what} of the chunked request body")
        if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\r\n"):
            raise InvalidRequestBody(f"bad chunked framing: {what} line too long or not ended by CRLF")
        return line[:-2]

    def _chunk_size(self) -> int:
        line = self._line("chunk size")
        size = line.split(b";", 1)[0].strip(b" \t")
        if not size or any(c not in b"0123456789abcdefABCDEF" for c in size) or len(size) > 16:
            raise InvalidRequestBody(f"bad chunked framing: chunk size {line[:40]!r}")
        return int(size, 16)

    def _expect_crlf(self) -> None:
        if self._raw.read(2) != b"\r\n":
            raise InvalidRequestBody("bad chunked framing: chunk data not followed by CRLF")

    def _trailers(self) -> None:
        total = 0
        while True:
            line = self._line("trailer section")
            total += len(line) + 2
            if not line:
                return
            if total > MAX_TRAILERS:
                raise InvalidRequestBody("bad chunked framing: trailer section too large")


class TerminatedInput:
    """``wsgi.input`` with the WSGI 1.1 guarantees, over a server's stream.

    ``length`` is the declared ``CONTENT_LENGTH`` or ``None``. With a length,
    exactly that many bytes are read from ``source``, never more. Without
    one, ``source`` is read until it returns ``b""`` if ``terminated`` (the
    server ends its stream, or ``source`` is a :class:`ChunkedDecoder`), and
    the body is empty otherwise. ``limit`` bounds the bytes returned.
    """

    def __init__(self, source: ByteSource, *, length: int | None, terminated: bool, limit: int) -> None:
        self._source = source
        self._length = length
        self._limit = limit
        self._open = length is not None or terminated  # False: nothing to read
        self._consumed = 0  # bytes taken from source
        self._buffer = b""  # taken from source, not yet returned (readline)
        self._error: RequestBodyError | None = None

    # -- PEP 3333 input stream -------------------------------------------------

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._take_buffer()]
            while block := self._pull(BLOCK):
                parts.append(block)
            return b"".join(parts)
        if self._buffer:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            return data
        return self._pull(size)

    def readline(self, size: int | None = -1) -> bytes:
        limit = size if size is not None and size >= 0 else None
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0 and (limit is None or newline < limit):
                line, self._buffer = self._buffer[: newline + 1], self._buffer[newline + 1 :]
                return line
            if limit is not None and len(self._buffer) >= limit:
                line, self._buffer = self._buffer[:limit], self._buffer[limit:]
                return line
            more = self._pull(BLOCK if limit is None else max(1, min(BLOCK, limit - len(self._buffer))))
            if not more:
                return self._take_buffer()
            self._buffer += more

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> TerminatedInput:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    # -- internals ---------------------------------------------------------------

    def _take_buffer(self) -> bytes:
        data, self._buffer = self._buffer, b""
        return data

    def _pull(self, size: int) -> bytes:
        """At most ``size`` new bytes of the body from ``source``; ``b""`` only at its end."""
        if self._error is not None:
            raise self._error
        if not self._open or size == 0:
            return b""
        if self._length is not None:
            size = min(size, self._length - self._consumed)
            if size == 0:
                self._open = False
                return b""
        try:
            data = self._source.read(size)
        except RequestBodyError as exc:
            self._fail(exc)
        except Exception as exc:  # noqa: BLE001 - the server's own error type (OSError, or not)
            # Servers report a client that went away, bad framing or their
            # own limits in their own ways, and cannot be told apart: a read
            # that failed for a cause unknown is a client gone (WSGI 1.1
            # section 4).
            self._fail(ClientDisconnected(f"the server's wsgi.input failed: {type(exc).__name__}: {exc}"), exc)
        if not isinstance(data, bytes):
            self._fail(RequestBodyError(
                f"the server's wsgi.input returned {type(data).__name__}, not bytes (PEP 3333)"))
        if len(data) > size:
            self._fail(RequestBodyError(
                f"the server's wsgi.input returned {len(data)} bytes when asked for {size}"))
        if not data:
            self._open = False
            if self._length is not None:
                self._fail(ClientDisconnected(
                    f"the request body ended after {self._consumed} of {self._length} bytes "
                    "(CONTENT_LENGTH): the client went away, or the server's CONTENT_LENGTH is wrong"))
            return b""
        self._consumed += len(data)
        if self._consumed > self._limit:
            self._fail(RequestBodyTooLarge(
                f"the request body is larger than the maximum of {self._limit} bytes"))
        return data

    def _fail(self, error: RequestBodyError, cause: BaseException | None = None) -> NoReturn:
        error.__cause__ = cause
        self._error = error
        self._open = False
        raise error


def spool_body(stream: TerminatedInput, memory_limit: int) -> tuple[int, IO[bytes]]:
    """Read ``stream`` to its end into memory, spilling to a temporary file past
    ``memory_limit`` bytes; return the length and the file, rewound.

    The compatibility mode of Appendix B. Errors from ``stream`` propagate
    (and the file is closed): a truncated or oversized body is never returned.
    """
    spool = tempfile.SpooledTemporaryFile(max_size=memory_limit)  # noqa: SIM115 - returned open, to the caller
    try:
        length = 0
        while block := stream.read(BLOCK):
            spool.write(block)
            length += len(block)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return length, spool
