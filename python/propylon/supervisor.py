"""The supervisor: one process that owns the listening sockets and keeps
``--workers`` worker processes serving on them.

What it does:

- binds every ``--bind`` once (or takes systemd's sockets, ``LISTEN_FDS``)
  and forks the workers, which all accept on those same sockets: one
  queue per address in the kernel, so a connection waiting there when a
  worker dies is taken by another, not lost (``SO_REUSEPORT`` would give each
  worker its own queue, and the connections in a dead worker's queue would
  be reset);
- says ``Listening on ...`` once every first worker serves;
- replaces a worker that dies (a crash, ``os._exit``, ``kill -9``), after a
  pause that grows while they keep dying (crash-loop back-off);
- replaces a worker that asks for it (every thread stuck past ``--timeout``,
  ``--max-requests`` reached) or that passes ``--max-worker-memory``: the new
  worker first, and once it serves the old one drains (or, stuck, is
  killed);
- on signals, as gunicorn's users expect: SIGTERM and SIGINT stop
  gracefully (the workers drain within ``--graceful-timeout``; a second one
  stops at once), SIGQUIT stops at once, SIGHUP restarts every worker (new
  ones serve before the old ones drain; the code is reloaded unless
  ``--preload``, the TLS certificate always), SIGTTIN and SIGTTOU add and
  remove a worker;
- with ``--reload``, restarts the workers as SIGHUP does when a watched
  file changes (a ``watchfiles`` process watches; see :mod:`propylon._watch`);
- writes ``--pid``, raises its open-file limit to the hard limit for the
  workers to inherit.

A worker that cannot start (its application fails to import, its
``startup`` raises) stops the server with the one line the worker
reported, before anything is served. A new worker that cannot start while
old ones serve (after SIGHUP or an edit under ``--reload``) is logged and
the old ones keep serving.

It does not load the application (but with ``--preload``, through
:func:`propylon.worker.load`), serve requests, or read options.
"""

from __future__ import annotations

import atexit
import enum
import errno
import logging
import os
import random
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from propylon import worker as worker_process
from propylon.config import Config
from propylon.worker import AppSource, Loaded, WorkerContext

if TYPE_CHECKING:
    from propylon._core import Metrics

__all__ = ["Listener", "Supervisor", "bind", "cpu_count"]

_log = logging.getLogger("propylon.server")

#: How long a stopped worker may take to exit after SIGQUIT, or a stuck one
#: after SIGKILL, before the supervisor stops waiting.
QUICK_EXIT = 5.0
#: How long a worker killed for an overdue import has to write its stacks.
STACK_DUMP_GRACE = 1.0
#: The worker's own deadline is --graceful-timeout plus --shutdown-timeout;
#: this much later, the supervisor kills it.
KILL_MARGIN = 5.0
#: A worker that served this long before it died starts a new run of crashes.
STABLE_AFTER = 30.0
#: The pauses before replacing a worker that died, after the first (none).
FIRST_PAUSE = 0.5
MAX_PAUSE = 30.0
#: How often resident memory is read, with --max-worker-memory.
MEMORY_CHECK = 1.0


@dataclass(frozen=True)
class Listener:
    """A bound listening socket the workers inherit."""

    fd: int
    tls: bool
    description: str
    #: The Unix socket path to remove at exit, for sockets bound here.
    path: str | None = None
    #: ``--metrics-bind``: the metrics only.
    metrics: bool = False


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def bind(config: Config) -> list[Listener]:
    """The listening sockets: systemd's when it passed some to this process
    (socket activation, ``LISTEN_PID``/``LISTEN_FDS``), else every ``--bind``
    and ``--insecure-bind``. Raises OSError naming the address."""
    activated = _activated_sockets()
    if activated is not None:
        return [_describe_fd(fd, config.certfile is not None) for fd in activated]
    from propylon import _core

    binds = config.binds + config.insecure_binds + ([config.metrics_bind] if config.metrics_bind else [])
    return [
        Listener(fd, tls, description, bind.path, metrics)
        for (fd, tls, metrics, description), bind in zip(_core.bind_listeners(config), binds, strict=True)
    ]


