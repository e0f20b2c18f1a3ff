"""What flup's FastCGI server gives that its environ does not say.

Why this exists. flup (``flup.server.fcgi``) reports ``wsgi.version``
``(1, 0)`` and no ``wsgi.input_terminated``, yet its ``wsgi.input`` is the
request's FastCGI stdin stream, which ends where the body ends: the front
end sends an empty ``FCGI_STDIN`` record after the last byte, and flup's
``read()`` returns ``b""`` there (FastCGI 1.0 §5.3). The middleware must know
this for a body without a length: nginx with ``fastcgi_request_buffering
off`` streams a chunked body to the gateway as it arrives, de-chunked, with
an empty ``CONTENT_LENGTH`` and ``HTTP_TRANSFER_ENCODING: chunked``. Taken
for a server that does not end its stream, that body would be read as empty,
or de-chunked a second time. When the front end closes the connection
before the end of stdin (nginx does when its client goes away mid-body; it
never sends ``FCGI_ABORT_REQUEST``), flup's ``read()`` raises ``EOFError``,
which the middleware's input turns into :class:`propylon.ClientDisconnected`
like any other failed read.

What it does not do. It does not import flup: a flup stream is recognised
only in a process where flup is already loaded. It says nothing of flup's
SCGI server, whose ``wsgi.input`` is the socket itself (the middleware
bounds it by ``CONTENT_LENGTH``, which SCGI passes on every request), nor of
flup's CGI mode, where the stream is ``sys.stdin``.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["fastcgi_stdin"]


def fastcgi_stdin(environ: dict[str, Any]) -> bool:
    """Whether ``wsgi.input`` is flup's FastCGI stdin stream (ended by the front end)."""
    fcgi_base = sys.modules.get("flup.server.fcgi_base")
    stream_class = getattr(fcgi_base, "InputStream", None)
    return isinstance(stream_class, type) and isinstance(environ.get("wsgi.input"), stream_class)
