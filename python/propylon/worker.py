"""One worker process: the application loaded, started, served, stopped.

A worker is forked by the supervisor (:mod:`propylon.supervisor`). It loads
the application (unless the supervisor already did, with ``--preload``),
reads what it declares and its configuration, runs ``startup(server)`` with
its own index and the worker count in ``server``, serves on the listening
sockets the supervisor bound (``_core.serve(..., worker=WorkerContext)``),
and runs ``shutdown()`` once its requests have drained.

It talks to the supervisor over one end of a socket pair: the compiled
server writes ``ready``, ``stuck`` and ``recycle`` there; this module writes
``fail STATUS MESSAGE`` when the worker cannot start, so that the supervisor,
not each of N workers, prints the one error line. The supervisor writes
nothing; the end of the stream tells the worker that the supervisor is gone.

It does not bind, fork or watch other processes.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

from propylon.appconfig import GivenValue, resolve
from propylon.config import Config, ConfigError
from propylon.declarations import DeclarationError, Declarations, read_application
from propylon.lifecycle import Lifecycle, StartupFailed, server_info
from propylon.loader import AppLoadError, load_app

__all__ = ["EXIT_CONFIG", "EXIT_FAILURE", "AppSource", "BootFailed", "Loaded", "WorkerContext", "load", "run"]

EXIT_CONFIG = 2
EXIT_FAILURE = 1

#: Where a worker's fault handler dumps every Python thread's stack, on the
#: watchdog's request (``--timeout``) or a user's ``kill -USR2``.
STACK_SIGNAL = signal.SIGUSR2

#: Signals whose supervisor handlers a forked worker must not keep.
_SUPERVISOR_SIGNALS = (
    signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD,
)  # fmt: skip


class BootFailed(Exception):
    """The application cannot be loaded or started; ``str()`` is the one
    line to print, ``status`` the exit status (1, or 2 for bad configuration)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AppSource:
    """Where the application comes from: its spec, whether it is a factory,
    and its configuration's sources (command line, environment, file)."""

    spec: str
    factory: bool
    app_cli: list[GivenValue]
    app_env: list[GivenValue]
    app_file: list[GivenValue]


@dataclass(frozen=True)
class Loaded:
    """The application, what it declares, and its resolved configuration."""

    app: object
    declarations: Declarations
    app_config: dict[str, object]


@dataclass(frozen=True)
class WorkerContext:
    """What ``_core.serve`` reads from a supervisor: the listening sockets
    ``(fd, tls, metrics only)`` it hands over, the worker's end of the
    control pair, the number of requests after which it asks to be replaced
    (0: never), and the metrics region (``_core.Metrics``, or None) with the
    worker's slot in it."""

    listeners: list[tuple[int, bool, bool]]
    control: int
    max_requests: int
    metrics: Any = None
    slot: int = 0


def load(source: AppSource, config: Config) -> Loaded:
    """Import the application, read its declarations and configuration.
    Raises :class:`BootFailed`."""
    try:
        app = load_app(source.spec, source.factory)
        declarations = read_application(app)
    except (AppLoadError, DeclarationError) as exc:
        what = str(exc) if isinstance(exc, AppLoadError) else f"{source.spec}: {exc}"
        if exc.__cause__ is None:
            raise BootFailed(what, EXIT_FAILURE) from None
        logging.getLogger("propylon.error").debug("loading %s failed", source.spec, exc_info=exc.__cause__)
        hint = "" if config.log_level == "debug" else " (--log-level debug shows the traceback)"
        raise BootFailed(f"{what}{hint}", EXIT_FAILURE) from None
    try:
        app_config = resolve(source.app_cli, source.app_env, source.app_file, declarations.config)
    except ConfigError as exc:
        raise BootFailed(str(exc), EXIT_CONFIG) from None
    return Loaded(app, declarations, dict(app_config))


def run(
    source: AppSource,
    config: Config,
    preloaded: Loaded | None,
    index: int,
    count: int,
    context: WorkerContext,
) -> int:
    """The worker's whole life, in the forked child; returns its exit status.

    ``index`` (0-based) and ``count`` go to the application as
    ``server.worker`` and ``server.workers``.
    """
    _forget_supervisor_signals()
    faulthandler.register(STACK_SIGNAL, file=sys.stderr, all_threads=True)
    control = context.control

    def fail(message: str, status: int) -> int:
        _tell(control, f"fail {status} {message}")
        return status

    try:
        loaded = preloaded if preloaded is not None else load(source, config)
    except BootFailed as exc:
        return fail(str(exc), exc.status)
    # The import is done: the supervisor stops timing it (--timeout); the
    # start-up hook that follows has its own bound (--startup-timeout).
    _tell(control, "loaded")
    try:
        from propylon import _core
    except ImportError as exc:
        return fail(f"propylon's compiled module is missing ({exc}); reinstall propylon", EXIT_FAILURE)

    def abort(message: str, status: int) -> NoReturn:
        # A hook blocked past its bound: end the process now, from any thread.
        for handler in logging.getLogger("propylon").handlers:
            handler.flush()
        if status != 0:
            _tell(control, f"fail {status} {message}")
        sys.stderr.flush()
        os._exit(status)

    info = server_info(config, loaded.app_config, worker=index, workers=count)
    lifecycle = Lifecycle(loaded.declarations, info, config, abort)
    try:
        lifecycle.start()
    except StartupFailed as exc:
        return fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        lifecycle.loop.stop()
        return fail("interrupted during startup(server)", EXIT_FAILURE)
    try:
        clean = _core.serve(config, loaded.declarations.plan, lifecycle.loop.loop, worker=context)
    except OSError as exc:
        lifecycle.stop()
        return fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        # The server handled SIGINT itself (and drained); Python's own handler
        # also noted it and raises here on the way out. Not an error.
        clean = True
    except BaseException:
        lifecycle.stop()
        raise
    lifecycle.stop()
    if not clean:
        # Application code is still running past --graceful-timeout, or the
        # worker was told to quit: waiting for its threads would defeat the
        # timeout.
        _exit_now(0)
    return 0


def _forget_supervisor_signals() -> None:
    """Give the forked child the default handlers back (Python's own for
    SIGINT): the supervisor's only queue signals for its loop, which does
    not run here. The compiled server installs its own when it serves."""
    signal.set_wakeup_fd(-1)
    for signum in _SUPERVISOR_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _tell(control: int, line: str) -> None:
    """Write one line to the supervisor (newlines in it become spaces)."""
    data = (line.replace("\n", " ") + "\n").encode("utf-8", "replace")
    try:
        os.write(control, data)
    except OSError:
        pass


def _exit_now(status: int) -> NoReturn:
    logging.shutdown()
    sys.stderr.flush()
    os._exit(status)
