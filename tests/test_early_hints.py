"""103 Early Hints (RFC 8297): the application's preloads before its pages, and
its own hints through ``environ["propylon.early_hints"]``, seen by real
clients: ``curl -v`` (HTTP/1.1), a raw socket (the exact bytes), the ``h2``
package (HTTP/2).

The server runs ``tests/apps/serve_preload.py``, which hands it a plan with two
preload links (:data:`PRELOAD`) and ``tests/apps/hints_app.py``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence

import h2.config
import h2.connection
import h2.events
import pytest

from tests.apps.serve_preload import PRELOAD
from tests.support import CLIENT_TIMEOUT, RawConnection, ServerProcess

APP = "tests.apps.hints_app:app"
RUNNER = ("tests/apps/serve_preload.py",)

#: The 103 every page gets, byte for byte.
PRELOAD_HINT = (
    b"HTTP/1.1 103 Early Hints\r\n"
    + b"".join(b"link: " + link.encode() + b"\r\n" for link in PRELOAD)
    + b"\r\n"
)
OWN_HINT = b"HTTP/1.1 103 Early Hints\r\nlink: </own.css>; rel=preload; as=style\r\n\r\n"


def _start(starter, *args: str) -> ServerProcess:
    server = ServerProcess(APP, args, ("127.0.0.1:0",), launcher=RUNNER)
    starter.servers.append(server)
    return server


@pytest.fixture(scope="module")
def hints_server(start_module_server) -> ServerProcess:
    return _start(start_module_server)


def raw(port: int, request: bytes) -> bytes:
    """What the server writes for ``request`` (which asks to close), to its close."""
    with RawConnection(port) as conn:
        conn.send(request)
        return conn.read_until_close()


def get(path: str, version: str = "1.1", accept: str = "text/html") -> bytes:
    host = "Host: t\r\n" if version == "1.1" else ""
    return f"GET {path} HTTP/{version}\r\n{host}Accept: {accept}\r\nConnection: close\r\n\r\n".encode()


# ---------------------------------------------------------------- HTTP/1.1


def test_a_page_gets_the_preloads_before_its_response(hints_server):
    written = raw(hints_server.port, get("/"))
    assert written.startswith(PRELOAD_HINT + b"HTTP/1.1 200 OK\r\n"), written
    assert written.count(b"103 Early Hints") == 1
    assert written.endswith(b"\r\n\r\npage")


@pytest.mark.parametrize(
    "request_bytes",
    [
        get("/", accept="*/*"),
        get("/", accept="application/json"),
        b"GET / HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\nSec-Fetch-Dest: empty\r\nConnection: close\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ],
    ids=["accept-any", "accept-json", "fetch-dest-empty", "head", "post"],
)
def test_what_is_not_a_page_gets_no_hints(hints_server, request_bytes):
    written = raw(hints_server.port, request_bytes)
    assert written.startswith(b"HTTP/1.1 200 OK\r\n"), written
    assert b"103" not in written


def test_a_navigation_by_fetch_metadata_gets_the_preloads(hints_server):
    request = b"GET / HTTP/1.1\r\nHost: t\r\nSec-Fetch-Dest: document\r\nConnection: close\r\n\r\n"
    assert raw(hints_server.port, request).startswith(PRELOAD_HINT + b"HTTP/1.1 200 OK\r\n")


def test_http10_never_gets_a_103(hints_server):
    # RFC 9110 §15.2: no 1xx response to an HTTP/1.0 client, the application's
    # own hints included.
    for path, body in (("/", b"page"), ("/own", b"own")):
        written = raw(hints_server.port, get(path, version="1.0"))
        assert written.startswith(b"HTTP/1.1 200 OK\r\n"), written
        assert b"103" not in written
        assert written.endswith(body)


def test_curl_shows_the_103(hints_server):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    result = subprocess.run(
        [curl, "-sv", "--http1.1", "-H", "Accept: text/html", hints_server.url + "/"],
        capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=True,
    )  # fmt: skip
    trace = result.stderr
    assert "< HTTP/1.1 103 Early Hints" in trace, trace
    for link in PRELOAD:
        assert f"< link: {link}" in trace, trace
    assert trace.index("< HTTP/1.1 103") < trace.index("< HTTP/1.1 200"), trace
    assert result.stdout == "page"


# ---------------------------------------------------------------- the application's own hints


def test_the_environ_callable_sends_the_applications_hints(hints_server):
    # Any request may get them: no Accept needed. Two calls, two 103s.
    written = raw(hints_server.port, get("/own", accept="*/*"))
    assert written.startswith(OWN_HINT + OWN_HINT + b"HTTP/1.1 200 OK\r\n"), written
    assert written.endswith(b"own")


def test_a_page_gets_the_preloads_then_its_own_hints(hints_server):
    written = raw(hints_server.port, get("/own"))
    assert written.startswith(PRELOAD_HINT + OWN_HINT + OWN_HINT + b"HTTP/1.1 200 OK\r\n"), written


def test_a_hint_after_the_headers_are_sent_is_ignored(hints_server):
    written = raw(hints_server.port, get("/late", accept="*/*"))
    assert written.startswith(b"HTTP/1.1 200 OK\r\n"), written
    assert b"103" not in written
    assert b"late" in written.replace(b"\r\n2\r\n", b"")


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("name", "ValueError"),
        ("value", "ValueError"),
        ("pair", "TypeError"),
        ("hop", "ValueError"),
    ],
)
def test_invalid_hint_fields_raise_as_in_start_response(hints_server, kind, error):
    written = raw(hints_server.port, get(f"/bad?kind={kind}", accept="*/*"))
    assert written.startswith(b"HTTP/1.1 200 OK\r\n"), written
    assert b"103" not in written
    assert written.split(b"\r\n\r\n", 1)[1].startswith(error.encode() + b": "), written


def test_a_flood_of_hints_is_bounded_and_the_response_comes(hints_server):
    written = raw(hints_server.port, get("/flood?n=20000", accept="*/*"))
    hints = written.count(b"HTTP/1.1 103 Early Hints\r\n")
    # The application does not wait for the client: hints beyond the few
    # that may wait are dropped, never queued without bound.
    assert 1 <= hints < 20000, hints
    assert written.endswith(b"flood")
    # Every 103 is whole: each is followed by its one link and an empty line.
    assert written.count(b"\r\n\r\n") == hints + 1


# ---------------------------------------------------------------- HTTP/2


def h2_get(port: int, path: str, headers: Sequence[tuple[str, str]] = ()) -> tuple[list[list[tuple[bytes, bytes]]], dict[bytes, bytes], bytes]:
    """A GET over h2c (prior knowledge): each 103's fields, then the final
    response's fields and body, in the order the events came."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    hints: list[list[tuple[bytes, bytes]]] = []
    final: dict[bytes, bytes] = {}
    body = b""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        request = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"), (":path", path)]
        conn.send_headers(1, request + list(headers), end_stream=True)
        sock.sendall(conn.data_to_send())
        ended = False
        while not ended:
            data = sock.recv(65536)
            assert data, "the server closed before the response ended"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.InformationalResponseReceived):
                    assert not final, "a 103 after the final response"
                    hints.append(list(event.headers))
                elif isinstance(event, h2.events.ResponseReceived):
                    final = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            sock.sendall(conn.data_to_send())
    return hints, final, body


