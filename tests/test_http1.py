"""HTTP/1.1 connection behaviour (RFC 9112): keep-alive, pipelining, chunked bodies,
``Expect: 100-continue``, HEAD, HTTP/1.0 clients and ``Connection: close``.

Clients: ``http.client`` where it can express the request, raw sockets where
the test must see exactly what is on the wire (1xx responses, pipelining, closes).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket

import pytest

from tests.support import CLIENT_TIMEOUT, RawConnection, chunks_of


def get_json(conn: http.client.HTTPConnection, path: str) -> dict:
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200
    return json.loads(response.read())


def test_keep_alive_serves_two_requests_on_one_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        first = get_json(conn, "/env?n=1")
        sock = conn.sock
        second = get_json(conn, "/env?n=2")
        # http.client would have reconnected (new socket, new client port) if the server had closed.
        assert conn.sock is sock
        assert first["REMOTE_PORT"] == second["REMOTE_PORT"]
        assert (first["QUERY_STRING"], second["QUERY_STRING"]) == ("n=1", "n=2")
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(server):
    # RFC 9112 §9.3.2: a server may process pipelined requests in parallel but
    # must send the responses in the order the requests were received.
    with RawConnection(server.port) as raw:
        raw.send(
            b"GET /env?n=1 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsecond"
            b"GET /env?n=3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        first, second, third = raw.read_response(), raw.read_response(), raw.read_response()
        assert [r.status for r in (first, second, third)] == [200, 200, 200]
        assert json.loads(first.body)["QUERY_STRING"] == "n=1"
        assert second.body == b"second"
        assert json.loads(third.body)["QUERY_STRING"] == "n=3"
        raw.expect_close()


def test_chunked_request_body_is_read_whole(server):
    body = b"".join(b"%05d," % i for i in range(20000))  # 120 kB in uneven chunks
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("POST", "/hash", body=chunks_of(body, 7777), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        response = conn.getresponse()
        result = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 200
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert result["length"] == len(body)
    assert result["CONTENT_LENGTH"] == "<absent>"


def test_response_without_content_length_is_chunked(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", "/chunked?n=5")
        response = conn.getresponse()
        body = response.read()
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.getheader("Content-Length") is None
        assert body == b"chunk-0;chunk-1;chunk-2;chunk-3;chunk-4;"
        # The chunked framing ended cleanly: the connection is reusable.
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello"
    finally:
        conn.close()


def test_expect_100_continue_is_sent_when_the_app_reads(server):
    with RawConnection(server.port) as raw:
        raw.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        interim = raw.read_head()
        assert interim is not None, "connection closed instead of 100 Continue"
        assert (interim.version, interim.status) == ("HTTP/1.1", 100)
        raw.send(b"hello world")
        final = raw.read_response()
        assert final.status == 200
        assert final.body == b"hello world"


def test_expect_100_continue_not_sent_when_the_app_does_not_read(server):
    # RFC 9110 §10.1.1: a server may answer with a final status instead of 100.
    # The interim response is only sent when the app reads wsgi.input; this app
    # never does, so the first response the client sees must be the final one.
    with RawConnection(server.port) as raw:
        raw.send(b"POST /expect-noread HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                 b"Expect: 100-continue\r\n\r\n")
        first = raw.read_head()
        assert first is not None, "connection closed without a response"
        assert first.status == 200, f"expected the final response first, got {first.status}"


def test_head_has_get_headers_and_no_body(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", "/fixed")
        get = conn.getresponse()
        get_body = get.read()
        conn.request("HEAD", "/fixed")
        head = conn.getresponse()
        assert head.status == 200
        assert head.read() == b""
        assert head.getheader("Content-Length") == get.getheader("Content-Length") == str(len(get_body))
        assert head.getheader("Content-Type") == get.getheader("Content-Type")
        # Had the server sent a body after the HEAD response, it would be read
        # as the start of this response.
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello"
    finally:
        conn.close()


def test_head_on_a_streamed_response_sends_no_body(server):
    with RawConnection(server.port) as raw:
        raw.send(b"HEAD /chunked HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        head = raw.read_response(method="HEAD")
        assert head.status == 200
        after = raw.read_response()
        assert (after.status, after.body) == (200, b"hello")


def test_http10_client_gets_response_then_close(server):
    with RawConnection(server.port) as raw:
        raw.send(b"GET /fixed HTTP/1.0\r\n\r\n")
        response = raw.read_response()
        assert response.status == 200
        assert response.body == b"fixed body\n"
        raw.expect_close()


def test_http10_client_gets_unframed_stream_then_close(server):
    # HTTP/1.0 has no chunked coding (RFC 9112 §7): a body of unknown length is
    # delimited by closing the connection.
    with RawConnection(server.port) as raw:
        raw.send(b"GET /chunked?n=3 HTTP/1.0\r\n\r\n")
        response = raw.read_head()
        assert response.status == 200
        assert "chunked" not in (response.header("Transfer-Encoding") or "")
        assert raw.read_until_close() == b"chunk-0;chunk-1;chunk-2;"


def test_connection_close_is_honoured(server):
    with RawConnection(server.port) as raw:
        raw.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        response = raw.read_response()
        assert (response.status, response.body) == (200, b"hello")
        assert "close" in (response.header("Connection") or "").lower()
        raw.expect_close()


HALF_CLOSE_CASES = {
    # The server's own path.
    "get": (b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", [b"hello"]),
    "post-content-length": (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", [b"hello"]),
    "post-chunked": (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n0\r\n\r\n", [b"hello"]),
    "expect": (b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok", [b"ok"]),
    # HTTP/1.0, and an Upgrade other than h2c (served as it is).
    "http10": (b"GET / HTTP/1.0\r\n\r\n", [b"hello"]),
    "upgrade-not-h2c": (b"GET / HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: websocket-ish\r\n\r\n",
                        [b"hello"]),
    # Pipelined, an absolute-form target among them.
    "pipelined": (b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
                  b"GET http://t/ HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", [b"hello", b"ab", b"hello", b"hello"]),
}


@pytest.mark.parametrize("case", list(HALF_CLOSE_CASES))
def test_a_client_that_shuts_its_sending_side_still_gets_its_responses(server, case):
    # A client may shut its side of the connection once the request is sent
    # (HTTP/1.0 clients, `nc -N`, a request piped in): RFC 9112 §9.6 lets
    # the server finish its responses; then it closes too, rather than drop
    # the request at the end of the input.
    request, bodies = HALF_CLOSE_CASES[case]
    with RawConnection(server.port) as raw:
        raw.send(request)
        raw.sock.shutdown(socket.SHUT_WR)
        got = []
        while (response := raw.read_response()) is not None:
            if response.status != 100:
                assert response.status == 200, response
                got.append(response.body)
        assert got == bodies


# HTTP/1.0 (RFC 9112 §9.3, RFC 9110 §6.2).


def test_http10_keep_alive_is_kept_when_asked_for_and_the_length_known(server):
    with RawConnection(server.port) as raw:
        raw.send(b"GET /env?n=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                 b"GET /env?n=2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first, second = raw.read_response(), raw.read_response()
        assert "keep-alive" in (first.header("Connection") or "").lower()
        # A body of unknown length is delimited by the close: not kept.
        raw.send(b"GET /chunked?n=2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        third = raw.read_head()
        assert "close" in (third.header("Connection") or "").lower()
        assert raw.read_until_close() == b"chunk-0;chunk-1;"
    envs = [json.loads(r.body) for r in (first, second)]
    assert [env["SERVER_PROTOCOL"] for env in envs] == ["HTTP/1.0"] * 2
    assert envs[0]["REMOTE_PORT"] == envs[1]["REMOTE_PORT"]


def test_http10_is_answered_in_http11_with_a_post_body(server):
    # RFC 9110 §6.2: a server sends its highest minor version.
    with RawConnection(server.port) as raw:
        raw.send(b"POST /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello")
        response = raw.read_response("POST")
        raw.expect_close()
    assert (response.version, response.status, response.body) == ("HTTP/1.1", 200, b"hello")


# Heads the engine refuses itself, with the status RFC 9110 and 9112 name.

REFUSED_HEADS = {
    # RFC 9110 §10.1.1: 100-continue is the only expectation.
    "expect-other": (b"POST /called HTTP/1.1\r\nHost: t\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\nhi", 417),
    "expect-twice": (b"POST /called HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 2\r\n\r\nhi", 417),
    # RFC 9110 §9.3.6: this server is no proxy.
    "connect": (b"CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n", 501),
    # RFC 9112 §3.2: Host in every HTTP/1.1 request, absolute form too; once.
    "absolute-without-host": (b"GET http://t/called HTTP/1.1\r\n\r\n", 400),
    "http10-two-hosts": (b"GET /called HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    # RFC 9112 §3.2.4: the asterisk form only with OPTIONS.
    "asterisk-get": (b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    # RFC 9112 §3: a request line longer than the head limit (--max-header-size).
    "target-too-long": (b"GET /" + b"x" * 70_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
}


@pytest.mark.parametrize("case", list(REFUSED_HEADS))
def test_heads_the_engine_refuses_get_their_status_and_a_close(server, case):
    data, status = REFUSED_HEADS[case]
    with RawConnection(server.port) as raw:
        try:
            raw.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = raw.read_head()
        assert response is not None and response.status == status, response
        raw.read_until_close()


def test_options_asterisk_reaches_the_application(server):
    # RFC 9112 §3.2.4: the server-wide OPTIONS reaches the application, with
    # PATH_INFO "*"; the test application's validator (wsgiref.validate)
    # refuses a PATH_INFO without "/", and says so.
    mark = server.mark()
    with RawConnection(server.port) as raw:
        raw.send(b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n")
        response = raw.read_response()
    assert response is not None and response.status == 500, response
    server.wait_for_line(r"PATH_INFO doesn't start with /: '\*'", mark)


def test_an_absolute_form_target_names_the_host(server):
    # RFC 9112 §3.2.2: the target's authority, not the Host field.
    with RawConnection(server.port) as raw:
        raw.send(b"GET http://named.example:8080/env?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n")
        env = json.loads(raw.read_response().body)
    assert env["HTTP_HOST"] == "named.example:8080"
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == ("/env", "q=1")


def test_a_websocket_handshake_without_a_websocket_endpoint_is_not_found(server):
    # The application object's routing: a handshake goes only to a WebSocket
    # endpoint; this server's application has none, so 404 (never the WSGI
    # application, never a hang), and the connection stays usable.
    with RawConnection(server.port) as raw:
        raw.send(
            b"GET /env HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            b"GET /env?after HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        refused, after = raw.read_response(), raw.read_response()
        assert refused.status == 404
        assert after.status == 200
        assert json.loads(after.body)["QUERY_STRING"] == "after"
        raw.expect_close()
