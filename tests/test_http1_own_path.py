"""The server's own HTTP/1.1 path (docs/spec/http1.md) and its hand-over to hyper.

Plain HTTP/1.1 requests on cleartext connections are served by the server's
own loop (``src/runtime/h1.rs``); the first request that is not plain (chunked,
``Expect``, ``Upgrade``, HTTP/1.0, a target not in origin form, a malformed
head...) hands the connection to hyper, which serves it from there on. These
tests pin down what that must not change, and what the own path adds:

- a response is byte for byte what hyper writes for the same request (the
  absolute-form target ``GET http://t/path`` is served by hyper, the origin
  form ``GET /path`` by the own path; both name the same resource);
- a connection moves to hyper mid-stream, pipelined bytes included, and says
  so in the debug log;
- a request body is read from the socket by the application's thread: in any
  read sizes, while the response streams, and not past its end; what the
  application leaves unread is discarded, or the connection is closed;
- a body kept past the end of its request cannot read the socket any more;
- on TLS the same loop serves requests without a body, byte for byte as
  hyper, and hands the connection to hyper at the first request with one
  (its body is in TLS records the application's thread cannot read).

Clients: raw sockets (``tests.support.RawConnection``), to see the bytes.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl

import pytest

from tests.support import CLIENT_TIMEOUT, RawConnection, wait_for_file

APP = "tests.apps.wsgi_app:app"

HANDED = r"HTTP/1\.1 request handed to hyper"


@pytest.fixture(scope="module")
def debug_server(start_module_server):
    return start_module_server(APP, "--log-level", "debug")


@pytest.fixture(scope="module")
def tls_debug_server(start_module_server, pki):
    # The cleartext listener beside it is for sync_log.
    return start_module_server(
        APP, *pki.ecdsa.args(), "--insecure-bind", "127.0.0.1:0", "--log-level", "debug"
    )


def connect(port: int, tls: ssl.SSLContext | None = None) -> RawConnection:
    """A raw connection; over TLS (HTTP/1.1 by ALPN) with a context."""
    raw = RawConnection(port)
    if tls is not None:
        raw.sock = tls.wrap_socket(raw.sock, server_hostname="127.0.0.1")
    return raw


def exchange(port: int, request: bytes, method: str = "GET", tls: ssl.SSLContext | None = None):
    """One request on a new connection: the response, and whether the server closed after it."""
    with connect(port, tls) as raw:
        raw.send(request)
        response = raw.read_response(method)
        assert response is not None, request
        raw.sock.settimeout(0.5)
        try:
            closed = raw.sock.recv(1) == b""
        except (TimeoutError, socket.timeout):
            closed = False
        except (ConnectionResetError, ssl.SSLError):
            closed = True
        return response, closed


def comparable(response):
    """A response without the value of its date header (the second may change)."""
    headers = [(name, "<date>" if name.lower() == "date" else value) for name, value in response.headers]
    return response.version, response.status, response.reason, headers, response.body, response.incomplete


CASES = [
    ("GET", "/", b""),
    ("GET", "/fixed", b""),
    ("HEAD", "/fixed", b""),
    ("GET", "/chunked?n=3", b""),
    ("HEAD", "/chunked?n=3", b""),
    ("GET", "/empty-chunks", b""),
    ("GET", "/empty-chunks?cl=1", b""),
    ("GET", "/write", b""),
    ("GET", "/exc-info", b""),
    ("GET", "/no-such-route", b""),
    ("GET", "/status?code=204", b""),
    ("GET", "/status?code=304", b""),
    ("GET", "/status?code=200", b""),
    ("GET", "/cl-more", b""),
    ("GET", "/cl-less", b""),
    ("GET", "/", b"Connection: close\r\n"),
    ("GET", "/", b"Connection: keep-alive, close\r\n"),
    ("POST", "/echo", b"Content-Length: 11\r\n\r\nhello world"),
    ("POST", "/echo", b"Content-Length: 0\r\n"),
    ("GET", "/", b"Cookie: a=1\r\nCookie: b=2\r\nAccept: */*\r\n"),
]


def both_forms(method: str, path: str, extra: bytes) -> tuple[bytes, bytes]:
    """The request with an origin-form target (the own path's) and an absolute-form one (hyper's)."""
    head, _, body = extra.partition(b"\r\n\r\n")
    if body or extra.endswith(b"\r\n\r\n"):
        fields = head + b"\r\n"
    else:
        fields = extra
    target = path.encode()
    own_request = b"%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n%s" % (method.encode(), target, fields, body)
    hyper_request = b"%s http://t%s HTTP/1.1\r\nHost: t\r\n%s\r\n%s" % (method.encode(), target, fields, body)
    return own_request, hyper_request


@pytest.mark.parametrize(("method", "path", "extra"), CASES)
def test_a_response_is_what_hyper_writes(debug_server, method, path, extra):
    own_request, hyper_request = both_forms(method, path, extra)
    start = debug_server.mark()
    own, own_closed = exchange(debug_server.port, own_request, method)
    debug_server.sync_log("own-done")
    assert not any("handed to hyper" in line for line in debug_server.lines_since(start)), (
        "the origin-form request went to hyper"
    )
    theirs, hyper_closed = exchange(debug_server.port, hyper_request, method)
    debug_server.wait_for_line(HANDED + r": Target", start)
    assert comparable(own) == comparable(theirs)
    assert own_closed == hyper_closed


def test_a_connection_moves_to_hyper_at_its_first_request_that_is_not_plain(debug_server):
    start = debug_server.mark()
    with RawConnection(debug_server.port) as raw:
        raw.send(b"GET /env?n=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        first = raw.read_response()
        debug_server.sync_log("first-done")
        assert not any("handed to hyper" in line for line in debug_server.lines_since(start))
        # Chunked: hyper's. It arrives pipelined with a plain request behind it,
        # which hyper serves too, and so on for the rest of the connection.
        raw.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            b"GET /env?n=3 HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        second, third = raw.read_response(), raw.read_response()
        raw.send(b"GET /env?n=4 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        fourth = raw.read_response()
        raw.expect_close()
    assert [r.status for r in (first, second, third, fourth)] == [200] * 4
    assert second.body == b"hello world"
    ports = {json.loads(r.body)["REMOTE_PORT"] for r in (first, third, fourth)}
    assert len(ports) == 1, "one connection throughout"
    assert [json.loads(r.body)["QUERY_STRING"] for r in (first, third, fourth)] == ["n=1", "n=3", "n=4"]
    debug_server.sync_log("moved-done")
    handed = [line for line in debug_server.lines_since(start) if "handed to hyper" in line]
    assert len(handed) == 1 and handed[0].endswith("Framing"), handed


@pytest.mark.parametrize(
    ("request_head", "why"),
    [
        (b"GET / HTTP/1.0\r\n\r\n", "Http10"),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi", "Negotiation"),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2, 2\r\n\r\nhi", "Framing"),
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad Field: x\r\n\r\n", "Malformed"),
    ],
)
def test_what_is_not_plain_is_hypers(debug_server, request_head, why):
    start = debug_server.mark()
    with RawConnection(debug_server.port) as raw:
        raw.send(request_head)
        response = raw.read_response()
        while response is not None and response.status == 100:
            response = raw.read_response()
    assert response is not None and response.status in (200, 400)
    debug_server.wait_for_line(HANDED + ": " + why, start)


def test_pipelined_bodies_and_heads_in_one_segment(server):
    body = b"x" * 3000
    with RawConnection(server.port) as raw:
        raw.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3000\r\n\r\n" + body
            + b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nnext"
            + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        responses = [raw.read_response() for _ in range(3)]
    assert [r.body for r in responses] == [body, b"next", b"hello"]


@pytest.mark.parametrize("read_size", [1, 1000, 16383, 16384, 65536, 100_003])
def test_a_large_body_read_in_any_size_arrives_whole(server, read_size):
    body = bytes(range(256)) * 2048  # 512 KiB, in pieces the client sends one by one
    with RawConnection(server.port) as raw:
        raw.send(b"POST /input/read_n?n=%d HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (read_size, len(body)))
        for i in range(0, len(body), 50_000):
            raw.send(body[i : i + 50_000])
        response = raw.read_response()
    report = json.loads(response.body)
    assert report["length"] == len(body)
    assert report["sha256"] == hashlib.sha256(body).hexdigest()
    assert report["after_eof"] == ["", "", "", ""]


def test_a_body_is_read_while_the_response_streams(server):
    body = hashlib.sha256(b"seed").digest() * 40_000  # 1.25 MB
    with RawConnection(server.port) as raw:
        raw.send(b"POST /stream-echo?n=65536 HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        raw.send(body)
        response = raw.read_response()
        assert response.header("transfer-encoding") == "chunked"
        assert response.body == body
        raw.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert raw.read_response().body == b"hello", "the connection goes on"


def test_an_unread_body_that_is_here_is_discarded_and_the_connection_kept(server):
    with RawConnection(server.port) as raw:
        raw.send(b"POST /expect-noread HTTP/1.1\r\nHost: t\r\nContent-Length: 20000\r\n\r\n" + b"u" * 20000)
        assert raw.read_response().body == b"unread"
        raw.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert raw.read_response().body == b"hello"


def test_an_unread_body_still_to_come_closes_the_connection_after_the_response(server):
    with RawConnection(server.port) as raw:
        raw.send(b"POST /expect-noread HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n" + b"u" * 1000)
        response = raw.read_response()
        assert (response.status, response.body) == (200, b"unread")
        raw.expect_close()


def test_a_body_kept_past_its_request_cannot_read_the_socket(server):
    # The request's body is still arriving when its response is done: the
    # connection closes, and the kept wsgi.input fails instead of reading
    # from a socket that is no longer its own.
    with RawConnection(server.port) as raw:
        raw.send(b"POST /stash HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" + b"s" * 10)
        assert raw.read_response().body == b"stashed"
        raw.expect_close()
    with RawConnection(server.port) as raw:
        raw.send(b"POST /read-stash HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nfresh")
        report = json.loads(raw.read_response().body)
    assert report["error"] == "ClientDisconnected", report
    assert "over" in report["message"]


def test_a_client_gone_mid_body_is_a_disconnect(server, tmp_path):
    record = tmp_path / "record"
    with RawConnection(server.port) as raw:
        raw.send(
            b"POST /body-report HTTP/1.1\r\nHost: t\r\nX-Record-Path: %s\r\nContent-Length: 100000\r\n\r\n"
            % str(record).encode()
            + b"b" * 5000
        )
        wait_for_file(record, lambda text: "started" in text)
    seen = wait_for_file(record, lambda text: "bytes_read" in text)
    report = json.loads(seen.splitlines()[-1])
    assert report["error"] == "ClientDisconnected"
    assert 0 < report["bytes_read"] <= 5000
    assert report["is_oserror"] is True


def test_unix_socket_connections_take_the_own_path(start_server, tmp_path):
    path = tmp_path / "s.sock"
    srv = start_server(APP, binds=(f"unix:{path}",))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CLIENT_TIMEOUT)
    sock.connect(str(path))
    body = b"y" * 70_000
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < len(body):
        chunk = sock.recv(65536)
        assert chunk, data[:200]
        data += chunk
    sock.close()
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert rest == body
    srv.stop()


def test_a_head_longer_than_one_read_is_plain(debug_server):
    # The own path reads 4 KiB at a time: a 20 KB cookie takes several reads,
    # sent in pieces, and is still a plain request.
    cookie = "c=" + "x" * 20_000
    start = debug_server.mark()
    with RawConnection(debug_server.port) as raw:
        head = f"GET /env HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n".encode()
        for i in range(0, len(head), 3000):
            raw.send(head[i : i + 3000])
        env = json.loads(raw.read_response().body)
    assert env["HTTP_COOKIE"] == cookie
    debug_server.sync_log("long-head-done")
    assert not any("handed to hyper" in line for line in debug_server.lines_since(start))


TLS_CASES = [case for case in CASES if b"Content-Length: 11" not in case[2]]


@pytest.mark.parametrize(("method", "path", "extra"), TLS_CASES)
def test_over_tls_a_response_is_what_hyper_writes(tls_debug_server, pki, method, path, extra):
    server = tls_debug_server
    tls = pki.ecdsa.client_context(alpn=("http/1.1",))
    own_request, hyper_request = both_forms(method, path, extra)
    start = server.mark()
    own, own_closed = exchange(server.tls_port, own_request, method, tls)
    server.sync_log("own-done")
    assert not any("handed to hyper" in line for line in server.lines_since(start)), (
        "the origin-form request went to hyper"
    )
    theirs, hyper_closed = exchange(server.tls_port, hyper_request, method, tls)
    server.wait_for_line(HANDED + r": Target", start)
    assert comparable(own) == comparable(theirs)
    assert own_closed == hyper_closed


def test_over_tls_the_first_request_with_a_body_moves_the_connection_to_hyper(tls_debug_server, pki):
    server = tls_debug_server
    start = server.mark()
    with connect(server.tls_port, pki.ecdsa.client_context(alpn=("http/1.1",))) as raw:
        raw.send(b"GET /env?n=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        first = raw.read_response()
        # An empty body is no body: still the own path.
        raw.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        empty = raw.read_response()
        server.sync_log("first-done")
        assert not any("handed to hyper" in line for line in server.lines_since(start))
        body = b"y" * 100_000
        raw.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        echoed = raw.read_response("POST")
        raw.send(b"GET /env?n=4 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        last = raw.read_response()
        raw.expect_close()
    assert [r.status for r in (first, empty, echoed, last)] == [200] * 4
    assert empty.body == b"" and echoed.body == body
    envs = [json.loads(r.body) for r in (first, last)]
    assert len({env["REMOTE_PORT"] for env in envs}) == 1, "one connection throughout"
    assert [env["wsgi.url_scheme"] for env in envs] == ["https", "https"]
    server.sync_log("moved-done")
    handed = [line for line in server.lines_since(start) if "handed to hyper" in line]
    assert len(handed) == 1 and handed[0].endswith("Body"), handed
