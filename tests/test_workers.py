"""The supervisor and its workers, with real processes and real signals.

Every test starts ``python -m propylon tests.apps.workers_app:app`` (whose
workers write a file into the test's directory when they start and stop, and
can be made to crash, hang or sleep on request) and does to it what happens
in production: workers killed with SIGKILL, segmentation faults, ``os._exit``
in a handler, SIGTERM with requests in flight, SIGHUP under load, handlers
that never return, ``--max-requests``, ``--reload`` after an edit, SIGTTIN and
SIGTTOU, SIGQUIT, a supervisor killed outright, systemd socket activation.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import (
    CLIENT_TIMEOUT,
    EVENT_TIMEOUT,
    REPO,
    ServerProcess,
    assert_one_error_line,
    run_cli,
)

APP = "tests.apps.workers_app:app"


@pytest.fixture
def test_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The directory the app's workers write to (WORKERS_APP_DIR)."""
    monkeypatch.setenv("WORKERS_APP_DIR", str(tmp_path))
    return tmp_path


def get(port: int, path: str, timeout: float = CLIENT_TIMEOUT) -> tuple[int, str]:
    """One request on a connection of its own (Connection: close)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def cut_short(port: int, path: str) -> None:
    """A request the server is expected to drop (run on a client thread)."""
    try:
        get(port, path, timeout=40)
    except (OSError, http.client.HTTPException):
        pass


def wait_until(check: Callable[[], object], what: str, timeout: float = EVENT_TIMEOUT) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.02)


def started(directory: Path) -> list[tuple[int, int, int]]:
    """(worker, workers, pid) of every worker that ran its startup hook."""
    found = []
    for path in directory.glob("started-*"):
        worker, workers, pid = map(int, path.name.split("-")[1:])
        found.append((worker, workers, pid))
    return sorted(found)


def children(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return {int(p) for p in text.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too (its parent has not reaped it yet).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


class Load:
    """Client threads sending requests, each on a new connection, until
    stopped; counts the answers and keeps the failures."""

    def __init__(self, port: int, path: str = "/pid", threads: int = 4) -> None:
        self.port, self.path = port, path
        self.ok = 0
        self.failures: list[str] = []
        self.bodies: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = get(self.port, self.path)
                outcome = None if status == 200 else f"status {status}"
            except (OSError, http.client.HTTPException) as exc:
                outcome, body = repr(exc), ""
            with self._lock:
                if outcome is None:
                    self.ok += 1
                    self.bodies.append(body)
                else:
                    self.failures.append(outcome)

    def wait_for(self, count: int) -> None:
        target = self.ok + count
        wait_until(lambda: self.ok >= target, f"{count} more answers")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT + 5)


# ------------------------------------------------------------------ workers


def test_every_worker_runs_the_startup_hook_with_its_index_and_serves(start_server, test_dir):
    srv = start_server(APP, "--workers", "3")
    srv.wait_for_line(r"Serving with 3 workers")
    assert len([line for line in srv.stderr_lines() if "Listening on" in line]) == 1
    found = wait_until(lambda: len(started(test_dir)) == 3 and started(test_dir), "three startups")
    assert [(worker, workers) for worker, workers, _ in found] == [(0, 3), (1, 3), (2, 3)]
    pids = {pid for _, _, pid in found}
    assert children(srv.proc.pid) == pids
    assert get(srv.port, "/multiprocess")[1] == "True"
    served = {int(get(srv.port, "/pid")[1]) for _ in range(30)}
    assert served <= pids
    assert srv.stop() == 0
    stopped = {int(p.name.split("-")[1]) for p in test_dir.glob("stopped-*")}
    assert stopped == pids, "every worker ran its shutdown hook"


def test_preload_imports_the_application_once_in_the_supervisor(start_server, test_dir):
    srv = start_server(APP, "--workers", "2", "--preload")
    found = wait_until(lambda: len(started(test_dir)) == 2 and started(test_dir), "two startups")
    assert (test_dir / "imported").read_text().split() == [str(srv.proc.pid)]
    # With --preload, SIGHUP restarts the workers from the same code.
    (test_dir / "version_module.py").write_text('VERSION = "two"\n')
    srv.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: len(started(test_dir)) == 4, "two new workers")
    wait_until(lambda: not ({pid for _, _, pid in found} & children(srv.proc.pid)), "the old workers gone")
    assert get(srv.port, "/version")[1] == "one"
    assert (test_dir / "imported").read_text().split() == [str(srv.proc.pid)]


def test_without_preload_each_worker_imports_the_application(start_server, test_dir):
    start_server(APP, "--workers", "2")
    found = wait_until(lambda: len(started(test_dir)) == 2 and started(test_dir), "two startups")
    assert sorted(map(int, (test_dir / "imported").read_text().split())) == sorted(pid for _, _, pid in found)


def test_workers_auto_is_one_per_cpu(start_server, test_dir):
    srv = start_server(APP, "--workers", "auto")
    cpus = len(os.sched_getaffinity(0))
    srv.wait_for_line(rf"Serving with {cpus} worker")
    assert len(children(srv.proc.pid)) == cpus


def test_a_worker_killed_under_load_is_replaced_and_only_its_requests_fail(start_server, test_dir):
    srv = start_server(APP, "--workers", "2")
    wait_until(lambda: len(started(test_dir)) == 2, "two startups")
    load = Load(srv.port)
    try:
        load.wait_for(50)
        victim = sorted(children(srv.proc.pid))[0]
        start = srv.mark()
        os.kill(victim, signal.SIGKILL)
        srv.wait_for_line(rf"worker \d \(pid {victim}\) died \(signal SIGKILL\): replacing it", start)
        wait_until(lambda: len(started(test_dir)) == 3, "the replacement's startup")
        load.wait_for(100)
    finally:
        load.stop()
    # At most the requests the dead worker had in flight: one per client thread.
    assert len(load.failures) <= 4, load.failures
    assert victim not in children(srv.proc.pid)
    assert len(children(srv.proc.pid)) == 2


@pytest.mark.parametrize("path, how", [("/segv", "signal SIGSEGV"), ("/exit", "exit status 3")])
def test_a_handler_that_kills_its_worker_fails_only_its_own_request(start_server, test_dir, path, how):
    srv = start_server(APP, "--workers", "2")
    wait_until(lambda: len(started(test_dir)) == 2, "two startups")
    load = Load(srv.port)
    try:
        load.wait_for(20)
        start = srv.mark()
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            get(srv.port, path)
        srv.wait_for_line(rf"worker \d \(pid \d+\) died \({how}\): replacing it", start)
        wait_until(lambda: len(started(test_dir)) == 3, "the replacement's startup")
        load.wait_for(50)
    finally:
        load.stop()
    assert len(load.failures) <= 4, load.failures
    assert get(srv.port, "/")[1] == "hello"


def test_a_single_worker_that_dies_is_replaced(start_server, test_dir):
    srv = start_server(APP)
    assert get(srv.port, "/multiprocess")[1] == "False"
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        get(srv.port, "/exit")
    # The connection waits in the listen queue until the replacement accepts it.
    assert get(srv.port, "/")[1] == "hello"
    assert len(started(test_dir)) == 2


def test_workers_that_keep_dying_are_restarted_with_back_off(start_server, test_dir):
    srv = start_server(APP)
    start = srv.mark()
    for _ in range(3):
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            get(srv.port, "/exit")
    srv.wait_for_line(r"worker 0: 3 deaths in a row; waiting 1\.0s before the next", start)
    assert get(srv.port, "/")[1] == "hello"


# ------------------------------------------------------------------ signals


def test_sigterm_lets_100_requests_in_flight_finish_and_exits_0(start_server, test_dir):
    srv = start_server(APP, "--threads", "100", "--graceful-timeout", "20")
    results: list[object] = []

    def slow() -> None:
        try:
            results.append(get(srv.port, "/slow?s=2&mark=1", timeout=30))
        except Exception as exc:
            results.append(exc)

    clients = [threading.Thread(target=slow) for _ in range(100)]
    for client in clients:
        client.start()
    arrived = test_dir / "arrived"
    wait_until(lambda: arrived.exists() and len(arrived.read_text().splitlines()) == 100, "100 requests in flight")
    sent = time.monotonic()
    srv.terminate()
    code = srv.wait(25)
    took = time.monotonic() - sent
    for client in clients:
        client.join(CLIENT_TIMEOUT)
    assert code == 0
    assert len(results) == 100
    assert all(isinstance(r, tuple) and r[0] == 200 for r in results), [r for r in results if not isinstance(r, tuple)]
    assert took < 20, f"exited {took:.1f} s after SIGTERM, past --graceful-timeout 20"


def test_sigterm_exits_by_the_graceful_timeout_when_requests_do_not_finish(start_server, test_dir):
    srv = start_server(APP, "--graceful-timeout", "2")
    client = threading.Thread(target=cut_short, args=(srv.port, "/slow?s=30&mark=1"))
    client.start()
    wait_until(lambda: (test_dir / "arrived").exists(), "the request in flight")
    sent = time.monotonic()
    srv.terminate()
    assert srv.wait(15) == 0
    assert time.monotonic() - sent < 5
    client.join(CLIENT_TIMEOUT)


def test_sigquit_stops_at_once(start_server, test_dir):
    srv = start_server(APP, "--workers", "2")
    client = threading.Thread(target=cut_short, args=(srv.port, "/slow?s=30&mark=1"))
    client.start()
    wait_until(lambda: (test_dir / "arrived").exists(), "the request in flight")
    workers = children(srv.proc.pid)
    srv.proc.send_signal(signal.SIGQUIT)
    assert srv.wait(10) == 0
    client.join(CLIENT_TIMEOUT)
    assert not any(alive(pid) for pid in workers)


def test_sighup_restarts_the_workers_under_load_without_a_failed_request(start_server, test_dir):
    srv = start_server(APP, "--workers", "2")
    wait_until(lambda: len(started(test_dir)) == 2, "two startups")
    old = children(srv.proc.pid)
    load = Load(srv.port, "/version")
    try:
        load.wait_for(50)
        (test_dir / "version_module.py").write_text('VERSION = "two"\n')
        start = srv.mark()
        srv.proc.send_signal(signal.SIGHUP)
        srv.wait_for_line(r"SIGHUP: restarting the workers", start)
        wait_until(lambda: not (old & children(srv.proc.pid)), "the old workers gone")
        load.wait_for(50)
    finally:
        load.stop()
    assert load.failures == []
    assert load.bodies[0] == "one" and load.bodies[-1] == "two"
    assert get(srv.port, "/version")[1] == "two"
    # The old workers drained: their shutdown hooks ran.
    assert {int(p.name.split("-")[1]) for p in test_dir.glob("stopped-*")} >= old


def test_a_new_worker_that_fails_to_start_after_sighup_leaves_the_old_one_serving(start_server, test_dir):
    srv = start_server(APP)
    (test_dir / "version_module.py").write_text("raise RuntimeError('broken edit')\n")
    start = srv.mark()
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_for_line(r"the new worker 0 failed to start; the old one keeps serving: .*broken edit", start)
    assert get(srv.port, "/version")[1] == "one"


def test_sigttin_and_sigttou_add_and_remove_a_worker(start_server, test_dir):
    srv = start_server(APP, "--workers", "1")
    wait_until(lambda: len(started(test_dir)) == 1, "one startup")
    srv.proc.send_signal(signal.SIGTTIN)
    srv.wait_for_line(r"SIGTTIN: 2 workers")
    found = wait_until(lambda: len(started(test_dir)) == 2 and started(test_dir), "the second startup")
    added = [pid for worker, _, pid in found if worker == 1]
    assert len(added) == 1
    wait_until(lambda: len(children(srv.proc.pid)) == 2, "two workers")
    srv.proc.send_signal(signal.SIGTTOU)
    srv.wait_for_line(r"SIGTTOU: 1 workers")
    wait_until(lambda: children(srv.proc.pid) == {found[0][2]}, "back to the first worker")
    assert get(srv.port, "/")[1] == "hello"


def test_workers_stop_when_the_supervisor_is_killed(test_dir):
    srv = ServerProcess(APP, ["--workers", "2"], ["127.0.0.1:0"])
    try:
        workers = wait_until(lambda: len(children(srv.proc.pid)) == 2 and children(srv.proc.pid), "two workers")
        srv.proc.kill()
        srv.proc.wait()
        wait_until(lambda: not any(alive(pid) for pid in workers), "the workers gone")  # type: ignore[union-attr]
    finally:
        srv.stopped = True
        if srv.proc.poll() is None:
            srv.proc.kill()


# ------------------------------------------------------------------ stuck and leaking workers


def test_stuck_handlers_are_logged_with_their_stacks_and_the_worker_is_replaced(start_server, test_dir):
    srv = start_server(APP, "--threads", "8", "--timeout", "1")
    wait_until(lambda: len(started(test_dir)) == 1, "one startup")
    stuck_worker = started(test_dir)[0][2]
    clients = []
    for _ in range(8):
        client = threading.Thread(target=cut_short, args=(srv.port, "/stuck"))
        client.start()
        clients.append(client)
    srv.wait_for_line(r"a request has run for \d+s on thread 0x[0-9a-f]+ \(--timeout 1s\); the Python stacks follow")
    srv.wait_for_line(r'File ".*workers_app\.py", line \d+ in wait_here_for_ever')
    srv.wait_for_line(r"every application thread is stuck: asking the supervisor to replace this worker")
    srv.wait_for_line(rf"worker 0 \(pid {stuck_worker}\): every thread stuck past --timeout; starting its replacement")
    wait_until(lambda: not alive(stuck_worker), "the stuck worker killed")
    assert get(srv.port, "/")[1] == "hello"
    for client in clients:
        client.join(CLIENT_TIMEOUT)


def test_max_requests_recycles_workers_without_a_failed_request(start_server, test_dir):
    srv = start_server(APP, "--max-requests", "30", "--max-requests-jitter", "5")
    load = Load(srv.port, threads=2)
    try:
        wait_until(lambda: len(started(test_dir)) >= 3, "two recycles", timeout=40)
        load.wait_for(10)
    finally:
        load.stop()
    assert load.failures == []
    assert len(set(load.bodies)) >= 3
    assert any("--max-requests reached" in line for line in srv.stderr_lines())


def test_max_worker_memory_recycles_a_worker(start_server, test_dir):
    srv = start_server(APP, "--max-worker-memory", "1M")
    srv.wait_for_line(r"resident memory \d+ MiB over --max-worker-memory; starting its replacement")
    wait_until(lambda: len(started(test_dir)) >= 2, "a replacement")
    assert get(srv.port, "/")[1] == "hello"


# ------------------------------------------------------------------ --reload, --pid, socket activation


def test_reload_restarts_the_workers_after_an_edit(start_server, test_dir):
    (test_dir / "version_module.py").write_text('VERSION = "one"\n')
    srv = start_server(APP, "--reload", "--reload-dir", str(test_dir))
    assert get(srv.port, "/version")[1] == "one"
    start = srv.mark()
    (test_dir / "version_module.py").write_text('VERSION = "edited"\n')
    srv.wait_for_line(r"--reload: .*version_module\.py changed; restarting the workers", start)
    wait_until(lambda: get(srv.port, "/version")[1] == "edited", "the edit served")


def test_pid_file_is_written_and_removed(start_server, test_dir):
    pidfile = test_dir / "propylon.pid"
    srv = start_server(APP, "--pid", str(pidfile))
    assert pidfile.read_text().strip() == str(srv.proc.pid)
    assert srv.stop() == 0
    assert not pidfile.exists()


def test_systemd_socket_activation(test_dir):
    """LISTEN_FDS/LISTEN_PID (sd_listen_fds(3)), set by systemd's own
    systemd-socket-activate: the server serves the socket it was given, on
    fd 3, and binds nothing of its own."""
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.skip("systemd-socket-activate is not installed (Debian: package systemd)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [activate, "--listen", f"127.0.0.1:{port}", "-E", "PYTHONPATH", "-E", "WORKERS_APP_DIR",
               sys.executable, "-m", "propylon", APP, "--bind", "127.0.0.1:1"]  # fmt: skip
    proc = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: _answers(port), "the activated socket served") == "hello"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"Listening on http://127.0.0.1:{port}" in err
    assert "Listening on http://127.0.0.1:1\n" not in err


def _answers(port: int) -> str | None:
    try:
        return get(port, "/", timeout=2)[1]
    except OSError:
        return None


def test_limit_concurrency_leaves_connections_in_the_listen_queue(start_server, test_dir):
    srv = start_server(APP, "--limit-concurrency", "1")
    first = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=CLIENT_TIMEOUT)
    first.request("GET", "/")
    assert first.getresponse().read() == b"hello"
    second = socket.create_connection(("127.0.0.1", srv.port), timeout=CLIENT_TIMEOUT)
    second.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    second.settimeout(0.5)
    with pytest.raises(TimeoutError):
        second.recv(1)
    first.close()
    second.settimeout(CLIENT_TIMEOUT)
    assert second.recv(65536).startswith(b"HTTP/1.1 200")
    second.close()


def test_the_open_file_limit_is_raised_to_the_hard_limit(test_dir):
    import resource

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))

    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "propylon", APP, "--bind", "127.0.0.1:0"], cwd=REPO,
                            env=env, preexec_fn=lower, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        workers = wait_until(lambda: children(proc.pid), "a worker")
        (worker,) = workers  # type: ignore[misc]
        limits = wait_until(lambda: _open_files_limit(worker), "the worker's limits")
        assert limits == (4096, 4096)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _open_files_limit(pid: int) -> tuple[int, int] | None:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = re.findall(r"\d+", line)[:2]
            return int(soft), int(hard)
    return None


# ------------------------------------------------------------------ start-up failures


def test_an_application_that_fails_to_import_stops_the_server_with_one_line(tmp_path):
    (tmp_path / "broken_at_import.py").write_text("raise RuntimeError('no database')\n")
    env_path = f"{tmp_path}{os.pathsep}{REPO}"
    result = subprocess.run([sys.executable, "-m", "propylon", "broken_at_import:app", "--workers", "3",
                             "--bind", "127.0.0.1:0"], cwd=REPO, env=dict(os.environ, PYTHONPATH=env_path),
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    line = assert_one_error_line(result, 1)
    assert "no database" in line


def test_an_application_stuck_in_its_import_stops_the_server_after_the_timeout(tmp_path):
    # gunicorn bounds a booting worker by --timeout too; without the bound the
    # server would wait for ever, serving nothing. The stacks say where it hangs.
    (tmp_path / "stuck_at_import.py").write_text(
        "import threading\n\n\ndef connect_to_the_database():\n    threading.Event().wait()\n\n\n"
        "connect_to_the_database()\n"
    )
    env_path = f"{tmp_path}{os.pathsep}{REPO}"
    result = subprocess.run([sys.executable, "-m", "propylon", "stuck_at_import:app", "--workers", "2",
                             "--timeout", "1", "--bind", "127.0.0.1:0"], cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=env_path), capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("propylon: error: ")]
    assert len(errors) == 1 and "did not import the application within 1 s (--timeout)" in errors[0], result.stderr
    assert "connect_to_the_database" in result.stderr, result.stderr


def test_a_startup_hook_that_fails_stops_the_server_with_one_line():
    result = run_cli("tests.apps.application_app:startup_raises", "--workers", "2", "--bind", "127.0.0.1:0")
    assert result.returncode == 1, result.stderr
    # Each worker logs its traceback; the error line is said once.
    errors = [line for line in result.stderr.splitlines() if line.startswith("propylon: error: ")]
    assert errors == ["propylon: error: startup(server) raised ValueError: the database is not there"], result.stderr


@pytest.mark.parametrize(
    "args, text",
    [
        (["--workers", "-1"], "--workers must be at least 0"),
        (["--workers", "many"], "--workers must be a whole number"),
        (["--reload", "--preload"], "--reload and --preload do not go together"),
        (["--max-requests", "x"], "--max-requests must be a whole number"),
    ],
)
def test_bad_worker_options_are_one_line(args, text):
    line = assert_one_error_line(run_cli(APP, "--bind", "127.0.0.1:0", *args, timeout=10), 2)
    assert text in line, line


def test_accept_failures_are_logged_with_back_off_and_the_server_recovers(test_dir):
    """With the open-file limit reached, accept fails with EMFILE for as long
    as the connections stay open: one line, not one per retry."""
    import resource

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "propylon", APP, "--bind", "127.0.0.1:0"], cwd=REPO,
                            env=env, preexec_fn=low_limit, stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    held: list[socket.socket] = []
    try:
        listening = wait_until(lambda: [line for line in lines if "Listening on" in line], "listening")
        port = int(listening[0].rsplit(":", 1)[1])  # type: ignore[index]
        for _ in range(100):
            held.append(socket.create_connection(("127.0.0.1", port)))
        wait_until(lambda: any("accept failed" in line for line in lines), "the failure logged")
        # Retries go on (every 10 ms, doubling to 1 s) for as long as the sockets are held.
        time.sleep(2)
        assert len([line for line in lines if "accept failed" in line]) == 1, lines
        assert "Too many open files" in next(line for line in lines if "accept failed" in line)
        for sock in held:
            sock.close()
        held.clear()
        assert wait_until(lambda: _answers(port), "served again") == "hello"
    finally:
        for sock in held:
            sock.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
