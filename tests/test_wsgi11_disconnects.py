"""Clients that go away, on real servers behind ``WSGI11Middleware``: clear errors, no leaks.

For each server we did not write (started for real, tests/wsgi11/servers.py):

- a client that disconnects in the middle of its upload makes the
  application's read raise an ``OSError`` (recorded by the probe), never
  return a short body as if it were whole (or, on a server that reads the
  whole body before calling the application, never reaches it);
- a client that disconnects in the middle of a file download gets the file
  wrapper's ``close()`` called, once;
- after many of both, the server process holds no more file descriptors
  than before (counted in ``/proc/PID/fd``, polled with a deadline while the
  server finishes with the closed connections).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from propylon.wsgi11.conformance.client import Target, request_bytes, wait_for
from tests.support import CLIENT_TIMEOUT, EVENT_TIMEOUT
from tests.wsgi11.servers import SERVERS, unavailable

ROUNDS = 20


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request):
    if reason := unavailable(request.param):
        pytest.skip(reason)
    started = SERVERS[request.param]()
    yield started
    started.close()


def worker_pid(server) -> int:
    """The process that runs the application (gunicorn's worker, not its master)."""
    if server.name != "gunicorn":
        return server.application_pid()
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def record(target: Target, token: str) -> dict | None:
    with target.connect(timeout=CLIENT_TIMEOUT) as conn:
        conn.try_send(request_bytes(target, "GET", f"/result/{token}"))
        response = conn.read_response()
    return json.loads(response.body) if response is not None and response.status == 200 else None


def test_disconnects_give_errors_and_leak_nothing(server):
    target = Target(server.url("middleware"))
    pid = worker_pid(server)
    # Warm up: the first file response and upload may open what the server keeps (logs, modules).
    for path in ("/file?size=1000", "/environ"):
        with target.connect() as conn:
            conn.try_send(request_bytes(target, "GET", path))
            conn.read_response()
    baseline = open_fds(pid)

    uploads, downloads = [], []
    streams = None  # whether the server calls the application before the body is complete
    for _ in range(ROUNDS):
        token = uuid.uuid4().hex
        conn = target.connect()
        conn.try_send(request_bytes(target, "POST", f"/record/{token}", [("Content-Length", "100000")]) + b"x" * 1000)
        if streams is not False:
            entered = wait_for(lambda: record(target, token), 3.0)  # the application is reading
            streams = bool(entered) if streams is None else streams
        conn.close()  # gone, 99 000 bytes short
        uploads.append(token)

        token = uuid.uuid4().hex
        conn = target.connect(rcvbuf=65536)
        conn.try_send(request_bytes(target, "GET", f"/file?size={16 * 1024 * 1024}&mode=subclass&token={token}"))
        conn.read_head()
        conn.read_some(65536)
        conn.abort()  # gone mid-download, with a reset
        downloads.append(token)

    if streams:
        for token in uploads:
            seen = wait_for(lambda: (r := record(target, token)) and "outcome" in r and r, EVENT_TIMEOUT)
            assert seen, f"{server.name}: the application never finished reading the abandoned upload"
            assert seen["outcome"] == "error" and seen["oserror"], f"{server.name}: a truncated upload gave {seen}"
    else:
        # The server reads whole bodies before calling the application (waitress):
        # an abandoned upload must never reach it.
        assert not wait_for(lambda: any(record(target, t) for t in uploads), 2.0)
    for token in downloads:
        closed = wait_for(lambda: (record(target, token) or {}).get("closed"), EVENT_TIMEOUT)
        assert closed == 1, f"{server.name}: the file wrapper's close() ran {closed} times after a disconnect"

    deadline = time.monotonic() + EVENT_TIMEOUT
    while (now := open_fds(pid)) > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert now <= baseline, f"{server.name}: {now - baseline} file descriptors more than before the disconnects"
