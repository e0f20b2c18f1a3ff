"""A worker's life around serving: its event loop, the application's
``startup(server)`` and ``shutdown()`` hooks, and the ``server`` object.

The order (``docs/spec/application.md``, "Lifecycle"):

1. the worker's asyncio event loop starts on its own thread, ``propylon-loop``
   (uvloop's loop when ``uvloop`` can be imported);
2. ``startup(server)`` runs, once, before the server accepts a connection;
3. the server serves until SIGINT/SIGTERM and drains the requests in flight;
4. ``shutdown()`` runs;
5. the loop stops: tasks still pending are cancelled.

A hook is called on the main thread. When it returns an awaitable (it is an
``async def``), that is awaited on the event loop, where the async handlers of
the WebSocket and stream endpoints run too.

Each hook has a bound (``--startup-timeout``, ``--shutdown-timeout``). A
``startup`` that raises or passes its bound fails the worker: the traceback
(or the stack it was stuck in) goes to the ``propylon.error`` log and
:meth:`Lifecycle.start` raises :class:`StartupFailed`, one line. A blocking
call in a plain ``startup`` cannot be interrupted: past the bound the worker
logs where it is stuck and ends the process at once, through ``abort``. A
``shutdown`` that raises or passes its bound is logged; the exit status stays
that of the server.

This module does not read the application (:mod:`propylon.declarations`) or
its configuration (:mod:`propylon.appconfig`), and does not serve.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import inspect
import logging
import sys
import threading
import time
import traceback
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

from propylon import __version__
from propylon.application import ServerInfo
from propylon.config import Config
from propylon.declarations import SERVED_PROTOCOLS, Declarations, describe_exception

__all__ = ["EventLoopThread", "Lifecycle", "StartupFailed", "server_info"]

#: The event loop thread's name.
LOOP_THREAD = "propylon-loop"
#: How long stopping the loop waits for its thread (cancelled tasks finishing).
LOOP_STOP_TIMEOUT = 5.0

_log = logging.getLogger("propylon.error")


def server_info(config: Config, app_config: Mapping[str, object], worker: int = 0, workers: int = 1) -> ServerInfo:
    """The ``server`` object for worker ``worker`` of ``workers`` in this
    deployment: what it serves and provides."""
    features = {"static", "http2", "websocket_over_h2"}
    if config.certfile is not None:
        features.add("tls")
    if config.early_hints:
        features.add("early_hints")
    if config.http2_push:
        features.add("push")
    return ServerInfo(
        name="propylon",
        version=__version__,
        protocols=SERVED_PROTOCOLS,
        features=frozenset(features),
        worker=worker,
        workers=workers,
        config=app_config,
    )


class StartupFailed(Exception):
    """``startup(server)`` raised or did not finish in time; ``str()`` is one line."""


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class EventLoopThread:
    """An asyncio event loop running on a thread of its own until :meth:`stop`."""

    def __init__(self) -> None:
        self.loop = _new_loop()
        self._thread = threading.Thread(target=self._run, name=LOOP_THREAD, daemon=True)
        self._running = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._running.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._running.set)
        try:
            self.loop.run_forever()
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()

    def submit(self, awaitable: Awaitable[Any]) -> concurrent.futures.Future[Exception | None]:
        """Await ``awaitable`` on the loop; the future's result is the
        exception it raised, or None."""
        return asyncio.run_coroutine_threadsafe(_awaited(awaitable), self.loop)

    def stop(self) -> None:
        """Stop the loop, cancel what is still pending, wait for the thread
        (at most :data:`LOOP_STOP_TIMEOUT`: a loop blocked by a call that
        never returns is left to end with the process)."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(LOOP_STOP_TIMEOUT)

    @property
    def thread_id(self) -> int | None:
        return self._thread.ident


async def _awaited(awaitable: Awaitable[Any]) -> Exception | None:
    """Await a hook; its exception is returned, not raised: asyncio hands a
    TimeoutError (or CancelledError) across threads as a new exception,
    without the traceback."""
    try:
        await awaitable
    except Exception as exc:  # noqa: BLE001 - returned to the thread that reports it
        return exc
    return None


