"""``--buffer-disk-limit``: the disk all bodies spooled by ``--buffer-body``
hold at once.

A body that needs more than the whole budget gets 413 (it can never be
taken, as nginx answers a body over ``client_max_body_size``); one that finds
the budget held by other bodies gets 503 (it may be taken later); the space
is given back when the request ends. Bodies of at most
``--buffer-memory-limit`` stay in memory and need none.
"""

from __future__ import annotations

import select
import time

import pytest

from tests.support import (
    CLIENT_TIMEOUT,
    RawConnection,
    RawH2Connection,
    assert_serving,
    request_headers,
    send_refusable,
)

#: The budget, and the memory limit past which a body needs it.
DISK = 100 * 1024
MEMORY = 1024
#: A body that takes most of the budget: two do not fit at once.
LARGE = 60 * 1024


@pytest.fixture(scope="module")
def server(start_module_server):
    return start_module_server(
        "tests.apps.wsgi_app:app", "--buffer-body", "--buffer-memory-limit", str(MEMORY),
        "--buffer-disk-limit", str(DISK), "--min-body-rate", "0",
    )  # fmt: skip


def post(port: int, n: int, chunked: bool = False):
    response = send_refusable(port, "POST", "/hash", b"b" * n, chunked=chunked)
    assert response is not None, "the connection closed without an answer"
    return response


def test_bodies_within_the_budget_are_spooled_one_after_another(server):
    # Each gives its space back when its request ends: without that, the
    # second would find the budget used.
    for chunked in (False, True, False):
        response = post(server.port, LARGE, chunked)
        assert response.status == 200
        assert response.json()["length"] == LARGE


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_larger_than_the_whole_budget_gets_413(server, chunked):
    response = post(server.port, DISK + 1, chunked)
    assert (response.status, response.header("connection")) == (413, "close")
    assert_serving(server.port)


def test_a_declared_length_over_the_budget_is_refused_before_the_body_is_sent(server):
    with RawConnection(server.port) as conn:
        conn.send(f"POST /hash HTTP/1.1\r\nHost: t\r\nContent-Length: {DISK + 1}\r\n\r\n".encode())
        response = conn.read_response("POST")
        assert response is not None and response.status == 413


def test_a_body_that_finds_the_budget_held_gets_503_until_it_is_given_back(server):
    """A slow upload holds its declared length of the budget from its head on;
    another that needs more than what is left gets 503 (HTTP/1.1 and HTTP/2)
    while it lasts, and is taken once it has ended."""
    first = b"a" * 1000
    with RawConnection(server.port) as slow:
        slow.send(f"POST /hash HTTP/1.1\r\nHost: t\r\nContent-Length: {LARGE}\r\n\r\n".encode() + first)
        # The slow upload's head may not have been read yet: ask until it has.
        deadline = time.monotonic() + CLIENT_TIMEOUT
        while (response := post(server.port, LARGE)).status != 503:
            assert response.status == 200
            assert time.monotonic() < deadline, "the budget was never found held"
        assert response.header("connection") == "close"
        assert post(server.port, LARGE, chunked=True).status == 503
        with RawH2Connection(server.port) as h2:
            # Answered at its head: the declared length has no room.
            h2.request(1, request_headers("/hash", "POST", extra=[("content-length", str(LARGE))]), end_stream=False)
            frame = h2.read_until(lambda f: f.stream == 1 and f.status is not None)
            assert frame is not None and frame.status == 503
        # What stays in memory needs no disk.
        assert post(server.port, MEMORY).status == 200
        slow.send(b"a" * (LARGE - len(first)))
        response = slow.read_response("POST")
        assert response is not None and response.status == 200
        assert response.json()["length"] == LARGE
    assert post(server.port, LARGE).status == 200


def test_a_temporary_file_that_cannot_be_made_gets_500(start_server, monkeypatch, tmp_path):
    """The server's fault, not the client's (as nginx answers): 500, one
    error line, and the server goes on; a body that stays in memory is
    served."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "missing"))
    srv = start_server("tests.apps.wsgi_app:app", "--buffer-body", "--buffer-memory-limit", str(MEMORY))
    mark = srv.mark()
    response = post(srv.port, LARGE)
    assert (response.status, response.header("connection")) == (500, "close")
    srv.wait_for_line("cannot write the request body to a temporary file", mark)
    response = post(srv.port, MEMORY)
    assert response.status == 200 and response.json()["length"] == MEMORY


def test_bodies_kept_in_memory_count_in_the_memory_budget(start_server):
    """Bodies spooled in memory count in ``--preread-memory-limit``: while a
    slow upload holds most of it, another body goes to disk, where here it
    does not fit (413); once the first has ended, it stays in memory (200)."""
    srv = start_server(
        "tests.apps.wsgi_app:app", "--buffer-body", "--buffer-memory-limit", "1M", "--preread-memory-limit", "64K",
        "--buffer-disk-limit", "10K", "--min-body-rate", "0",
    )  # fmt: skip
    deadline = time.monotonic() + CLIENT_TIMEOUT
    while True:
        slow = RawConnection(srv.port)
        slow.send(f"POST /hash HTTP/1.1\r\nHost: t\r\nContent-Length: {LARGE + 1}\r\n\r\n".encode() + b"a" * LARGE)
        # The slow upload's bytes may not have been read yet: ask until they
        # have. A probe served before them may take the memory first: the
        # slow upload, sent to disk, is then refused (answered at once), and
        # the race starts over with a new one.
        while (response := post(srv.port, LARGE)).status == 200 and not answered(slow):
            assert time.monotonic() < deadline, "the memory budget was never found held"
        if response.status == 413:
            break
        assert response.status == 200, response.status
        slow.close()
        assert time.monotonic() < deadline, "the memory budget was never found held"
    with slow:
        slow.send(b"a")
        response = slow.read_response("POST")
        assert response is not None and response.status == 200
        assert response.json()["length"] == LARGE + 1
    response = post(srv.port, LARGE)
    assert response.status == 200 and response.json()["length"] == LARGE


def answered(connection: RawConnection) -> bool:
    """Whether the server has written to (or closed) `connection`."""
    readable, _, _ = select.select([connection.sock], [], [], 0)
    return bool(readable)
