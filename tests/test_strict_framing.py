"""Message framing where the RFCs are strict, on the wire, wherever a request stands.

Each case below is sent as a connection's first request and as a request
after an absolute-form one on the same connection, over cleartext and TLS;
it must get the same answer each time, and never reach the application:

- a transfer coding other than one final ``chunked`` gets 501 (RFC 9112
  §6.1), one whose final coding is not chunked 400 (§6.3 item 4); an empty
  element before ``chunked`` is another coding (501), a repeated ``chunked``
  gets 400;
- a ``Content-Length`` with more than one value gets 400, in one field
  (``3, 3``) as on two lines (RFC 9110 §8.6 lets a server refuse both);
  on HTTP/2 too;
- a chunk size followed by whitespace without a chunk extension gets 400
  (RFC 9112 §7.1 allows whitespace only before ``;``);
- after TLS ALPN chose ``h2``, bytes that are not the HTTP/2 client preface
  get GOAWAY(PROTOCOL_ERROR) (RFC 9113 §3.4), not an HTTP/1.1 answer.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support import (
    DATA,
    END_STREAM,
    GOAWAY,
    PROTOCOL_ERROR,
    RST_STREAM,
    SETTINGS,
    RawConnection,
    RawH2Connection,
    TLSOverMemory,
    assert_serving,
    h2_frame,
    request_headers,
)

APP = "tests.apps.wsgi_app:app"

#: Where a request stands: a connection's first request, or one after an
#: absolute-form request; cleartext or TLS (ALPN http/1.1).
PATHS = ["first", "later", "tls-first", "tls-later"]
LATER = {"later", "tls-later"}

CHUNKED_ABC = b"3\r\nabc\r\n0\r\n\r\n"


@pytest.fixture(scope="module")
def server(start_module_server, pki):
    return start_module_server(APP, *pki.ecdsa.args(), "--insecure-bind", "127.0.0.1:0", "--log-level", "debug")


def connect(server, pki, path: str) -> RawConnection:
    """A connection on which the next request is served by ``path``."""
    if path.startswith("tls"):
        raw = RawConnection(server.tls_port)
        raw.sock = TLSOverMemory(raw.sock, pki.ecdsa.client_context(alpn=("http/1.1",)), "localhost")
    else:
        raw = RawConnection(server.port)
    if path in LATER:
        raw.send(b"GET http://t/echo HTTP/1.1\r\nHost: t\r\n\r\n")
        response = raw.read_response("GET")
        assert response is not None and (response.status, response.body) == (200, b""), response
    return raw


def send_case(server, pki, path: str, fields: list[str], body: bytes) -> tuple[int | None, str]:
    """Send a POST to /called with ``fields``; the status it got (None: closed
    without an answer) and its token. The connection must close after it."""
    token = uuid.uuid4().hex
    head = f"POST /called?token={token} HTTP/1.1\r\nHost: t\r\n" + "".join(f"{f}\r\n" for f in fields) + "\r\n"
    with connect(server, pki, path) as raw:
        try:
            raw.send(head.encode() + body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = raw.read_head()
        raw.read_until_close()  # must close (a hang fails with the socket timeout)
    return (None if response is None else response.status), token


def assert_app_not_called(server, mark: int, token: str) -> None:
    # A request after it, on a fresh connection, is answered: the refused
    # one, had it been dispatched, would have logged before.
    assert_serving(server.port)
    log = "\n".join(server.lines_since(mark))
    assert f"APP-CALLED {token}" not in log, log[-2000:]


# RFC 9112 §6.1 and §6.3 item 4; the reasons are in src/proto/request.rs.
TRANSFER_CODINGS = {
    "gzip, chunked": 501,
    "identity, chunked": 501,
    "deflate, chunked": 501,
    "x-unknown, chunked": 501,
    "gzip\r\nTransfer-Encoding: chunked": 501,
    ",chunked": 501,
    "chunked,": 400,
    "gzip, , chunked": 501,
    "chunked, chunked": 400,
    "chunked\r\nTransfer-Encoding: chunked": 400,
    "chunked, gzip": 400,
    "gzip": 400,
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("coding", list(TRANSFER_CODINGS))
def test_transfer_codings_other_than_one_final_chunked_are_refused(server, pki, path, coding):
    mark = server.mark()
    status, token = send_case(server, pki, path, [f"Transfer-Encoding: {coding}"], CHUNKED_ABC)
    assert status == TRANSFER_CODINGS[coding], f"{coding!r} on {path}: {status}"
    assert_app_not_called(server, mark, token)


@pytest.mark.parametrize("path", PATHS)
def test_plain_chunked_is_still_served(server, pki, path):
    mark = server.mark()
    token = uuid.uuid4().hex
    with connect(server, pki, path) as raw:
        raw.send(f"POST /called?token={token} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n".encode()
                 + CHUNKED_ABC)
        response = raw.read_response("POST")
    assert response is not None and response.status == 200, response
    server.wait_for_line(f"APP-CALLED {token}", mark)


CONTENT_LENGTHS = {
    "one-field": ["Content-Length: 3, 3"],
    "two-lines": ["Content-Length: 3", "Content-Length: 3"],
    "two-lines-differing": ["Content-Length: 3", "Content-Length: 4"],
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", list(CONTENT_LENGTHS))
def test_a_content_length_with_more_than_one_value_is_refused(server, pki, case, path):
    mark = server.mark()
    status, token = send_case(server, pki, path, CONTENT_LENGTHS[case], b"abc")
    assert status == 400, f"{case} on {path}: {status}"
    assert_app_not_called(server, mark, token)


@pytest.mark.parametrize("case", list(CONTENT_LENGTHS))
def test_a_content_length_with_more_than_one_value_is_refused_on_http2(server, case):
    # h2 resets a stream whose Content-Length is not one number ("3, 3");
    # repeated fields the server refuses with 400. Either way the request
    # is refused and the application never sees it.
    mark = server.mark()
    token = uuid.uuid4().hex
    fields = [tuple(f.lower().split(": ", 1)) for f in CONTENT_LENGTHS[case]]
    with RawH2Connection(server.port) as conn:
        conn.request(1, request_headers(f"/called?token={token}", "POST", extra=fields), end_stream=False)
        conn.send(h2_frame(DATA, END_STREAM, 1, b"abc"))
        answer = conn.read_until(lambda f: f.stream == 1 and (f.kind == RST_STREAM or f.status is not None))
    assert answer is not None, "closed without an answer"
    if answer.kind == RST_STREAM:
        assert answer.error_code == PROTOCOL_ERROR
    else:
        assert answer.status == 400
    assert_app_not_called(server, mark, token)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("size_line", [
    pytest.param(b"3 \r\n", id="space"),
    pytest.param(b"3\t\r\n", id="tab"),
])
def test_whitespace_after_a_chunk_size_without_an_extension_is_refused(server, pki, path, size_line):
    # RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF, and BWS only
    # inside chunk-ext (before ";").
    with connect(server, pki, path) as raw:
        raw.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + size_line + b"abc\r\n0\r\n\r\n")
        response = raw.read_response("POST")
    assert response is None or response.status == 400, (response.status, response.body)


@pytest.mark.parametrize("path", PATHS)
def test_whitespace_before_a_chunk_extension_is_accepted(server, pki, path):
    # RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name ... ).
    with connect(server, pki, path) as raw:
        raw.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3 ;ext=1\r\nabc\r\n0\r\n\r\n")
        response = raw.read_response("POST")
    assert response is not None and (response.status, response.body) == (200, b"abc"), response


def frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, stream, payload) of each whole HTTP/2 frame in ``data``."""
    out = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        out.append((data[3], int.from_bytes(data[5:9], "big") & 0x7FFF_FFFF, data[9 : 9 + length]))
        data = data[9 + length :]
    return out


