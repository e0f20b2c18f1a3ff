"""The compiled server (Rust, built by maturin). Python reaches it only through :func:`serve`.

This stub is the module's documented interface; keep it in step with
``src/lib.rs`` (``python -m mypy.stubtest propylon._core`` checks it).
"""

from propylon.config import Config
from propylon.plan import ServePlan

__all__ = ["__version__", "serve"]

__version__: str
"""Version of the compiled crate; equals ``propylon.__version__``."""

def serve(config: Config, plan: ServePlan) -> bool:
    """Serve what ``plan`` names until SIGINT or SIGTERM, then drain and return.

    Binds every address in ``config.binds`` first; if one cannot be bound
    (address in use, permission denied, bad host) raises :class:`OSError` whose
    message names the address and the reason, e.g. ``cannot bind
    127.0.0.1:8000: Address already in use``. Once bound, logs ``Listening on
    http://HOST:PORT`` (``unix:PATH`` for Unix sockets) once per listener on
    ``propylon.server``. ``plan.wsgi`` is a WSGI callable, run on
    ``config.threads`` Python threads, on the URL prefixes ``plan.routes``
    gives it (a request no prefix covers is answered 404); the GIL is released while the server waits.
    ``plan.preload`` (complete ``Link`` field values) goes out as one ``103 Early Hints``
    before the response to each page request (a ``GET`` navigation routed to ``plan.wsgi``)
    unless ``config.early_hints`` is off; a value that is not a valid field value raises
    :class:`ValueError`. On a signal it
    stops accepting, lets requests in flight finish for up to
    ``config.graceful_timeout`` seconds, and returns.

    Returns True when every request finished in time; False when application
    code was still running when the timeout expired (the caller should then
    exit without waiting for those threads, e.g. with ``os._exit``).
    """
