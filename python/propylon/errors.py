"""Exceptions an application sees while reading a request body (``wsgi.input``).

WSGI 1.1 makes a body that cannot be delivered whole an error, never a silent
end of input (DESIGN.md §1): a read either returns the next bytes of a complete
body, ``b""`` after its last byte, or raises one of these.

They derive from :class:`OSError`, so code that already treats I/O failures on
``wsgi.input`` as ``OSError`` (as frameworks do for socket errors) keeps working,
and they say why in the built-in terms WSGI 1.1 gives (its section 4): a client
gone is a :class:`ConnectionError`, a body over the server's bound has
``errno == errno.EFBIG``, so that a framework can tell them apart on any 1.1
server without importing these classes. The server raises them from Rust;
this module only defines them.
"""

import errno

__all__ = [
    "ClientDisconnected",
    "InvalidRequestBody",
    "RequestBodyError",
    "RequestBodyTooLarge",
]


class RequestBodyError(OSError):
    """Base class: the request body could not be read to its end.

    Catch this to handle every body failure at once.
    """


class ClientDisconnected(RequestBodyError, ConnectionError):
    """The client went away before the request body was complete.

    Raised by a ``wsgi.input`` read when the connection (HTTP/1.1) or stream
    (HTTP/2) closed or was reset mid-body, when a read waited longer than
    ``--body-timeout`` for more data, or when the body came slower than
    ``--min-body-rate``. What was read so far is only part of the
    body and must not be treated as the whole upload.
    """


class RequestBodyTooSlow(ClientDisconnected):
    """The client sent the request body slower than ``--min-body-rate``.

    Raised by a ``wsgi.input`` read once the body's average rate, over the
    time spent waiting for it, fell below the minimum after
    ``--min-body-rate-grace``. A :class:`ClientDisconnected`: code that
    handles a client gone away handles this too. Let through before the
    response has started, it is answered ``408 Request Timeout``.
    """


class RequestBodyTooLarge(RequestBodyError):
    """The request body crossed ``--max-body-size``.

    Raised by the ``wsgi.input`` read that would go past the limit, counted on
    the raw body and, with ``--decompress``, on the decoded body too (so a small
    compressed "zip bomb" cannot expand without bound). A body whose declared
    ``Content-Length`` is already too large is answered with 413 before the
    application runs. If the application lets this exception propagate before
    it has started a response, the server answers 413. Its ``errno`` is
    ``errno.EFBIG``; ``str()`` is the message alone.
    """

    def __init__(self, message: str = "the request body is too large") -> None:
        super().__init__(errno.EFBIG, message)

    def __str__(self) -> str:
        return str(self.strerror)


class InvalidRequestBody(RequestBodyError):
    """The request body is malformed.

    Raised by a ``wsgi.input`` read on bad chunked framing (RFC 9112 §7.1) or a
    body that cannot be decoded with its ``Content-Encoding`` (``--decompress``).
    If the application lets it propagate before it has started a response, the
    server answers 400.
    """
