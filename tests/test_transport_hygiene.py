"""Transport hygiene (issue 4, point 5).

- HTTP/2 requests with connection-specific header fields are malformed (RFC
  9113 §8.2.2): ``connection``, ``keep-alive``, ``proxy-connection``,
  ``transfer-encoding``, ``upgrade``, and ``te`` with anything but
  ``trailers``. The stream is refused -- h2 resets it with PROTOCOL_ERROR, or
  the server answers 400 -- and the application is never called.
- A ``host`` field that differs from ``:authority`` is malformed too (RFC
  9113 §8.3.1): 400, application not called. The same host is fine.
- Internal errors never leak: an application that fails with a secret in its
  exception (or in a bad header or status) gets a plain 500 whose body and
  headers do not contain it, over HTTP/1.1, HTTP/2, and both over TLS; the
  secret goes to the server's log.

Whether the application ran is read from the log: ``/called`` writes
``APP-CALLED <token>`` on wsgi.errors, and ``sync_log`` makes sure every line
logged before has been read.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support import (
    CLIENT_TIMEOUT,
    DATA,
    GOAWAY,
    HEADERS,
    PROTOCOL_ERROR,
    RST_STREAM,
    RawConnection,
    RawH2Connection,
    ServerProcess,
    request_headers,
)

APP = "tests.apps.wsgi_app:app"


@pytest.fixture(scope="module")
def hygiene_server(start_module_server, pki) -> ServerProcess:
    return start_module_server(APP, *pki.ecdsa.args(), "--insecure-bind", "127.0.0.1:0")


@pytest.fixture(scope="module")
def error_server(start_module_server, pki) -> ServerProcess:
    return start_module_server("tests.apps.error_app:app", *pki.ecdsa.args(), "--insecure-bind", "127.0.0.1:0")


def answer(conn: RawH2Connection, stream: int) -> tuple[str, object]:
    """How the server dealt with ``stream``: ("status", 200), ("reset", code) or ("goaway", code)."""
    frame = conn.read_until(lambda f: (f.stream == stream and f.kind in (HEADERS, RST_STREAM)) or f.kind == GOAWAY)
    assert frame is not None, "the server closed the connection"
    if frame.kind == RST_STREAM:
        return "reset", frame.error_code
    if frame.kind == GOAWAY:
        return "goaway", frame.error_code
    return "status", frame.status


def open_h2(server: ServerProcess, pki=None) -> RawH2Connection:
    """Cleartext HTTP/2, or with ``pki``, HTTP/2 over TLS (ALPN h2)."""
    if pki is None:
        return RawH2Connection(server.port)
    return RawH2Connection(server.tls_port, context=pki.ecdsa.client_context(("h2",)))


def called_tokens(server: ServerProcess, start: int, prefix: str) -> list[str]:
    server.sync_log(f"sync-{uuid.uuid4().hex}")
    return [line.rsplit(" ", 1)[1] for line in server.lines_since(start)
            if "APP-CALLED" in line and prefix in line]


# ------------------------------------------------------------------ connection-specific fields


@pytest.mark.parametrize("name, value", [
    ("connection", "keep-alive"),
    ("connection", "close"),
    ("keep-alive", "timeout=5"),
    ("proxy-connection", "keep-alive"),
    ("transfer-encoding", "chunked"),
    ("transfer-encoding", "identity"),
    ("upgrade", "h2c"),
    ("upgrade", "websocket"),
    ("te", "gzip"),
    ("te", "trailers, gzip"),
])
def test_connection_specific_fields_are_refused(hygiene_server, name, value):
    token = uuid.uuid4().hex
    start = hygiene_server.mark()
    with open_h2(hygiene_server) as conn:
        conn.request(1, request_headers(f"/called?token={token}-bad", extra=[(name, value)]))
        outcome = answer(conn, 1)
        assert outcome in (("reset", PROTOCOL_ERROR), ("status", 400)), outcome
        # The connection itself is fine: the next request on it is served.
        conn.request(3, request_headers(f"/called?token={token}-good"))
        assert answer(conn, 3) == ("status", 200)
    assert called_tokens(hygiene_server, start, token) == [f"{token}-good"]


def test_te_trailers_is_allowed(hygiene_server):
    token = uuid.uuid4().hex
    start = hygiene_server.mark()
    with open_h2(hygiene_server) as conn:
        conn.request(1, request_headers(f"/called?token={token}", extra=[("te", "trailers")]))
        assert answer(conn, 1) == ("status", 200)
    assert called_tokens(hygiene_server, start, token) == [token]


# ------------------------------------------------------------------ host and :authority


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2-over-tls"])
def test_host_that_differs_from_authority_is_400(hygiene_server, pki, tls):
    token = uuid.uuid4().hex
    start = hygiene_server.mark()
    with open_h2(hygiene_server, pki if tls else None) as conn:
        conn.request(1, request_headers(f"/called?token={token}", authority="127.0.0.1",
                                        scheme="https" if tls else "http",
                                        extra=[("host", "evil.example")]))
        assert answer(conn, 1) == ("status", 400)
        body = conn.read_until(lambda f: f.stream == 1 and f.kind == DATA)
        assert body is not None and b"evil.example" not in body.payload  # the 400 does not echo input
    assert called_tokens(hygiene_server, start, token) == []


@pytest.mark.parametrize("host, authority", [
    ("127.0.0.1", "127.0.0.1"),
    ("example.com:8080", "example.com:8080"),
    ("EXAMPLE.com", "example.COM"),  # host names compare case-insensitively
], ids=["same", "with-port", "case"])
def test_host_that_agrees_with_authority_is_served(hygiene_server, host, authority):
    token = uuid.uuid4().hex
    start = hygiene_server.mark()
    with open_h2(hygiene_server) as conn:
        conn.request(1, request_headers(f"/called?token={token}", authority=authority, extra=[("host", host)]))
        assert answer(conn, 1) == ("status", 200)
    assert called_tokens(hygiene_server, start, token) == [token]


def test_a_second_host_that_differs_is_400(hygiene_server):
    token = uuid.uuid4().hex
    start = hygiene_server.mark()
    with open_h2(hygiene_server) as conn:
        conn.request(1, request_headers(f"/called?token={token}", extra=[("host", "127.0.0.1"),
                                                                         ("host", "evil.example")]))
        assert answer(conn, 1) == ("status", 400)
    assert called_tokens(hygiene_server, start, token) == []


# ------------------------------------------------------------------ internal errors do not leak


TRANSPORTS = {
    "http1.1": {"tls": False, "http2": False},
    "h2c": {"tls": False, "http2": True},
    "tls-http1.1": {"tls": True, "http2": False},
    "tls-h2": {"tls": True, "http2": True},
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("route, logged", [
    ("/secret-raise", True),
    ("/secret-raise-after-start", True),
    ("/secret-in-iterable", True),
    ("/secret-bad-header", False),
    ("/secret-bad-status", False),
])
def test_internal_errors_do_not_leak(error_server, pki, transport, route, logged):
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    options = TRANSPORTS[transport]
    start = error_server.mark()
    base = error_server.tls_url if options["tls"] else error_server.url
    with httpx.Client(http1=not options["http2"], http2=options["http2"], timeout=CLIENT_TIMEOUT,
                      verify=pki.ecdsa.client_context() if options["tls"] else True) as client:
        response = client.get(f"{base}{route}?secret={secret}")
        assert client.get(f"{base}/ok").content == b"hello"
    assert response.http_version == ("HTTP/2" if options["http2"] else "HTTP/1.1")
    assert response.status_code == 500
    raw = response.content + b"".join(f"{k}: {v}".encode() for k, v in response.headers.multi_items())
    for leak in (secret.encode(), b"Traceback", b"boom", b"password", b"RuntimeError", b"KeyError", b"ValueError",
                 b"X-Injected"):
        assert leak not in raw, (leak, response.headers, response.content)
    if logged:
        error_server.wait_for_line(secret, start)


def test_a_malformed_http1_request_is_not_echoed(hygiene_server):
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    with RawConnection(hygiene_server.port) as raw:
        raw.send(f"GET / HTTP/1.1\r\nHost: x\r\nBad{secret} Name: v\r\n\r\n".encode())
        response = raw.read_response()
    assert response is not None and response.status == 400
    assert secret.encode() not in response.body