def test_http2_client_sees_the_preloads_as_informational_response(hints_server):
    hints, final, body = h2_get(hints_server.port, "/", [("accept", "text/html")])
    assert hints == [[(b":status", b"103")] + [(b"link", link.encode()) for link in PRELOAD]]
    assert final[b":status"] == b"200"
    assert body == b"page"


def test_http2_client_sees_the_applications_hints_and_none_on_other_requests(hints_server):
    hints, _, body = h2_get(hints_server.port, "/own")
    own = [(b":status", b"103"), (b"link", b"</own.css>; rel=preload; as=style")]
    assert hints == [own, own]
    assert body == b"own"
    hints, _, body = h2_get(hints_server.port, "/", [("accept", "*/*")])
    assert hints == []
    assert body == b"page"


# ---------------------------------------------------------------- --no-early-hints


def test_no_early_hints_sends_no_103_at_all(start_server):
    server = _start(start_server, "--no-early-hints")
    for path in ("/", "/own"):
        written = raw(server.port, get(path))
        assert written.startswith(b"HTTP/1.1 200 OK\r\n"), written
        assert b"103" not in written
        hints, final, _ = h2_get(server.port, path, [("accept", "text/html")])
        assert hints == []
        assert final[b":status"] == b"200"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("link", ["</a.css>\r\nX-Evil: 1", "</caf\u00e9.css>; rel=preload"])
def test_a_preload_that_is_no_field_value_is_refused_before_binding(link):
    # In a process of its own: a server that took the link would serve on.
    code = (
        "import sys\n"
        "from propylon import _core\n"
        "from propylon.config import Config, parse_bind\n"
        "from propylon.plan import ServePlan\n"
        "plan = ServePlan(wsgi=print, routes=(('wsgi', ''),), preload=(sys.argv[1],))\n"
        "try:\n"
        "    _core.serve(Config(binds=[parse_bind('127.0.0.1:0')]), plan)\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, link], capture_output=True, text=True,
                            timeout=CLIENT_TIMEOUT, check=True)  # fmt: skip
    assert "is not a valid Link field value" in result.stdout, result
