"""Chunked request bodies and ``Expect: 100-continue`` on the server's HTTP/1.x engine.

The connection decodes a chunked body itself (``src/proto/chunked.rs``,
``src/runtime/conn/h1_body.rs``; docs/spec/http1.md, "Bodies the connection
reads"): strictly (RFC 9112 §7.1), never past its end (a pipelined request
behind it is served next), within ``--max-body-size``, over cleartext and
TLS; and it answers ``Expect: 100-continue`` when the application first reads
the body.

Clients: raw sockets (``tests.support.RawConnection``), to see the bytes.
"""

from __future__ import annotations

import hashlib
import json
import ssl

import pytest

from tests.support import RawConnection

APP = "tests.apps.wsgi_app:app"


@pytest.fixture(scope="module")
def small_body_server(start_module_server, pki):
    # A cleartext listener beside the TLS one: each test runs on both.
    return start_module_server(
        APP, "--max-body-size", "1000", "--log-level", "debug",
        *pki.ecdsa.args(), "--insecure-bind", "127.0.0.1:0",
    )


@pytest.fixture(params=["cleartext", "tls"])
def conn(request, small_body_server, pki):
    """A connection factory to the server, over cleartext or TLS (HTTP/1.1)."""
    def connect() -> RawConnection:
        if request.param == "cleartext":
            return RawConnection(small_body_server.port)
        raw = RawConnection(small_body_server.tls_port)
        context: ssl.SSLContext = pki.ecdsa.client_context(alpn=("http/1.1",))
        raw.sock = context.wrap_socket(raw.sock, server_hostname="127.0.0.1")
        return raw
    return connect


def post_chunked(path: str, framing: bytes, extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n%s\r\n%s" % (path, extra, framing)


def test_a_chunked_body_then_a_pipelined_request(conn):
    with conn() as raw:
        raw.send(
            post_chunked(b"/echo", b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
            + b"GET /env?n=2 HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        echoed, env = raw.read_response("POST"), raw.read_response()
    assert (echoed.status, echoed.body) == (200, b"hello world")
    assert (env.status, json.loads(env.body)["QUERY_STRING"]) == (200, "n=2")


def test_trailers_end_the_body_and_the_next_request_follows(conn):
    # WSGI shows no trailers; fields that must not be trailers change
    # nothing (RFC 9110 §6.5.1).
    with conn() as raw:
        raw.send(
            post_chunked(b"/hash", b"3\r\nabc\r\n0\r\nChecksum: x\r\nContent-Length: 99\r\nHost: evil\r\n\r\n")
            + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        hashed, hello = raw.read_response("POST"), raw.read_response()
    result = json.loads(hashed.body)
    assert hashed.status == 200
    assert result["sha256"] == hashlib.sha256(b"abc").hexdigest(), result
    assert (hello.status, hello.body) == (200, b"hello")


@pytest.mark.parametrize(
    "framing",
    [
        b"5 \r\nhello\r\n0\r\n\r\n",  # whitespace after the size, no extension
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",  # bare LF
        b"5\r\nhelloX\r\n0\r\n\r\n",  # no CRLF after the data
        b"10000000000000000\r\n",  # overflow
    ],
    ids=["size-whitespace", "plus", "bare-lf", "no-crlf", "overflow"],
)
def test_invalid_chunked_framing_is_400_and_closes(conn, framing):
    with conn() as raw:
        raw.send(post_chunked(b"/hash", framing) + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        response = raw.read_response("POST")
        assert response.status == 400
        raw.expect_close()


def test_a_chunked_body_over_the_maximum_is_413(conn):
    chunk = b"100\r\n" + b"x" * 256 + b"\r\n"
    with conn() as raw:
        raw.send(post_chunked(b"/hash", chunk * 5 + b"0\r\n\r\n"))
        response = raw.read_response("POST")
        assert response.status == 413
        raw.expect_close()


def test_expect_100_continue_with_a_chunked_body(conn):
    with conn() as raw:
        raw.send(post_chunked(b"/echo", b"", b"Expect: 100-continue\r\n"))
        interim = raw.read_head()
        assert (interim.version, interim.status) == ("HTTP/1.1", 100)
        raw.send(b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
        final, hello = raw.read_response("POST"), raw.read_response()
    assert (final.status, final.body) == (200, b"hello")
    assert (hello.status, hello.body) == (200, b"hello")


def test_expect_100_continue_unread_gets_the_response_then_the_close(conn):
    # RFC 9110 §10.1.1: the final response instead of 100; the client may or
    # may not send the body now, so the connection says it closes, and does.
    with conn() as raw:
        raw.send(b"POST /expect-noread HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                 b"Expect: 100-continue\r\n\r\n")
        response = raw.read_response("POST")
        assert (response.status, response.body) == (200, b"unread")
        assert response.header("connection") == "close"
        raw.expect_close()


def test_no_100_continue_once_the_response_has_started(conn):
    # The application writes the start of its response, then reads the body:
    # no interim response may come after the final one has started (RFC
    # 9110 §15.2); the client sends the body anyway, and gets it echoed.
    with conn() as raw:
        raw.send(b"POST /write-then-read HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                 b"Expect: 100-continue\r\n\r\n")
        head = raw.read_head()
        assert head.status == 200, "the final response first"
        assert head.header("connection") == "close"
        raw.send(b"hello")
        assert raw.read_until_close().endswith(b"early \r\n5\r\nhello\r\n0\r\n\r\n")


def test_a_large_chunked_body_is_read_in_pieces(start_server, pki):
    # Larger than the channel between the connection and the application, in
    # chunks of many sizes: all of it arrives, in order.
    server = start_server(APP, *pki.ecdsa.args(), "--insecure-bind", "127.0.0.1:0")
    data = bytes(range(256)) * 4096  # 1 MiB
    framing, at, size = b"", 0, 1
    while at < len(data):
        piece = data[at:at + size]
        framing += b"%x\r\n%s\r\n" % (len(piece), piece)
        at, size = at + len(piece), size * 3 % 70001 + 1
    framing += b"0\r\n\r\n"
    for port, tls in ((server.port, False), (server.tls_port, True)):
        raw = RawConnection(port)
        if tls:
            raw.sock = pki.ecdsa.client_context(alpn=("http/1.1",)).wrap_socket(
                raw.sock, server_hostname="127.0.0.1")
        with raw:
            raw.send(post_chunked(b"/hash", framing))
            result = json.loads(raw.read_response("POST").body)
        assert result["sha256"] == hashlib.sha256(data).hexdigest(), (tls, result)