@pytest.mark.parametrize("first_bytes", [
    pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", id="http1-request"),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", id="damaged-preface"),
])
def test_after_alpn_chose_h2_an_invalid_preface_gets_goaway_protocol_error(server, pki, first_bytes):
    # RFC 9113 §3.4: the server's preface (SETTINGS) comes first, then the
    # connection error: GOAWAY(PROTOCOL_ERROR), and the close.
    with RawConnection(server.tls_port) as raw:
        raw.sock = TLSOverMemory(raw.sock, pki.ecdsa.client_context(alpn=("h2",)), "localhost")
        assert raw.sock.tls.selected_alpn_protocol() == "h2"
        raw.send(first_bytes)
        received = raw.read_until_close()
    assert not received.startswith(b"HTTP/1.1"), received[:200]
    got = frames(received)
    assert [kind for kind, _, _ in got] == [SETTINGS, GOAWAY], got
    _, stream, payload = got[1]
    assert stream == 0
    assert int.from_bytes(payload[4:8], "big") == PROTOCOL_ERROR, payload
    assert_serving(server.port)


def test_after_alpn_chose_h2_a_valid_preface_is_served(server, pki):
    with RawH2Connection(server.tls_port, context=pki.ecdsa.client_context(alpn=("h2",))) as conn:
        conn.request(1, request_headers("/", scheme="https"))
        response = conn.read_until(lambda f: f.stream == 1 and f.status is not None)
    assert response is not None and response.status == 200