def _activated_sockets() -> list[int] | None:
    """The descriptors systemd passed (``sd_listen_fds(3)``: from 3 on), or None."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(os.environ.get("LISTEN_FDS", ""))
    except ValueError:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return list(range(3, 3 + count)) if count > 0 else None


def _describe_fd(fd: int, tls: bool) -> Listener:
    os.set_inheritable(fd, False)
    sock = socket.socket(fileno=fd)
    try:
        address = sock.getsockname()
        family = sock.family
    finally:
        sock.detach()
    scheme = "https" if tls else "http"
    if family == socket.AF_UNIX:
        text = address.decode() if isinstance(address, bytes) else address
        return Listener(fd, tls, f"unix:{text}")
    if family == socket.AF_INET6:
        return Listener(fd, tls, f"{scheme}://[{address[0]}]:{address[1]}")
    return Listener(fd, tls, f"{scheme}://{address[0]}:{address[1]}")


class State(enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    #: Asked to stop (SIGTERM, SIGQUIT or SIGKILL sent).
    STOPPING = "stopping"


class Then(enum.Enum):
    """What happens to the worker a new one replaces, once the new one serves."""

    DRAIN = signal.SIGTERM
    KILL = signal.SIGKILL


@dataclass(eq=False)
class Worker:
    pid: int
    index: int
    control: socket.socket
    started: float
    state: State = State.STARTING
    #: The worker this one replaces, and what to do to it once this one serves.
    replaces: Worker | None = None
    then: Then = Then.DRAIN
    #: A replacement started for this worker.
    replaced_by: Worker | None = None
    #: Started by SIGHUP or --reload: failing to start is not fatal.
    restart: bool = False
    #: Its slot in the metrics region.
    slot: int = 0
    #: When to SIGKILL it (while stopping).
    kill_at: float | None = None
    #: Until it has imported the application: when it is overdue (--timeout).
    load_deadline: float | None = None
    failure: tuple[int, str] | None = None
    buffer: bytes = b""


@dataclass
class _Crashes:
    """A worker index's recent deaths, for the back-off."""

    times: deque[float] = field(default_factory=lambda: deque(maxlen=8))
    next_start: float = 0.0


