"""How the server's threads are scheduled and its allocator tuned (Linux): docs/internals/performance.md.

The I/O threads (``propylon-io``) and the pool's monitor (``propylon-pool``)
run in the ``SCHED_BATCH`` class, so that a Python thread handing a response
to a sleeping I/O thread on the same CPU is not preempted by it; the Python
threads (``propylon-worker-N``) stay in the normal class. Read from the
kernel (``sched_getscheduler`` of each thread of the real server process).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import pytest

from tests.support import (
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    RawH2Connection,
    h2_frame,
    http_request,
    request_headers,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="thread scheduling classes are Linux's")


def threads_by_name(pid: int) -> dict[str, list[int]]:
    names: dict[str, list[int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        names.setdefault(name, []).append(int(task.name))
    return names


def policies(tids: list[int]) -> set[int]:
    return {os.sched_getscheduler(tid) for tid in tids}


def test_io_threads_and_monitor_are_batch_and_python_threads_are_not(server):
    status, _, _ = http_request(server.port, "GET", "/")  # every thread has started
    assert status == 200
    names = threads_by_name(server.worker_pid)
    io = names.get("propylon-io", [])
    workers = [tid for name, tids in names.items() if name.startswith("propylon-worke") for tid in tids]
    assert io, f"no propylon-io thread among {sorted(names)}"
    assert workers, f"no propylon-worker thread among {sorted(names)}"
    assert policies(io) == {os.SCHED_BATCH}
    assert policies(names.get("propylon-pool", [])) == {os.SCHED_BATCH}
    assert policies(workers) == {os.SCHED_OTHER}


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc parameters")
@pytest.mark.parametrize("env", [None, "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"])
def test_malloc_is_tuned_unless_the_environment_tunes_it(start_server, monkeypatch, env):
    # glibc's malloc keeps more freed memory at the top of its heaps, so that
    # batches of large objects freed and allocated again do not fault in anew
    # (docs/internals/performance.md, "malloc settings"); a user's own
    # MALLOC_*_THRESHOLD_ wins.
    if env is not None:
        monkeypatch.setenv(env, "262144")
    srv = start_server("tests.apps.wsgi_app:app", "--log-level", "debug")
    expected = "malloc: trim threshold 16 MiB, mmap threshold 1 MiB" if env is None else "malloc: left as"
    srv.wait_for_line(expected)


def write_syscalls(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw in /proc/PID/io")


def test_http2_responses_ready_together_go_out_together(start_server):
    # The server on one CPU, 64 requests sent together on one HTTP/2
    # connection: the Python thread answers them one after the other, and the
    # connection task must write the responses that are ready in one go, not
    # one write(v) per response (the connection task used to run right after
    # each stream task that woke it: tokio's LIFO slot, now disabled).
    srv = start_server("tests.apps.wsgi_app:app", "--threads", "1")
    tids = [int(t.name) for t in Path(f"/proc/{srv.worker_pid}/task").iterdir()]
    for tid in tids:
        os.sched_setaffinity(tid, {min(os.sched_getaffinity(0))})
    count = 64
    with RawH2Connection(srv.port) as conn:
        conn.request(1, request_headers("/"))  # warm up: settings exchanged, every thread started
        conn.read_until(lambda f: f.kind == DATA and f.stream == 1 and f.flags & END_STREAM)
        before = write_syscalls(srv.worker_pid)
        streams = range(3, 3 + 2 * count, 2)
        conn.send(b"".join(
            h2_frame(HEADERS, END_HEADERS | END_STREAM, s, conn.header_block(request_headers("/"))) for s in streams
        ))
        ended: set[int] = set()
        while len(ended) < count:
            frame = conn.read_until(lambda f: f.kind == DATA and f.flags & END_STREAM)
            assert frame is not None, "the connection closed"
            ended.add(frame.stream)
        writes = write_syscalls(srv.worker_pid) - before
    assert writes <= count // 2, f"{writes} write calls for {count} responses"
