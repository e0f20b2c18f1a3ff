"""``wsgi.file_wrapper`` under WSGI 1.1: a class the server recognises with ``isinstance``
(also through subclasses), sending from ``tell()``, at most Content-Length bytes,
setting Content-Length itself when the app gave none, and always closing the file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
from pathlib import Path

import httpx
import pytest

from tests.support import CLIENT_TIMEOUT, RawConnection, assert_serving, wait_for_file

SIZE = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> tuple[Path, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path_factory.mktemp("files") / "ten-mib.bin"
    path.write_bytes(data)
    return path, data


@pytest.fixture(scope="module")
def file_server(start_module_server):
    return start_module_server("tests.apps.file_app:app")


def fetch(server, query: str, record: Path | None = None) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", f"/file?{query}", headers={"X-Record-Path": str(record)} if record else {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("declared", [True, False], ids=["app-sets-length", "server-sets-length"])
def test_regular_file(file_server, data_file, declared):
    path, data = data_file
    response, body = fetch(file_server, f"path={path}" + (f"&cl={SIZE}" if declared else ""))
    assert response.status == 200
    # Without a length from the app the server sets it to size - position (not chunked).
    assert response.getheader("Content-Length") == str(SIZE)
    assert response.getheader("Transfer-Encoding") is None
    assert sha(body) == sha(data)


def test_sent_from_tell(file_server, data_file):
    path, data = data_file
    response, body = fetch(file_server, f"path={path}&seek=1000")
    assert response.getheader("Content-Length") == str(SIZE - 1000)
    assert sha(body) == sha(data[1000:])


def test_sent_from_tell_with_content_length(file_server, data_file):
    path, data = data_file
    response, body = fetch(file_server, f"path={path}&seek=1000&cl=5000")
    assert response.getheader("Content-Length") == "5000"
    assert body == data[1000:6000]


def test_content_length_smaller_than_file_is_clamped(file_server, data_file):
    path, data = data_file
    with RawConnection(file_server.port) as raw:
        raw.send(f"GET /file?path={path}&cl=1234 HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        response = raw.read_response()
        assert response.header("Content-Length") == "1234"
        assert response.body == data[:1234]
        # No surplus bytes follow on the connection: the next response parses.
        raw.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        after = raw.read_response()
        assert (after.status, after.body) == (200, b"hello")


def test_subclass_is_still_recognised_and_closed(file_server, data_file, tmp_path):
    path, data = data_file
    record = tmp_path / "record"
    response, body = fetch(file_server, f"path={path}&kind=recording", record)
    # Only a server that recognised the subclass as a file wrapper over a regular
    # file knows the length to put here; plain iteration would be chunked.
    assert response.getheader("Content-Length") == str(SIZE)
    assert sha(body) == sha(data)
    assert wait_for_file(record) == "wrapper closed, file closed=True\n"


def test_subclass_closed_when_sent_from_tell(file_server, data_file, tmp_path):
    path, data = data_file
    record = tmp_path / "record"
    _response, body = fetch(file_server, f"path={path}&kind=recording&seek=4096&cl=100", record)
    assert body == data[4096:4196]
    assert wait_for_file(record) == "wrapper closed, file closed=True\n"


@pytest.mark.parametrize("blksize", [1000, 65536])
def test_non_file_filelike_is_read_in_blocks_and_closed(file_server, data_file, tmp_path, blksize):
    path, data = data_file
    record = tmp_path / "record"
    response, body = fetch(file_server, f"path={path}&kind=bytesio&blksize={blksize}&seek=10", record)
    assert response.status == 200
    assert sha(body) == sha(data[10:])
    assert wait_for_file(record) == "bytesio closed\n"


def test_file_shorter_than_content_length_closes_the_connection(file_server, data_file, tmp_path):
    path, _data = data_file
    record = tmp_path / "record"
    start = file_server.mark()
    conn = http.client.HTTPConnection("127.0.0.1", file_server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", f"/file?path={path}&kind=recording&cl=more&extra=1000",
                     headers={"X-Record-Path": str(record)})
        response = conn.getresponse()
        assert response.getheader("Content-Length") == str(SIZE + 1000)
        with pytest.raises(http.client.IncompleteRead) as info:
            response.read()
        assert len(info.value.partial) <= SIZE
    finally:
        conn.close()
    assert wait_for_file(record) == "wrapper closed, file closed=True\n"
    # Logged: the file ended before the declared length.
    assert file_server.wait_for_line(r"\[(WARNING|ERROR)\] propylon\.(?!wsgi)", start)
    assert_serving(file_server.port)


def test_file_over_http2(file_server, data_file, tmp_path):
    path, data = data_file
    record = tmp_path / "record"
    with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as client:
        response = client.get(f"{file_server.url}/file", params={"path": str(path), "kind": "recording",
                                                                 "seek": "3"},
                              headers={"X-Record-Path": str(record)})
    assert response.http_version == "HTTP/2"
    assert response.headers["content-length"] == str(SIZE - 3)
    assert sha(response.content) == sha(data[3:])
    assert wait_for_file(record) == "wrapper closed, file closed=True\n"


def test_head_of_file_sends_no_body_and_closes_file(file_server, data_file, tmp_path):
    path, _ = data_file
    record = tmp_path / "record"
    conn = http.client.HTTPConnection("127.0.0.1", file_server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("HEAD", f"/file?path={path}&kind=recording", headers={"X-Record-Path": str(record)})
        response = conn.getresponse()
        assert response.read() == b""
        assert response.getheader("Content-Length") == str(SIZE)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello"
    finally:
        conn.close()
    assert wait_for_file(record) == "wrapper closed, file closed=True\n"


def test_random_file_responses_are_the_same_on_every_path(file_server, tmp_path):
    # Seeded cases: files of 0 bytes to 3 MB, sent from any offset, with no
    # Content-Length, the exact one, a smaller one or a larger one, through
    # the server's wrapper, a subclass, or a file-like without fileno() in
    # blocks of 1 byte to 64 KiB; asked with GET and HEAD, over HTTP/1.1
    # with an origin-form and an absolute-form target and a request
    # pipelined behind, and over HTTP/2. A complete response is byte for byte
    # the same for both HTTP/1.1 targets and holds the file's bytes from the
    # offset; one cut short (a length larger than the file) is cut short on
    # every path, and its bytes are the file's.
    import random
    from urllib.parse import urlencode

    from tests.test_http1_own_path import pipelined_pair
    from tests.test_http2 import h2_exchange

    for case in range(60):
        rng = random.Random(case)
        size = rng.choice([0, 1, 1000, 65536, 65537, 300_000, 3_000_000])
        path = tmp_path / f"f{case}"
        data = os.urandom(size)
        path.write_bytes(data)
        seek = rng.choice([0, 0, 1, size // 2, size]) if size else 0
        available = size - seek
        kind = rng.choice(["plain", "plain", "recording", "bytesio"])
        params = {"path": str(path), "seek": str(seek), "kind": kind,
                  "blksize": str(rng.choice([4096, 65536] if size > 100_000 else [1, 4096, 65536]))}
        length = rng.choice(["none", "exact", "less", "more"])
        if length == "exact":
            params["cl"] = str(available)
        elif length == "less" and available > 0:
            params["cl"] = str(available - rng.randint(1, min(available, 100)))
        elif length == "more":
            params["cl"], params["extra"] = "more", str(rng.randint(1, 1000))
        query = "/file?" + urlencode(params)
        method = rng.choice(["GET", "GET", "HEAD"])
        where = f"case {case}: {params} {method}"
        own = pipelined_pair(file_server.port, f"{method} {query} HTTP/1.1\r\nHost: t\r\n\r\n".encode(), method)
        absolute = pipelined_pair(file_server.port, f"{method} http://t{query} HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
                               method)
        short = length == "more" and method == "GET"  # the file ends before its length
        if own[0] is not None and own[0][5]:  # cut short
            assert short, where
            assert absolute[0] is None or absolute[0][5], where
            for response in (own[0], absolute[0]):
                if response is not None:
                    assert response[4] == data[seek:seek + len(response[4])], where
            continue
        assert own == absolute, where
        status, body = own[0][1], own[0][4]
        assert status == 200, where
        if method == "GET":
            expected = int(params["cl"]) if "cl" in params and params["cl"] != "more" else available
            assert body == data[seek:seek + expected], where
            if not short:
                fields, h2_body = h2_exchange(file_server.port, query)
                assert (fields[":status"], h2_body) == ("200", body), where
