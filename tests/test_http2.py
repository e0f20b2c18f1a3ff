"""HTTP/2 by prior knowledge (RFC 9113 §3.3) on the same port as HTTP/1.1.

Clients: httpx (``http1=False, http2=True`` speaks HTTP/2 prior knowledge over
cleartext) and curl (``--http2-prior-knowledge`` next to ``--http1.1``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import uuid

import httpx
import pytest

from tests.support import (
    CLIENT_TIMEOUT,
    HEADERS,
    RST_STREAM,
    RawH2Connection,
    chunks_of,
    request_headers,
)


def h2_client() -> httpx.Client:
    return httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT)


def test_get_over_http2(server):
    with h2_client() as client:
        response = client.get(f"{server.url}/env")
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    env = response.json()
    assert env["SERVER_PROTOCOL"] == "HTTP/2"
    assert env["REQUEST_METHOD"] == "GET"


def test_post_with_body_over_http2(server):
    body = bytes(range(256)) * 1000
    with h2_client() as client:
        response = client.post(f"{server.url}/echo", content=body)
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    assert response.content == body


def test_streamed_body_without_content_length_over_http2(server):
    body = b"0123456789abcdef" * 50_000
    with h2_client() as client:
        # An iterator body: httpx sends DATA frames without a content-length header.
        response = client.post(f"{server.url}/hash", content=chunks_of(body, 10_000))
    result = response.json()
    assert response.status_code == 200
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert result["CONTENT_LENGTH"] == "<absent>"
    assert result["SERVER_PROTOCOL"] == "HTTP/2"


def test_streamed_response_over_http2(server):
    with h2_client() as client:
        response = client.get(f"{server.url}/chunked?n=4")
        assert response.content == b"chunk-0;chunk-1;chunk-2;chunk-3;"
        # The connection is still usable after the stream ended.
        assert client.get(f"{server.url}/").content == b"hello"


def test_head_over_http2(server):
    with h2_client() as client:
        get = client.get(f"{server.url}/fixed")
        head = client.head(f"{server.url}/fixed")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_http2_prior_knowledge_and_http11_on_the_same_port(server):
    versions = {}
    for flag in ("--http2-prior-knowledge", "--http1.1"):
        result = subprocess.run(
            ["curl", "-sS", flag, "--max-time", "20", "-w", "\n%{http_version} %{http_code}", f"{server.url}/env"],
            capture_output=True, timeout=30, check=True,
        )
        body, _, summary = result.stdout.rpartition(b"\n")
        versions[flag] = (summary.decode(), json.loads(body)["SERVER_PROTOCOL"])
    assert versions == {
        "--http2-prior-knowledge": ("2 200", "HTTP/2"),
        "--http1.1": ("1.1 200", "HTTP/1.1"),
    }


def test_many_concurrent_streams_on_one_connection(server):
    key = uuid.uuid4().hex
    n_barrier = 4  # must be below --threads (8): the barrier needs them all inside the app at once

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as client:
            together = [client.get(f"{server.url}/barrier?key={key}&n={n_barrier}") for _ in range(n_barrier)]
            many = [client.get(f"{server.url}/env?i={i}") for i in range(60)]
            return await asyncio.gather(*together, *many)

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * len(responses)
    assert {r.http_version for r in responses} == {"HTTP/2"}
    barrier, rest = responses[:n_barrier], responses[n_barrier:]
    # The barrier only opens when all its requests are in the app at the same time.
    assert [json.loads(r.content)["REMOTE_PORT"] for r in barrier]
    assert [r.json()["QUERY_STRING"] for r in rest] == [f"i={i}" for i in range(60)]
    # One client port for all of them: they were streams of a single connection.
    ports = {r.json()["REMOTE_PORT"] for r in rest} | {r.json()["REMOTE_PORT"] for r in barrier}
    assert len(ports) == 1


def test_http2_error_in_app_before_headers_is_500(start_server):
    srv = start_server("tests.apps.error_app:app")
    with h2_client() as client:
        response = client.get(f"{srv.url}/raise-before-start")
        assert response.status_code == 500
        assert client.get(f"{srv.url}/ok").content == b"hello"
    srv.wait_for_line(r"boom raise-before-start")


def test_http2_error_after_first_chunk_resets_the_stream(start_server):
    srv = start_server("tests.apps.error_app:app")
    with h2_client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"{srv.url}/raise-after-first-chunk")
        # Only the stream was reset: the server answers a fresh request.
    with h2_client() as client:
        assert client.get(f"{srv.url}/ok").content == b"hello"
    srv.wait_for_line(r"boom raise-after-first-chunk")


@pytest.mark.parametrize(("method", "path", "refused"), [
    ("GET", "*", True),       # RFC 9113 §8.3.1: "*" only for OPTIONS
    ("POST", "*", True),
    ("GET", "echo", True),    # not "/", not "*": malformed
    ("OPTIONS", "*", False),  # answered by the application
])
def test_a_path_its_method_does_not_allow_is_refused(server, method, path, refused):
    with RawH2Connection(server.port) as conn:
        conn.request(1, request_headers(path, method=method))
        frame = conn.read_until(lambda f: f.stream == 1 and f.kind in (HEADERS, RST_STREAM))
        assert frame is not None, "connection closed without an answer"
        if refused:
            # A 400, or the stream reset: h2 itself refuses some paths.
            assert frame.status == 400 or frame.kind == RST_STREAM, frame
        else:
            assert frame.status != 400, frame
        # The connection serves the next stream.
        conn.request(3, request_headers("/"))
        assert conn.read_until(lambda f: f.stream == 3 and f.kind == HEADERS).status == 200
