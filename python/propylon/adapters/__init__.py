"""Serving an application object from other servers.

:func:`asgi` turns an application object (``docs/spec/application.md``), or a
plain WSGI callable, into an ASGI 3 application for uvicorn, hypercorn or any
ASGI server; :func:`wsgi` turns it into a WSGI callable for gunicorn,
waitress, mod_wsgi or any WSGI server. Both serve the static mounts in Python
and the WSGI endpoint, and run ``startup``/``shutdown``; :func:`asgi` serves
the WebSocket endpoint too. What each provides and
what it does not is in ``docs/guide/adapters.md``.

The application object is read when the adapter is built: a declaration that
cannot be served, or configuration (``PROPYLON_APP_*``, the ``[app]`` table of
``PROPYLON_CONFIG``) that does not fit ``__config__``, raises ``ValueError``
there, with one line, so the server fails to load the application.
"""

from __future__ import annotations

from propylon.adapters._asgi import ASGIAdapter
from propylon.adapters._wsgi import WSGIAdapter

__all__ = ["ASGIAdapter", "WSGIAdapter", "asgi", "wsgi"]


def asgi(app: object, *, threads: int = 8, websocket_threads: int = 32) -> ASGIAdapter:
    """An ASGI 3 application serving ``app``: its WSGI endpoint and the events
    of its WebSocket event handlers run in a pool of ``threads`` threads; at
    most ``websocket_threads`` blocking WebSocket handlers run at once (a
    handshake beyond them is refused with 503).

    Example, with ``uvicorn myapp:asgi_app``::

        from propylon.adapters import asgi
        asgi_app = asgi(app)
    """
    return ASGIAdapter(app, threads=threads, websocket_threads=websocket_threads)


def wsgi(app: object) -> WSGIAdapter:
    """A WSGI application serving ``app``.

    Example, with ``gunicorn myapp:wsgi_app``::

        from propylon.adapters import wsgi
        wsgi_app = wsgi(app)
    """
    return WSGIAdapter(app)