class Lifecycle:
    """Runs an application's hooks around serving, on a worker's event loop.

    ``abort(message, status)`` ends the process at once (a plain hook blocked
    past its bound cannot be interrupted); the CLI prints ``message`` as its
    error line when ``status`` is not 0.
    """

    def __init__(
        self,
        declarations: Declarations,
        server: ServerInfo,
        config: Config,
        abort: Callable[[str, int], NoReturn],
    ) -> None:
        self.declarations = declarations
        self.server = server
        self.config = config
        self.abort = abort
        self.loop = EventLoopThread()
        self._started = False

    def start(self) -> None:
        """Start the event loop and run ``startup(server)``; raise
        :class:`StartupFailed` (after stopping the loop) when it fails."""
        self.loop.start()
        startup = self.declarations.startup
        if startup is None:
            self._started = True
            return
        label, limit = "startup(server)", self.config.startup_timeout

        def hung(stack: str) -> NoReturn:
            message = f"{label} did not finish within {limit:g} s (--startup-timeout)"
            _log.error("%s; it is at:\n%s", message, stack)
            self.abort(message, 1)

        try:
            self._run_hook(label, startup, (self.server,), limit, "--startup-timeout", hung)
        except _HookError as exc:
            self.loop.stop()
            raise StartupFailed(str(exc)) from None
        self._started = True

    def stop(self) -> None:
        """Run ``shutdown()`` (when startup succeeded), then stop the event loop.
        Failures are logged, never raised."""
        shutdown = self.declarations.shutdown
        if self._started and shutdown is not None:
            label, limit = "shutdown()", self.config.shutdown_timeout

            def hung(stack: str) -> NoReturn:
                _log.error("%s did not finish within %g s (--shutdown-timeout); it is at:\n%s", label, limit, stack)
                self.abort(f"{label} did not finish within {limit:g} s", 0)

            try:
                self._run_hook(label, shutdown, (), limit, "--shutdown-timeout", hung)
            except _HookError:
                pass  # logged with its traceback
        self.loop.stop()

    def _run_hook(
        self,
        label: str,
        hook: Callable[..., object],
        args: tuple[object, ...],
        limit: float,
        option: str,
        hung: Callable[[str], NoReturn],
    ) -> None:
        """Call the hook on this thread; await what it returns on the loop.
        Raise :class:`_HookError` once the failure is logged."""
        deadline = time.monotonic() + limit
        main = threading.get_ident()
        watchdog = threading.Timer(limit, lambda: hung(_thread_stack(main, below=_RUN_HOOK)))
        watchdog.daemon = True
        watchdog.start()
        try:
            result = hook(*args)
        except Exception as exc:  # noqa: BLE001 - any failure of the hook is reported, one line
            # The traceback starts in the hook, not in this method.
            _log.error("%s raised", label, exc_info=exc.with_traceback(_traceback_below(exc, _RUN_HOOK)))
            raise _HookError(f"{label} raised {describe_exception(exc)}") from None
        finally:
            watchdog.cancel()
        if not inspect.isawaitable(result):
            return
        future = self.loop.submit(result)
        # Waited for, not asked for its result with a timeout: a hook's own
        # TimeoutError must not read as a hook that ran too long.
        concurrent.futures.wait([future], max(0.0, deadline - time.monotonic()))
        if not future.done():
            _log.error(
                "%s did not finish within %g s (%s); it is at:\n%s",
                label, limit, option, self._awaitable_stack(result),
            )  # fmt: skip
            future.cancel()
            raise _HookError(f"{label} did not finish within {limit:g} s ({option})")
        if future.cancelled():
            _log.error("%s was cancelled", label)
            raise _HookError(f"{label} was cancelled")
        failure = future.result()
        if failure is not None:
            trace = _traceback_below(failure, _AWAITED)
            _log.error("%s raised", label, exc_info=failure.with_traceback(trace))
            raise _HookError(f"{label} raised {describe_exception(failure)}")

    def _awaitable_stack(self, awaitable: object) -> str:
        """Where an awaited hook is: its await chain, or, while its code runs
        (a blocking call in an ``async def``), the loop thread's stack."""
        if getattr(awaitable, "cr_running", False) and self.loop.thread_id is not None:
            return _thread_stack(self.loop.thread_id, below=_AWAITED)
        frames = []
        current: Any = awaitable
        while current is not None:
            frame = getattr(current, "cr_frame", None) or getattr(current, "gi_frame", None)
            if isinstance(frame, types.FrameType):
                frames.append((frame, frame.f_lineno))
            current = getattr(current, "cr_await", None) or getattr(current, "gi_yieldfrom", None)
        if not frames:
            return "  (no Python frame: it awaits something outside Python)"
        return "".join(traceback.StackSummary.extract(iter(frames)).format()).rstrip("\n")


class _HookError(Exception):
    """A hook failed; the failure is logged, ``str()`` is one line."""


def _thread_stack(ident: int, below: types.CodeType | None = None) -> str:
    """The stack of the thread ``ident``, from the frame called by the one
    running ``below`` (when there is one) to the innermost."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return "  (the thread has no Python frame)"
    frames: list[tuple[types.FrameType, int]] = []
    current: types.FrameType | None = frame
    while current is not None and current.f_code is not below:
        frames.append((current, current.f_lineno))
        current = current.f_back
    frames.reverse()
    return "".join(traceback.StackSummary.extract(iter(frames)).format()).rstrip("\n")


def _traceback_below(exc: BaseException, code: types.CodeType) -> types.TracebackType | None:
    """``exc``'s traceback from the frame called by the one running ``code``:
    the hook's own frames, not the server's."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code and tb.tb_next is not None:
            return tb.tb_next
        tb = tb.tb_next
    return exc.__traceback__


_RUN_HOOK = Lifecycle._run_hook.__code__
_AWAITED = _awaited.__code__
