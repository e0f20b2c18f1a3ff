"""HTTP/2 by prior knowledge (RFC 9113 §3.3) on the same port as HTTP/1.1.

Clients: httpx (``http1=False, http2=True`` speaks HTTP/2 prior knowledge over
cleartext) and curl (``--http2-prior-knowledge`` next to ``--http1.1``).
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import hashlib
import json
import random
import re
import shutil
import struct
import subprocess
import uuid
from urllib.parse import urlencode

import httpx
import pytest

from tests.support import (
    ACK,
    CLIENT_TIMEOUT,
    DATA,
    END_STREAM,
    GOAWAY,
    HEADERS,
    RST_STREAM,
    SETTINGS,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_FRAME_SIZE,
    WINDOW_UPDATE,
    RawConnection,
    RawH2Connection,
    chunks_of,
    h2_frame,
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
    assert env["SERVER_PROTOCOL"] == "HTTP/2.0"
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
    assert result["SERVER_PROTOCOL"] == "HTTP/2.0"


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


def test_http2_responses_carry_the_date_and_the_length_of_a_known_body(server):
    # RFC 9110 §6.6.1: an origin server with a clock sends Date. The HTTP/2
    # driver adds it, and the Content-Length of a body whose size it knows.
    with h2_client() as client:
        response = client.get(f"{server.url}/")
    assert response.http_version == "HTTP/2"
    sent = email.utils.parsedate_to_datetime(response.headers["date"])
    assert abs((sent - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 3600
    assert response.headers["content-length"] == str(len(response.content)) == "5"


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
        "--http2-prior-knowledge": ("2 200", "HTTP/2.0"),
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


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp (nghttp2-client) is not installed")
def test_sigterm_lets_the_streams_in_flight_on_a_connection_finish(start_server, tmp_path):
    # A connection's streams run in its own task (src/runtime/conn/h2.rs):
    # a graceful shutdown (GOAWAY, PING, GOAWAY) must still let every stream
    # in flight answer. nghttp sends all its URIs at once on one connection;
    # httpx cannot be the client here: python-h2 refuses the PING that
    # follows a GOAWAY ("RECV_PING in state CLOSED"), and curl 7.88's
    # --parallel waited for the first transfer before starting the next.
    srv = start_server("tests.apps.wsgi_app:app")
    release = tmp_path / "release"
    token = uuid.uuid4().hex
    urls = [f"{srv.url}/block?release={release}&token={token}-{i}" for i in range(3)]
    client = subprocess.Popen(["nghttp", "-s", "-t", "30", *urls], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for i in range(3):
            srv.wait_for_line(f"BLOCK-STARTED {token}-{i}")
        start = srv.mark()
        srv.terminate()
        srv.wait_for_line("Shutting down", start)
    finally:
        release.touch()
    out, err = client.communicate(timeout=CLIENT_TIMEOUT)
    assert client.returncode == 0, err
    assert out.startswith(b"released" * 3), out
    # nghttp's statistics: one line per stream, all of one connection.
    answered = re.findall(rb"^\s*\d+\s+\S+\s+\S+\s+\S+\s+(\d{3})\s+(\d+) /block", out, re.M)
    assert answered == [(b"200", b"8")] * 3, out
    assert srv.wait() == 0


def test_http2_error_in_app_before_headers_is_500(start_server):
    srv = start_server("tests.apps.error_app:app")
    with h2_client() as client:
        response = client.get(f"{srv.url}/raise-before-start")
        assert response.status_code == 500
        assert client.get(f"{srv.url}/ok").content == b"hello"
    srv.wait_for_line(r"boom raise-before-start")


def test_http2_error_after_first_chunk_resets_the_stream(start_server):
    srv = start_server("tests.apps.error_app:app")
    with h2_client() as client, pytest.raises(httpx.RemoteProtocolError):
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


# ------------------------------------------------- responses without a body


@pytest.fixture(scope="module")
def random_server(start_module_server):
    return start_module_server("tests.apps.random_app:app")


@pytest.fixture(scope="module")
def file_server(start_module_server):
    return start_module_server("tests.apps.file_app:app")


def h2_exchange(port: int, path: str) -> tuple[dict, bytes]:
    """One request on a new HTTP/2 connection: the response's fields and body."""
    with RawH2Connection(port) as conn:
        conn.request(1, request_headers(path))
        fields, body = None, b""
        while True:
            frame = conn.read_until(lambda f: f.stream == 1 and f.kind in (HEADERS, DATA, RST_STREAM))
            assert frame is not None and frame.kind != RST_STREAM, frame
            if frame.kind == HEADERS:
                fields = dict(frame.fields)
            else:
                body += frame.payload
                if frame.payload and not frame.flags & END_STREAM:  # give both windows back
                    for stream in (0, 1):
                        conn.send(h2_frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", len(frame.payload))))
            if frame.flags & END_STREAM:
                return fields, body


@pytest.mark.parametrize("how", ["list", "generator", "write"])
@pytest.mark.parametrize("status", ["204", "304"])
def test_a_204_or_304_goes_out_without_its_body(random_server, status, how):
    # RFC 9110 §6.4.1: no content in a 204 or 304, whatever the application
    # yields; §8.6: no Content-Length on a 204 (a 304 may keep the one the
    # application gave). HTTP/2 sent the body in DATA frames before.
    path = f"/?status={status}&how={how}"
    fields, body = h2_exchange(random_server.port, path)
    assert (fields[":status"], body) == (status, b"")
    assert fields.get("content-length") == (None if status == "204" else "11")
    # HTTP/1.1, both paths: nothing of the body on the wire, so the request
    # pipelined behind reads its own response.
    for target in (path, f"http://t{path}"):
        with RawConnection(random_server.port) as raw:
            raw.send(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            assert raw.read_response().status == int(status)
            after = raw.read_response()
            assert (after.status, after.body) == (200, b"hello")


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_a_file_wrapper_on_a_204_or_304_sends_no_body_and_no_made_up_length(file_server, tmp_path, status):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 5000)
    fields, body = h2_exchange(file_server.port, "/file?" + urlencode({"path": path, "status": status}))
    assert (fields[":status"], body) == (status[:3], b"")
    assert "content-length" not in fields


def test_random_responses_over_http2_are_those_of_http1(random_server):
    # The random responses of tests/apps/random_app.py (400 seeds, one HTTP/2
    # connection, a stream each) against the same over HTTP/1.1: the same
    # status and body; an HTTP/1.1 response cut short (a body short of its
    # Content-Length) is a reset stream over HTTP/2.
    from tests.test_http1_own_path import pipelined_pair

    with RawH2Connection(random_server.port) as conn:
        decode = conn.decoder.decode
        conn.decoder.decode = lambda block: decode(block, raw=True)  # latin-1 values
        for case in range(400):
            http1 = pipelined_pair(random_server.port, b"GET /?seed=%d HTTP/1.1\r\nHost: t\r\n\r\n" % case, "GET")[0]
            stream = 2 * case + 1
            conn.request(stream, request_headers(f"/?seed={case}"))
            status, body, reset = None, b"", False
            while True:
                frame = conn.read_until(lambda f: f.stream == stream and f.kind in (HEADERS, DATA, RST_STREAM))
                assert frame is not None, f"case {case}: the connection closed"
                if frame.kind == RST_STREAM:
                    reset = True
                    break
                if frame.kind == HEADERS:
                    status = int(dict(frame.fields)[b":status"])
                else:
                    body += frame.payload
                    if frame.payload:
                        conn.send(h2_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", len(frame.payload))))
                if frame.flags & END_STREAM:
                    break
            _, http1_status, _, _, http1_body, incomplete = http1
            assert reset == incomplete, f"case {case}"
            if not reset:
                assert (status, body) == (http1_status, http1_body), f"case {case}"


def test_responses_under_random_windows_and_frame_sizes_arrive_whole(server):
    # Seeded cases: an initial stream window from 1 byte to 1 MiB, a maximum
    # frame size from 16 KiB to 16 MiB, up to six streams at once, and a client
    # that gives windows back late, partly or not at all until every stream
    # is stalled. The server must keep to every window and frame size, and
    # every response must arrive whole.
    for case in range(40):
        rng = random.Random(case)
        window = rng.choice([1, 10, 100, 1000, 16384, 65535, 1 << 20])
        frame_size = rng.choice([16384, 16385, 32768, 1 << 20, (1 << 24) - 1])
        sizes = [rng.choice([0, 1, 1000, 70000, 300000, 2_000_000]) for _ in range(rng.randint(1, 6))]
        settings = {SETTINGS_INITIAL_WINDOW_SIZE: window, SETTINGS_MAX_FRAME_SIZE: frame_size}
        with RawH2Connection(server.port, settings=settings) as conn:
            assert conn.read_until(lambda f: f.kind == SETTINGS and f.flags & ACK) is not None
            connection_window = 65535
            windows = {2 * i + 1: window for i in range(len(sizes))}
            received = dict.fromkeys(windows, 0)
            ended = dict.fromkeys(windows, False)
            for stream, size in zip(windows, sizes, strict=False):
                conn.request(stream, request_headers(f"/big?size={size}"))
            while not all(ended.values()):
                frame = conn.read_until(lambda f: f.kind in (HEADERS, DATA, RST_STREAM, GOAWAY))
                assert frame is not None and frame.kind not in (RST_STREAM, GOAWAY), (case, frame)
                if frame.kind == HEADERS:
                    assert frame.status == 200, (case, frame)
                elif frame.payload:
                    n = len(frame.payload)
                    assert n <= frame_size, (case, n, frame_size)
                    windows[frame.stream] -= n
                    connection_window -= n
                    received[frame.stream] += n
                    assert windows[frame.stream] >= 0 and connection_window >= 0, (case, "over the window")
                    if rng.random() < 0.7:
                        back = rng.choice([n, n, 1, max(1, n // 2)])
                        conn.send(h2_frame(WINDOW_UPDATE, 0, frame.stream, struct.pack(">I", back)))
                        windows[frame.stream] += back
                        back = rng.choice([n, 1 << 16])
                        conn.send(h2_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", back)))
                        connection_window += back
                if frame.flags & END_STREAM:
                    ended[frame.stream] = True
                open_streams = [s for s in windows if not ended[s]]
                if open_streams and (connection_window <= 0 or all(windows[s] <= 0 for s in open_streams)):
                    for stream in open_streams:  # everything stalled: open up
                        conn.send(h2_frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", 1 << 20)))
                        windows[stream] += 1 << 20
                    conn.send(h2_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 22)))
                    connection_window += 1 << 22
            assert list(received.values()) == sizes, case


@pytest.mark.parametrize("how", ["one", "many", "list"])
@pytest.mark.parametrize("length", [0, 1, 5])
def test_a_surplus_is_cut_and_the_response_ends_normally(random_server, length, how):
    # WSGI 1.1 section 10: bytes past Content-Length are dropped, and the
    # response is complete. With Content-Length: 0 and a first chunk that was
    # all surplus, HTTP/2 reset the stream (INTERNAL_ERROR) before the fix.
    path = f"/?surplus={length}&how={how}"
    fields, body = h2_exchange(random_server.port, path)
    assert (fields[":status"], fields.get("content-length"), body) == ("200", str(length), b"x" * length)
    for target in (path, f"http://t{path}"):
        with RawConnection(random_server.port) as raw:
            raw.send(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            response = raw.read_response()
            assert (response.status, response.body, response.incomplete) == (200, b"x" * length, False)
            assert raw.read_response().body == b"hello"


def test_an_extended_connect_websocket_handshake_never_reaches_the_application(server):
    # RFC 8441: a client may send an extended CONNECT only after the server's
    # SETTINGS_ENABLE_CONNECT_PROTOCOL, which a server without a WebSocket
    # endpoint does not send; one sent anyway is refused on its stream (never
    # handed to the WSGI application, never left waiting), and the
    # connection goes on serving.
    import socket

    import h2.config
    import h2.connection
    import h2.events

    config = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    with socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(conn.data_to_send())
        settings: dict = {}
        while not settings:
            for event in conn.receive_data(sock.recv(65536)):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    settings = {key: value.new_value for key, value in event.changed_settings.items()}
            sock.sendall(conn.data_to_send())
        assert settings.get(0x8, 0) == 0, "SETTINGS_ENABLE_CONNECT_PROTOCOL is not advertised"
        conn.send_headers(1, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                              (":path", "/env"), (":authority", "t"), ("sec-websocket-version", "13")])  # fmt: skip
        conn.send_headers(3, [(":method", "GET"), (":scheme", "http"), (":path", "/env"), (":authority", "t")],
                          end_stream=True)  # fmt: skip
        sock.sendall(conn.data_to_send())
        outcome: dict[int, object] = {}
        body = b""
        while 3 not in outcome or 1 not in outcome:
            data = sock.recv(65536)
            assert data, f"the connection closed: {outcome}"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.StreamReset):
                    outcome[event.stream_id] = "reset"
                elif isinstance(event, h2.events.ResponseReceived):
                    outcome[event.stream_id] = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    if event.stream_id == 3:
                        body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            sock.sendall(conn.data_to_send())
    assert outcome[1] in ("reset", b"404"), outcome
    assert outcome[3] == b"200"
