"""Closing the client connection from inside Apache mod_wsgi (embedded mode).

Why this exists. When a response iterable raises after the headers went out,
every PEP 3333 server tested closes the connection, so the client sees a
short body as an error, except mod_wsgi: it ends a ``Content-Length``
response as if it were complete (it withholds the end only of a chunked one)
and Apache keeps the connection open, so the client reads the next response
as the rest of this one (docs/spec/wsgi-1.1.md, "Reference implementation").

What it does. With ``WSGIPassApacheRequest On``, mod_wsgi in embedded mode
puts the request's ``request_rec *`` in ``environ["apache.request_rec"]`` as a
capsule, so that applications can call Apache's C API. :func:`close_connection`
uses it for one call chain of that API, the public functions of Apache 2.4 and
APR that the ``apache2`` process exports to its modules:
``ap_get_conn_socket(r->connection)`` (``connection`` is the second member of
``request_rec``, where it has been since Apache 1.3) and
``apr_socket_shutdown(socket, APR_SHUTDOWN_READWRITE)``. mod_wsgi flushes
every block it writes, so the bytes sent so far are on the socket already:
the client gets them, then the end of the connection instead of the rest of
the body; Apache finds the connection closed when it looks for the next
request, and closes it.

What it does not do. In daemon mode mod_wsgi passes no ``request_rec`` (the
application runs in another process than the client connection), and
without the directive there is none either: :func:`close_connection` then
returns ``False`` and the short response stays what mod_wsgi makes of it.
It never touches another server's environ: it acts only where
``mod_wsgi.version`` is present as well.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

__all__ = ["close_connection"]

#: ``apr_shutdown_how_e``: APR_SHUTDOWN_READ, APR_SHUTDOWN_WRITE, APR_SHUTDOWN_READWRITE.
APR_SHUTDOWN_READWRITE = 2


@functools.lru_cache(maxsize=1)
def _api() -> tuple[Any, Any, Any]:
    """Apache's and APR's functions, looked up in the running process."""
    process = ctypes.CDLL(None)  # the apache2 executable and the libraries it loaded
    get_socket = process.ap_get_conn_socket
    get_socket.restype = ctypes.c_void_p
    get_socket.argtypes = [ctypes.c_void_p]
    shutdown = process.apr_socket_shutdown
    shutdown.restype = ctypes.c_int
    shutdown.argtypes = [ctypes.c_void_p, ctypes.c_int]
    capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    capsule_pointer.restype = ctypes.c_void_p
    capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get_socket, shutdown, capsule_pointer


def close_connection(environ: dict[str, Any]) -> bool:
    """End the client connection of this mod_wsgi request; ``True`` if it was done.

    ``False`` where it cannot be: not mod_wsgi, no ``apache.request_rec`` in
    the environ (daemon mode, or no ``WSGIPassApacheRequest On``), or a
    process without Apache's functions.
    """
    capsule = environ.get("apache.request_rec")
    if capsule is None or "mod_wsgi.version" not in environ:
        return False
    try:
        get_socket, shutdown, capsule_pointer = _api()
        request_rec = capsule_pointer(capsule, None)
    except (OSError, AttributeError, ValueError, TypeError):
        return False
    if not request_rec:
        return False
    connection = ctypes.cast(request_rec, ctypes.POINTER(ctypes.c_void_p))[1]
    if not connection:
        return False
    socket = get_socket(connection)
    if not socket:
        return False
    status: int = shutdown(socket, APR_SHUTDOWN_READWRITE)
    return status == 0