class Supervisor:
    def __init__(
        self,
        source: AppSource,
        config: Config,
        listeners: list[Listener],
        preloaded: Loaded | None = None,
    ) -> None:
        self.source = source
        self.config = config
        self.listeners = listeners
        self.preloaded = preloaded
        self.target = config.workers or cpu_count()
        self.workers: dict[int, Worker] = {}
        self.crashes: dict[int, _Crashes] = {}
        self.announced = False
        self.stopping: str | None = None
        self.status = 0
        self.signals: deque[int] = deque()
        self.selector = selectors.DefaultSelector()
        self.watcher: subprocess.Popen[bytes] | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._next_memory_check = 0.0
        # One slot per live worker process (a replacement and the worker it
        # replaces overlap): made before the first fork, inherited by all.
        self.metrics: Metrics | None = None
        self.free_slots: list[int] = []
        if config.metrics_path is not None or config.metrics_bind is not None:
            from propylon import _core

            slots = min(4096, max(256, 4 * self.target))
            self.metrics = _core.Metrics(slots)
            self.free_slots = list(range(slots - 1, -1, -1))

    # -- running ---------------------------------------------------------------

    def run(self) -> int:
        """Supervise until stopped; returns the exit status."""
        _raise_open_file_limit()
        self._write_pid()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
                       signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD):  # fmt: skip
            signal.signal(signum, self._queue_signal)
        try:
            if self.config.reload:
                try:
                    self._start_watcher()
                except OSError as exc:
                    print(f"propylon: error: {exc}", file=sys.stderr, flush=True)
                    return 1
            for index in range(self.target):
                self._spawn(index)
            while not (self.stopping and not self.workers):
                self._step()
        finally:
            self._cleanup()
        return self.status

    def _queue_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def _step(self) -> None:
        now = time.monotonic()
        timeout = self._next_deadline(now)
        for key, _ in self.selector.select(None if timeout is None else max(0.0, timeout - now)):
            if key.data == "wake":
                try:
                    while os.read(self._wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            elif key.data == "watcher":
                self._read_watcher()
            else:
                self._read_control(key.data)
        while self.signals:
            self._on_signal(self.signals.popleft())
        self._reap()
        now = time.monotonic()
        self._kill_overdue(now)
        self._end_overdue_imports(now)
        if not self.stopping:
            self._check_memory(now)
            self._keep_workers(now)

    def _next_deadline(self, now: float) -> float | None:
        deadlines = [w.kill_at for w in self.workers.values() if w.kill_at is not None]
        deadlines += [w.load_deadline for w in self.workers.values() if w.load_deadline is not None]
        if not self.stopping:
            deadlines += [c.next_start for i, c in self.crashes.items() if c.next_start > now and self._missing(i)]
            if self.config.max_worker_memory:
                deadlines.append(self._next_memory_check)
        return min(deadlines, default=None)

    # -- workers ---------------------------------------------------------------

    def _spawn(self, index: int, replaces: Worker | None = None, then: Then = Then.DRAIN,
               restart: bool = False) -> Worker | None:  # fmt: skip
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        max_requests = self.config.max_requests
        if max_requests and self.config.max_requests_jitter:
            max_requests += random.randint(0, self.config.max_requests_jitter)
        slot = self.free_slots.pop() if self.free_slots else None
        context = WorkerContext(
            listeners=[(listener.fd, listener.tls, listener.metrics) for listener in self.listeners],
            control=theirs.fileno(),
            max_requests=max_requests,
            metrics=self.metrics if slot is not None else None,
            slot=slot or 0,
        )
        try:
            pid = os.fork()
        except OSError as exc:
            # Out of processes or memory: try again after a pause.
            if slot is not None:
                self.free_slots.append(slot)
            ours.close()
            theirs.close()
            _log.error("cannot start worker %d: %s", index, exc)
            crashes = self.crashes.setdefault(index, _Crashes())
            crashes.next_start = time.monotonic() + FIRST_PAUSE
            return None
        if pid == 0:
            status = 1
            try:
                ours.close()
                self._close_in_child()
                status = worker_process.run(
                    self.source, self.config, self.preloaded, index, self.target, context
                )
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                logging.getLogger("propylon.error").exception("worker %d failed", index)
            finally:
                # The process ends here, not through the supervisor's frames
                # below (its clean-up is the supervisor's own); what a normal
                # exit runs for the application still runs: atexit handlers.
                atexit._run_exitfuncs()
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        theirs.close()
        ours.setblocking(False)
        worker = Worker(pid, index, ours, time.monotonic(), replaces=replaces, then=then, restart=restart,
                        slot=-1 if slot is None else slot)  # fmt: skip
        if self.config.timeout:
            worker.load_deadline = worker.started + self.config.timeout
        if replaces is not None:
            replaces.replaced_by = worker
        if self.announced and self.metrics is not None:
            self.metrics.worker_restarted()
        self.workers[pid] = worker
        self.selector.register(ours, selectors.EVENT_READ, worker)
        _log.debug("worker %d: started, pid %d", index, pid)
        return worker

    def _close_in_child(self) -> None:
        """In a forked worker: close what belongs to the supervisor, so that
        the other workers see their supervisor go when it goes."""
        for other in self.workers.values():
            other.control.close()
        self.selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self.watcher is not None and self.watcher.stdout is not None:
            self.watcher.stdout.close()

    def _forget(self, sock: socket.socket) -> None:
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _missing(self, index: int) -> bool:
        """No worker that is not stopping holds ``index``."""
        return index < self.target and not any(
            w.index == index and w.state is not State.STOPPING for w in self.workers.values()
        )

    def _keep_workers(self, now: float) -> None:
        for index in range(self.target):
            if self._missing(index):
                crashes = self.crashes.get(index)
                if crashes is None or crashes.next_start <= now:
                    self._spawn(index)

    def _read_control(self, worker: Worker) -> None:
        try:
            data = worker.control.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._forget(worker.control)
            return
        worker.buffer += data
        *lines, worker.buffer = worker.buffer.split(b"\n")
        for line in lines:
            self._on_notice(worker, line.decode("utf-8", "replace"))

    def _on_notice(self, worker: Worker, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "loaded":
            worker.load_deadline = None
        elif word == "ready":
            self._on_ready(worker)
        elif word == "fail":
            status, _, message = rest.partition(" ")
            worker.failure = (int(status) if status.isdigit() else 1, message)
        elif word == "stuck":
            self._replace(worker, Then.KILL, "every thread stuck past --timeout")
        elif word == "recycle":
            self._replace(worker, Then.DRAIN, "--max-requests reached")

    def _on_ready(self, worker: Worker) -> None:
        if worker.state is State.STARTING:
            worker.state = State.SERVING
        _log.debug("worker %d (pid %d) serving", worker.index, worker.pid)
        old = worker.replaces
        worker.replaces = None
        if old is not None and old.pid in self.workers:
            self._stop(old, worker.then.value)
        if not self.announced and all(w.state is State.SERVING for w in self.workers.values()):
            self.announced = True
            for listener in self.listeners:
                if listener.metrics:
                    _log.info("Metrics on %s/metrics", listener.description)
                else:
                    _log.info("Listening on %s", listener.description)
            _log.info("Serving with %d worker%s (pid %s)", self.target, "" if self.target == 1 else "s",
                      ", ".join(str(w.pid) for w in self.workers.values()))  # fmt: skip

    def _replace(self, worker: Worker, then: Then, why: str, restart: bool = False) -> None:
        if self.stopping or worker.state is not State.SERVING:
            return
        if worker.replaced_by is not None and worker.replaced_by.pid in self.workers:
            return
        _log.info("worker %d (pid %d): %s; starting its replacement", worker.index, worker.pid, why)
        self._spawn(worker.index, replaces=worker, then=then, restart=restart)

    def _stop(self, worker: Worker, signum: int) -> None:
        if worker.state is State.STOPPING and signum == signal.SIGTERM:
            return
        worker.state = State.STOPPING
        now = time.monotonic()
        if signum == signal.SIGTERM:
            wait = self.config.graceful_timeout + self.config.shutdown_timeout + KILL_MARGIN
        else:
            wait = QUICK_EXIT
        worker.kill_at = min(worker.kill_at or float("inf"), now + wait)
        try:
            os.kill(worker.pid, signum)
        except ProcessLookupError:
            pass

    def _kill_overdue(self, now: float) -> None:
        for worker in list(self.workers.values()):
            if worker.kill_at is not None and worker.kill_at <= now:
                if worker.state is State.STOPPING:
                    _log.warning("worker %d (pid %d) did not exit in time: killing it", worker.index, worker.pid)
                worker.kill_at = None
                try:
                    os.kill(worker.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _end_overdue_imports(self, now: float) -> None:
        """A worker still importing the application after ``--timeout``
        (gunicorn's bound on a booting worker) fails to start: its stacks are
        logged (SIGUSR2, the worker's faulthandler), then it is killed."""
        if self.stopping:
            return
        for worker in list(self.workers.values()):
            if worker.load_deadline is None or worker.load_deadline > now:
                continue
            worker.load_deadline = None
            if worker.state is not State.STARTING:
                continue
            worker.failure = (1, f"worker {worker.index} did not import the application within "
                                 f"{self.config.timeout:g} s (--timeout); its Python stacks are in the log")  # fmt: skip
            _log.error("worker %d (pid %d) is still importing the application after %gs (--timeout); "
                       "its Python stacks follow", worker.index, worker.pid, self.config.timeout)  # fmt: skip
            try:
                os.kill(worker.pid, worker_process.STACK_SIGNAL)
            except ProcessLookupError:
                continue
            worker.kill_at = now + STACK_DUMP_GRACE

    def _reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.watcher is not None and pid == self.watcher.pid:
                self.watcher.returncode = os.waitstatus_to_exitcode(wait_status)
                continue
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self._on_exit(worker, wait_status)

    def _on_exit(self, worker: Worker, wait_status: int) -> None:
        # Whatever it still said (a failure) is read before its socket goes.
        self._read_control(worker)
        self._forget(worker.control)
        worker.control.close()
        if self.metrics is not None and worker.slot >= 0:
            self.metrics.clear_gauges(worker.slot)
            self.free_slots.append(worker.slot)
        how = _describe_exit(wait_status)
        if worker.replaces is not None:
            worker.replaces.replaced_by = None
        if worker.state is State.STOPPING:
            _log.debug("worker %d (pid %d) stopped (%s)", worker.index, worker.pid, how)
            return
        if worker.state is State.STARTING:
            self._on_failed_start(worker, how)
            return
        if self.stopping:
            return
        _log.error("worker %d (pid %d) died (%s): replacing it", worker.index, worker.pid, how)
        crashes = self.crashes.setdefault(worker.index, _Crashes())
        now = time.monotonic()
        if now - worker.started >= STABLE_AFTER:
            crashes.times.clear()
        crashes.times.append(now)
        if len(crashes.times) > 1:
            pause = min(FIRST_PAUSE * 2 ** (len(crashes.times) - 2), MAX_PAUSE)
            crashes.next_start = now + pause
            _log.warning("worker %d: %d deaths in a row; waiting %.1fs before the next", worker.index,
                         len(crashes.times), pause)  # fmt: skip

    def _on_failed_start(self, worker: Worker, how: str) -> None:
        message = worker.failure[1] if worker.failure else f"worker {worker.index} exited while starting ({how})"
        status = worker.failure[0] if worker.failure else 1
        if self.stopping:
            return
        if worker.restart and self.announced:
            _log.error("the new worker %d failed to start; the old one keeps serving: %s", worker.index, message)
            return
        if worker.failure is None and self.announced:
            # A crash while starting, on a server that serves: back off, try again.
            crashes = self.crashes.setdefault(worker.index, _Crashes())
            crashes.times.append(time.monotonic())
            pause = min(FIRST_PAUSE * 2 ** (len(crashes.times) - 1), MAX_PAUSE)
            crashes.next_start = time.monotonic() + pause
            _log.error("%s; trying again in %.1fs", message, pause)
            return
        print(f"propylon: error: {message}", file=sys.stderr, flush=True)
        self.status = status
        self._begin_stop("quick")

    # -- signals ---------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            if self.stopping:
                _log.info("%s again: stopping at once", signal.Signals(signum).name)
                self._begin_stop("quick")
            else:
                self._begin_stop("graceful")
        elif signum == signal.SIGQUIT:
            self._begin_stop("quick")
        elif signum == signal.SIGHUP and not self.stopping:
            _log.info("SIGHUP: restarting the workers")
            self._restart_all()
        elif signum == signal.SIGTTIN and not self.stopping:
            self.target += 1
            _log.info("SIGTTIN: %d workers", self.target)
        elif signum == signal.SIGTTOU and not self.stopping and self.target > 1:
            self.target -= 1
            _log.info("SIGTTOU: %d workers", self.target)
            for worker in list(self.workers.values()):
                if worker.index >= self.target:
                    self._stop(worker, signal.SIGTERM)

    def _restart_all(self) -> None:
        for worker in list(self.workers.values()):
            if worker.state is State.SERVING and worker.replaced_by is None:
                self._spawn(worker.index, replaces=worker, then=Then.DRAIN, restart=True)

    def _begin_stop(self, how: str) -> None:
        first = self.stopping is None
        self.stopping = how
        if first:
            # New connections are refused once every worker stops accepting.
            for listener in self.listeners:
                try:
                    os.close(listener.fd)
                except OSError:
                    pass
            if how == "graceful":
                _log.info("Shutting down: the workers drain (up to %gs)", self.config.graceful_timeout)
        signum = signal.SIGTERM if how == "graceful" else signal.SIGQUIT
        for worker in list(self.workers.values()):
            if signum == signal.SIGQUIT or worker.state is not State.STOPPING:
                self._stop(worker, signum)

    # -- memory ----------------------------------------------------------------

    def _check_memory(self, now: float) -> None:
        limit = self.config.max_worker_memory
        if not limit or now < self._next_memory_check:
            return
        self._next_memory_check = now + MEMORY_CHECK
        for worker in list(self.workers.values()):
            if worker.state is not State.SERVING:
                continue
            rss = _resident_memory(worker.pid)
            if rss is not None and rss > limit:
                self._replace(worker, Then.DRAIN, f"resident memory {rss >> 20} MiB over --max-worker-memory")

    # -- --reload --------------------------------------------------------------

    def _start_watcher(self) -> None:
        directories = self.config.reload_dirs or [os.getcwd()]
        self.watcher = subprocess.Popen(
            [sys.executable, "-m", "propylon._watch", *directories],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.watcher.stdout is not None
        # Its first line says it watches.
        if self.watcher.stdout.readline() != b"\n":
            raise OSError("--reload: the file watcher did not start")
        os.set_blocking(self.watcher.stdout.fileno(), False)
        self.selector.register(self.watcher.stdout, selectors.EVENT_READ, "watcher")

    def _read_watcher(self) -> None:
        assert self.watcher is not None and self.watcher.stdout is not None
        try:
            data = os.read(self.watcher.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(self.watcher.stdout)
            _log.error("--reload: the file watcher stopped; files are no longer watched")
            return
        text = data.decode("utf-8", "replace")
        changed = [path for line in text.splitlines() for path in line.split("\t") if path]
        if changed and not self.stopping:
            shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
            _log.info("--reload: %s changed; restarting the workers", shown)
            self._restart_all()

    # -- the rest --------------------------------------------------------------

    def _write_pid(self) -> None:
        if self.config.pid is not None:
            with open(self.config.pid, "w", encoding="ascii") as f:
                f.write(f"{os.getpid()}\n")

    def _cleanup(self) -> None:
        signal.set_wakeup_fd(-1)
        if self.watcher is not None:
            self.watcher.terminate()
            try:
                self.watcher.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.watcher.kill()
        for listener in self.listeners:
            if listener.path is not None:
                try:
                    os.unlink(listener.path)
                except OSError:
                    pass
        if self.config.pid is not None:
            try:
                with open(self.config.pid, encoding="ascii") as f:
                    ours = f.read().strip() == str(os.getpid())
                if ours:
                    os.unlink(self.config.pid)
            except OSError:
                pass
        if self.announced:
            _log.info("Stopped")


def _describe_exit(wait_status: int) -> str:
    if os.WIFSIGNALED(wait_status):
        signum = os.WTERMSIG(wait_status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        return f"signal {name}"
    return f"exit status {os.waitstatus_to_exitcode(wait_status)}"


def _resident_memory(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def _raise_open_file_limit() -> None:
    """The soft limit on open files up to the hard one, as nginx's and
    uvicorn's users do by hand: each connection is a file."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            _log.debug("open files: soft limit %d -> %d", soft, target)
    except (ValueError, OSError) as exc:
        if getattr(exc, "errno", None) not in (errno.EPERM, None):
            _log.debug("open files: cannot raise the soft limit: %s", exc)
