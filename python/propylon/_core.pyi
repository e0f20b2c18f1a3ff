"""The compiled server (Rust, built by maturin). Python reaches it only through :func:`serve`.

This stub is the module's documented interface; keep it in step with
``src/lib.rs`` (``python -m mypy.stubtest propylon._core`` checks it).
"""

import asyncio
from collections.abc import Iterable, Iterator
from typing import final

from propylon.config import Config
from propylon.plan import ServePlan
from propylon.worker import WorkerContext

__all__ = ["Metrics", "WebSocketConnection", "__version__", "bind_listeners", "serve"]

__version__: str
"""Version of the compiled crate; equals ``propylon.__version__``."""

@final
class Metrics:
    """The server's metrics: a shared memory region with one slot of counters
    per worker index, made before worker processes are forked (each inherits
    it). A scrape on any worker sums every slot. Cheap to make; usable
    without a server running.

    Raises :class:`ValueError` unless ``1 <= slots <= 4096``.
    """

    def __new__(cls, slots: int) -> Metrics: ...
    @property
    def slots(self) -> int:
        """The number of slots (worker indexes 0 to ``slots - 1``)."""

    def worker_restarted(self) -> None:
        """Count one worker started again after one ended (``propylon_worker_restarts_total``)."""

    def clear_gauges(self, index: int) -> None:
        """Worker ``index`` is gone: its gauges (open connections, queue, threads)
        read zero; its counters stay, so totals stay monotonic. Raises
        :class:`IndexError` for an index without a slot."""

    def render(self) -> bytes:
        """The Prometheus text (format 0.0.4) of every slot, summed, as a scrape answers."""

def serve(
    config: Config,
    plan: ServePlan,
    event_loop: asyncio.AbstractEventLoop | None = None,
    worker: WorkerContext | None = None,
) -> bool:
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

    ``plan.websocket`` names the WebSocket handler of each prefix and its
    style; async handlers run on ``event_loop`` (the worker's loop, running
    on another thread), which is required when there is one.

    ``worker``, for a worker process of a supervisor: serve on the
    listening sockets ``worker.listeners`` (``(fd, tls, metrics only)``,
    which the server takes over) instead of binding, log no ``Listening on``
    lines, write ``ready`` to ``worker.control`` once serving, ``stuck`` when
    every thread has run one request past ``config.timeout`` and
    ``recycle`` after ``worker.max_requests`` requests (0: never), and stop
    as on SIGTERM when the other end of ``worker.control`` closes. SIGQUIT
    stops at once. It counts in ``worker.metrics`` (a :class:`Metrics`, or
    None) at slot ``worker.slot`` (:class:`ValueError` when there is no such
    slot); without one, a server with ``config.metrics_path`` or
    ``config.metrics_bind`` makes a region of one slot itself, and other
    servers count nothing.

    Returns True when every request finished in time; False when application
    code was still running when the timeout expired, or on SIGQUIT (the
    caller should then exit without waiting for those threads, e.g. with
    ``os._exit``).
    """


def bind_listeners(config: Config) -> list[tuple[int, bool, bool, str]]:
    """Bind every address of ``config.binds`` (TLS when ``config.certfile``
    is set), then ``config.insecure_binds``, then ``config.metrics_bind``,
    listening with a backlog of ``config.backlog``, and return each as
    ``(fd, tls, metrics only, description)``; the caller owns the
    descriptors. Raises :class:`OSError` naming the address that cannot be
    bound."""

@final
class WebSocketConnection:
    """One WebSocket, the sync variant of the connection object
    (docs/spec/websocket.md); made by the server, for
    :mod:`propylon.websocket_serving` and the handlers."""

    @property
    def path(self) -> str: ...
    @property
    def query_string(self) -> bytes: ...
    @property
    def headers(self) -> list[tuple[str, str]]: ...
    @property
    def subprotocols(self) -> list[str]: ...
    @property
    def extensions(self) -> list[str]: ...
    @property
    def client(self) -> tuple[str, int] | None: ...
    @property
    def scheme(self) -> str: ...
    @property
    def http_version(self) -> str: ...
    @property
    def subprotocol(self) -> str | None: ...
    @property
    def answered(self) -> bool: ...
    @property
    def accepted(self) -> bool: ...
    @property
    def closed(self) -> tuple[int, str] | None: ...
    def accept(self, subprotocol: str | None = None, headers: Iterable[tuple[str, str]] | None = None) -> None: ...
    def reject(
        self, status: int = 403, headers: Iterable[tuple[str, str]] | None = None, body: bytes | None = None
    ) -> None: ...
    def fail(self) -> None: ...
    def receive(self) -> str | bytes: ...
    def receive_nowait(self) -> str | bytes | None: ...
    def receive_or_wait(self, future: asyncio.Future[str | bytes]) -> str | bytes | None: ...
    def send(self, data: str | bytes | bytearray | memoryview) -> None: ...
    def send_nowait(self, data: str | bytes | bytearray | memoryview) -> bool: ...
    def send_or_wait(self, data: str | bytes | bytearray | memoryview, future: asyncio.Future[None]) -> bool: ...
    def close(self, code: int = 1000, reason: str = "") -> None: ...
    def __iter__(self) -> Iterator[str | bytes]: ...
    def __next__(self) -> str | bytes: ...
