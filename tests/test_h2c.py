"""HTTP/2 by upgrade from HTTP/1.1 (issue 4, point 2; RFC 7540 §3.2).

An HTTP/1.1 request with ``Upgrade: h2c``, one ``HTTP2-Settings`` and both
named in ``Connection`` gets ``101 Switching Protocols``; the connection then
speaks HTTP/2 and the request is answered on stream 1, body included. The
client side here is the h2 package (``initiate_upgrade_connection``), so what
the server sends after the 101 is checked by a real HTTP/2 implementation.
curl ``--http2`` and ``nghttp -u`` are in test_tls.py (one server for every
client).

Requests that do not ask properly (no HTTP2-Settings, HTTP/1.0, ...) are
answered in HTTP/1.1. Upgrading over TLS is refused (test_tls.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import h2.config
import h2.connection
import h2.events
import pytest

from tests.support import CLIENT_TIMEOUT, RawConnection, http_request, send_refusable

APP = "tests.apps.wsgi_app:app"
MAX_BODY = 1024 * 1024


@pytest.fixture(scope="module")
def h2c_server(start_module_server):
    return start_module_server(APP, "--max-body-size", str(MAX_BODY))


class Upgraded:
    """An HTTP/1.1 connection upgraded to HTTP/2 by the h2 package's client.

    ``head`` is the HTTP/1.1 response to the upgrade request (101 if it worked).
    ``raw_fields`` are more header lines, as they go on the wire.
    """

    def __init__(self, port: int, method: str = "GET", path: str = "/env", body: bytes = b"",
                 headers: dict[str, str] | None = None, chunked: bool = False, expect: bool = False,
                 raw_fields: bytes = b"") -> None:
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        settings = self.h2.initiate_upgrade_connection().decode()
        self.raw = RawConnection(port)
        fields = {
            "Host": f"127.0.0.1:{port}",
            "Connection": "Upgrade, HTTP2-Settings",
            "Upgrade": "h2c",
            "HTTP2-Settings": settings,
            **(headers or {}),
        }
        if chunked:
            fields["Transfer-Encoding"] = "chunked"
            payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7000]), body[i:i + 7000])
                               for i in range(0, len(body), 7000)) + b"0\r\n\r\n"
        elif body or method == "POST":
            fields["Content-Length"] = str(len(body))
            payload = body
        else:
            payload = b""
        if expect:
            fields["Expect"] = "100-continue"
        head = (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
                + raw_fields.decode("latin-1") + "\r\n")
        if expect:
            # The body goes only after the interim 100 (RFC 9110 §10.1.1).
            self.raw.send(head.encode("latin-1"))
            interim = self.raw.read_head()
            assert interim is not None and interim.status == 100, interim
            self.raw.send(payload)
        else:
            self.raw.send(head.encode("latin-1") + payload)
        self.head = self.raw.read_head()
        assert self.head is not None, "the server closed the connection instead of answering"
        if self.head.status == 101:
            self.raw.send(self.h2.data_to_send())
        self.streams: dict[int, dict] = {}

    def close(self) -> None:
        self.raw.close()

    def _pump(self) -> None:
        data, self.raw.buf = self.raw.buf, b""
        if not data:
            data = self.raw.sock.recv(65536)
            if not data:
                raise AssertionError("the server closed the upgraded connection")
        for event in self.h2.receive_data(data):
            stream = getattr(event, "stream_id", None)
            if stream is None:
                continue
            record = self.streams.setdefault(stream, {"headers": None, "body": [], "ended": False, "reset": None})
            if isinstance(event, h2.events.ResponseReceived):
                record["headers"] = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h2.events.DataReceived):
                record["body"].append(event.data)
                self.h2.acknowledge_received_data(event.flow_controlled_length, stream)
            elif isinstance(event, h2.events.StreamEnded):
                record["ended"] = True
            elif isinstance(event, h2.events.StreamReset):
                record["reset"] = event.error_code
        self.raw.send(self.h2.data_to_send())

    def response(self, stream: int) -> tuple[int, dict[str, str], bytes]:
        """Wait for the whole response on ``stream``: (status, headers, body)."""
        self.raw.sock.settimeout(CLIENT_TIMEOUT)
        while not (record := self.streams.get(stream)) or not (record["ended"] or record["reset"] is not None):
            self._pump()
        assert record["reset"] is None, f"stream {stream} was reset: {record['reset']!r}"
        return int(record["headers"][":status"]), record["headers"], b"".join(record["body"])

    def request(self, method: str, path: str, body: bytes | None = None) -> int:
        """Send another request on the upgraded connection; its stream id."""
        stream = self.h2.get_next_available_stream_id()
        headers = [(":method", method), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1")]
        self.h2.send_headers(stream, headers, end_stream=body is None)
        if body is not None:
            self.h2.send_data(stream, body, end_stream=True)
        self.raw.send(self.h2.data_to_send())
        return stream


def test_get_is_answered_on_stream_1(h2c_server):
    up = Upgraded(h2c_server.port, headers={"X-Custom": "kept"})
    try:
        assert up.head.status == 101
        assert up.head.header("upgrade") == "h2c"
        assert "upgrade" in up.head.header("connection").lower()
        status, _, body = up.response(1)
    finally:
        up.close()
    env = json.loads(body)
    assert status == 200
    assert env["SERVER_PROTOCOL"] == "HTTP/2.0"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["HTTP_HOST"] == f"127.0.0.1:{h2c_server.port}"
    assert env["HTTP_X_CUSTOM"] == "kept"
    assert env["wsgi.url_scheme"] == "http"
    # The upgrade's own fields are HTTP/1.1 connection fields (RFC 9113 §8.2.2): not carried over.
    for name in ("HTTP_UPGRADE", "HTTP_HTTP2_SETTINGS", "HTTP_CONNECTION"):
        assert name not in env, name


def test_post_body_is_answered_on_stream_1(h2c_server):
    body = bytes(range(256)) * 400  # 100 KiB
    up = Upgraded(h2c_server.port, "POST", "/input/read", body)
    try:
        assert up.head.status == 101
        status, _, answer = up.response(1)
    finally:
        up.close()
    result = json.loads(answer)
    assert status == 200
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert result["CONTENT_LENGTH"] == str(len(body))
    assert result["SERVER_PROTOCOL"] == "HTTP/2.0"
    assert result["after_eof"] == ["", "", "", ""]


def test_post_with_expect_100_continue_is_upgraded(h2c_server):
    # curl --http2 sends Expect: 100-continue with bodies over 1 MiB.
    body = b"expected " * 10_000
    up = Upgraded(h2c_server.port, "POST", "/input/read", body, expect=True)
    try:
        assert up.head.status == 101
        status, _, answer = up.response(1)
    finally:
        up.close()
    assert status == 200
    assert json.loads(answer)["sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_post_body_is_answered_on_stream_1(h2c_server):
    body = b"chunked upgrade body " * 2000
    up = Upgraded(h2c_server.port, "POST", "/input/read", body, chunked=True)
    try:
        assert up.head.status == 101
        status, _, answer = up.response(1)
    finally:
        up.close()
    result = json.loads(answer)
    assert status == 200
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert result["CONTENT_LENGTH"] == "<absent>"
    assert result["HTTP_TRANSFER_ENCODING"] == "<absent>"


def test_the_upgraded_connection_serves_more_streams(h2c_server):
    up = Upgraded(h2c_server.port, path="/")
    try:
        assert up.response(1)[2] == b"hello"
        get = up.request("GET", "/env?second=1")
        post = up.request("POST", "/echo", b"on stream five")
        assert (get, post) == (3, 5)
        assert json.loads(up.response(get)[2])["QUERY_STRING"] == "second=1"
        assert up.response(post)[2] == b"on stream five"
    finally:
        up.close()


def test_large_request_head_crosses_into_continuation_frames(h2c_server):
    big = "v" * 40_000  # more than one 16 KiB frame once HPACK-encoded for stream 1
    up = Upgraded(h2c_server.port, headers={"X-Big": big})
    try:
        assert up.head.status == 101
        status, _, body = up.response(1)
    finally:
        up.close()
    assert status == 200
    assert json.loads(body)["HTTP_X_BIG"] == big


@pytest.mark.parametrize("headers, version", [
    ({"Connection": "Upgrade", "Upgrade": "h2c"}, "HTTP/1.1"),  # no HTTP2-Settings
    ({"Connection": "Upgrade", "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABkAAQAAP__"}, "HTTP/1.1"),
    ({"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "TLS/1.2", "HTTP2-Settings": "AAMAAABkAAQAAP__"},
     "HTTP/1.1"),
    ({"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABkAAQAAP__"},
     "HTTP/1.0"),
], ids=["no-settings", "settings-not-in-connection", "not-h2c", "http1.0"])
def test_requests_that_do_not_ask_properly_stay_http1(h2c_server, headers, version):
    head = f"GET /env HTTP/{version[-3:]}\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with RawConnection(h2c_server.port) as raw:
        raw.send(head.encode() + b"\r\n")
        response = raw.read_response()
    assert response is not None and response.status == 200, response
    assert json.loads(response.body)["SERVER_PROTOCOL"] == version


def test_two_http2_settings_fields_stay_http1(h2c_server):
    with RawConnection(h2c_server.port) as raw:
        raw.send(b"GET /env HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                 b"HTTP2-Settings: AAMAAABkAAQAAP__\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
        response = raw.read_response()
    assert response.status == 200
    assert json.loads(response.body)["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_upgrade_with_a_body_over_the_limit_is_413(h2c_server):
    response = send_refusable(h2c_server.port, "POST", "/echo", b"x" * (MAX_BODY + 1), headers={
        "Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c", "HTTP2-Settings": "AAMAAABkAAQAAP__",
    })
    assert response is not None and response.status == 413
    assert http_request(h2c_server.port, "GET", "/")[2] == b"hello"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_http2_upgrade_with_a_post_body(h2c_server, tmp_path):
    body = bytes(range(256)) * 1000
    (tmp_path / "body").write_bytes(body)
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "20", "--http2", "--data-binary", f"@{tmp_path / 'body'}",
         "-w", "\n%{http_version}", f"{h2c_server.url}/input/read"],
        capture_output=True, timeout=30, check=True,
    )
    answer, _, version = result.stdout.rpartition(b"\n")
    result = json.loads(answer)
    assert version == b"2"
    assert result["SERVER_PROTOCOL"] == "HTTP/2.0"
    assert result["sha256"] == hashlib.sha256(body).hexdigest()


def test_an_upgrade_whose_body_stalls_is_answered_at_the_body_timeout(start_server):
    # The upgrade request's body is read in HTTP/1.1 with the waits of any
    # body (--body-timeout): a body that stops coming is answered there, in
    # HTTP/1.1, and the connection closes; it does not hold the connection.
    srv = start_server(APP, "--body-timeout", "1")
    with RawConnection(srv.port) as raw:
        raw.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                 b"HTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 10\r\n\r\nabc")
        response = raw.read_head()
        assert response is not None and response.status == 400, response
        raw.read_until_close()
    assert http_request(srv.port, "GET", "/")[2] == b"hello"
