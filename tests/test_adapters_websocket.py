"""WebSockets through the ASGI adapter (``propylon.adapters.asgi``): the
handlers of tests/apps/websocket_app.py, in the three styles, served by
uvicorn and hypercorn as real processes on free ports and driven with the
``websockets`` client.

Checked on each server: each style echoes text and binary messages; the
connection's attributes; subprotocol negotiation; a handshake rejected with a
status, headers and body (by ``reject``, by an event handler's ``on_connect``,
by returning before accepting, by raising before accepting, and for a path
without a WebSocket endpoint); a handler raising after accepting -> 1011 and
a traceback on ``propylon.error``; a server-side close code and reason;
iteration ending at a normal close and raising at another; broadcast from one
connection to the others; the errors of wrong calls (accept twice, an
unoffered subprotocol, bad close codes, send after close) in both variants;
the blocking handlers' cap (503). On hypercorn, a handshake over HTTP/2
(RFC 8441) with an ``h2`` client. The shared rules of ``propylon.websocket``
are checked by their doctests at the end.
"""

from __future__ import annotations

import doctest
import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

import propylon
import propylon.websocket
from tests.support import CLIENT_TIMEOUT, wait_for_file
from tests.test_adapters import ASGI_SERVERS, Server

APP = "tests.apps.websocket_app:asgi_app"
CAPPED_APP = "tests.apps.websocket_app:asgi_capped"


@pytest.fixture(scope="module", params=ASGI_SERVERS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    marker = tmp_path_factory.mktemp("websocket") / f"marker-{request.param}"
    running = Server(request.param, {"WEBSOCKET_MARKER": str(marker)}, app=APP)
    running.marker = marker  # type: ignore[attr-defined]
    yield running
    running.stop()


@pytest.fixture()
def marker(server: Server) -> Path:
    """The server's marker file, emptied: what the handlers append during one test."""
    path: Path = server.marker  # type: ignore[attr-defined]
    path.write_text("")
    return path


def open_ws(server: Server, path: str, **options: object) -> ClientConnection:
    url = f"ws://127.0.0.1:{server.port}{path}"
    return connect(url, open_timeout=CLIENT_TIMEOUT, close_timeout=CLIENT_TIMEOUT, **options)  # type: ignore[arg-type]


def refusal(server: Server, path: str) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as refused:
        open_ws(server, path)
    return refused.value


def closing(ws: ClientConnection) -> ConnectionClosed:
    """The close the server started: what the next ``recv`` raises."""
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=CLIENT_TIMEOUT)
    return closed.value


@pytest.mark.parametrize("path", ["/async/echo", "/event/echo", "/blocking/echo"])
def test_each_style_echoes(server: Server, path: str) -> None:
    with open_ws(server, path) as ws:
        for message in ("hello", "", "é" * 1000, b"\x00\xff" * 5000, b""):
            ws.send(message)
            assert ws.recv(timeout=CLIENT_TIMEOUT) == message


@pytest.mark.parametrize(("style", "pool"), [("event", "propylon-wsgi"), ("blocking", "propylon-websocket")])
def test_sync_styles_run_in_their_threads_in_order(server: Server, style: str, pool: str) -> None:
    # Event calls are jobs of the adapter's pool (shared with WSGI), a
    # blocking handler has a thread of its own; both get messages in order.
    with open_ws(server, f"/{style}/thread") as ws:
        for number in range(200):
            ws.send(str(number))
        answers = [ws.recv(timeout=CLIENT_TIMEOUT).split(" ") for _ in range(200)]
    assert [int(number) for number, _ in answers] == list(range(200))
    assert all(thread.startswith(pool + "_") for _, thread in answers), answers[:3]
    if style == "blocking":
        assert len({thread for _, thread in answers}) == 1


def test_connection_attributes(server: Server) -> None:
    with open_ws(server, "/info?room=1&x=%41", subprotocols=["a", "b"],
                 additional_headers={"Origin": "https://example.test"}) as ws:
        info = json.loads(ws.recv(timeout=CLIENT_TIMEOUT))
    assert info["path"] == "/info"
    assert info["query_string"] == "room=1&x=%41"
    assert ["origin", "https://example.test"] in info["headers"]
    assert all(name == name.lower() for name, _ in info["headers"])
    assert info["subprotocols"] == ["a", "b"]
    assert info["extensions"] == ["permessage-deflate"]
    assert info["client"][0] == "127.0.0.1"
    assert (info["scheme"], info["http_version"], info["subprotocol"]) == ("ws", "1.1", None)
    assert info["thread"] == "MainThread"  # an async handler runs on the server's loop


def test_subprotocol_negotiation(server: Server) -> None:
    with open_ws(server, "/async/echo", subprotocols=["echo.v1", "echo.v2"]) as ws:
        assert ws.subprotocol == "echo.v2"
    with open_ws(server, "/async/echo", subprotocols=["echo.v1"]) as ws:
        assert ws.subprotocol is None


@pytest.mark.parametrize(("path", "status", "body"), [
    ("/reject", 401, b"who are you?\n"),
    ("/event/reject", 429, b"slow down\n"),
    ("/refuse", 403, b"Forbidden\n"),
    ("/raise-early", 500, b"Internal Server Error\n"),
    ("/nowhere", 404, b"Not Found: no WebSocket endpoint here\n"),
    ("/async/echoes", 404, b"Not Found: no WebSocket endpoint here\n"),  # a prefix covers /x and /x/...
])
def test_handshake_refused_with_a_status(server: Server, path: str, status: int, body: bytes) -> None:
    # Both servers offer the websocket.http.response extension: the status is the application's.
    refused = refusal(server, path)
    assert refused.response.status_code == status
    assert bytes(refused.response.body or b"") == body
    if path == "/reject":
        assert refused.response.headers["WWW-Authenticate"] == "Bearer"


def test_rejected_event_handler_gets_no_on_close(server: Server, marker: Path) -> None:
    refusal(server, "/event/reject")
    with open_ws(server, "/event/echo") as ws:  # an event whose on_close does run, after it
        ws.send("x")
        ws.recv(timeout=CLIENT_TIMEOUT)
    text = wait_for_file(marker, lambda text: "event-closed" in text)
    assert "event-reject-closed" not in text


def test_handler_raising_closes_with_1011(server: Server) -> None:
    with open_ws(server, "/raise") as ws:
        ws.send("boom")
        closed = closing(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1011
    server.wait_for(r"WebSocket handler for /raise raised RuntimeError: the handler failed")
    server.wait_for(r'in raise_after_accept')  # the traceback


def test_blocking_handler_raising_closes_with_1011(server: Server) -> None:
    with open_ws(server, "/raise/blocking") as ws:
        ws.send("boom")
        closed = closing(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1011
    server.wait_for(r"WebSocket handler for /raise/blocking raised RuntimeError: the blocking handler failed")


def test_event_handler_raising_closes_with_1011_then_on_close(server: Server, marker: Path) -> None:
    with open_ws(server, "/raise/event") as ws:
        ws.send("boom")
        closed = closing(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1011
    server.wait_for(r"WebSocket handler for /raise/event raised RuntimeError: on_message failed")
    wait_for_file(marker, lambda text: "event-raise-closed 1011" in text)


@pytest.mark.parametrize("style", ["async", "blocking"])
def test_wrong_calls_raise_the_documented_errors(server: Server, marker: Path, style: str) -> None:
    with open_ws(server, f"/misuse/{style}", subprotocols=["offered"]) as ws:
        report = json.loads(ws.recv(timeout=CLIENT_TIMEOUT))
        closed = closing(ws)
    assert report["subprotocol"] == "offered" and ws.subprotocol == "offered"
    assert report["outcomes"] == [
        "ValueError: subprotocol 'not-offered' was not offered by the client (offered: ['offered'])",
        "RuntimeError: accept() on a WebSocket that is already open",
        "RuntimeError: reject() on a WebSocket that is already open",
        "TypeError: send() takes str (a text message) or bytes (a binary message), got an int",
        "ValueError: a close code is 1000 or 3000-4999, got 1006",
        "ValueError: a close reason is at most 123 bytes in UTF-8, got 124",
    ]
    assert closed.rcvd is not None and (closed.rcvd.code, closed.rcvd.reason) == (4003, "done")
    # After its own close: send and receive raise with its code, a second close does nothing.
    closed_error = "WebSocketClosed: WebSocket closed with code 4003: done"
    wait_for_file(marker, lambda text: f"{style} after close: {closed_error} | {closed_error} | ok" in text)


def test_server_close_code_and_reason(server: Server) -> None:
    with open_ws(server, "/close") as ws:
        ws.send("bye")
        closed = closing(ws)
    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (4001, "go away")


@pytest.mark.parametrize("style", ["async", "blocking"])
def test_iteration_ends_at_a_normal_close(server: Server, marker: Path, style: str) -> None:
    with open_ws(server, f"/iterate/{style}") as ws:
        ws.send("one")
        ws.send("two")
    # hypercorn reports every close the client starts as 1006, whatever its
    # code (pgjones/hypercorn#127): there the iteration cannot end quietly.
    expected = {"uvicorn": f"{style} ended 2", "hypercorn": f"{style} raised 1006"}[server.kind]
    wait_for_file(marker, lambda text: expected in text)


@pytest.mark.parametrize("style", ["async", "blocking"])
def test_iteration_raises_at_another_close(server: Server, marker: Path, style: str) -> None:
    expected = {"uvicorn": 4000, "hypercorn": 1006}[server.kind]  # pgjones/hypercorn#127
    with open_ws(server, f"/iterate/{style}") as ws:
        ws.send("one")
        ws.close(4000, "leaving")
    wait_for_file(marker, lambda text: f"{style} raised {expected}" in text)


def test_broadcast_to_the_other_connections(server: Server) -> None:
    with open_ws(server, "/chat") as first:
        assert first.recv(timeout=CLIENT_TIMEOUT).startswith("joined")
        with ExitStack() as stack:
            others = [stack.enter_context(open_ws(server, "/chat")) for _ in range(3)]
            for other in others:
                assert other.recv(timeout=CLIENT_TIMEOUT).startswith("joined")
            for number in range(20):
                first.send(f"message {number}")
            for other in others:
                assert [other.recv(timeout=CLIENT_TIMEOUT) for _ in range(20)] == [
                    f"message {number}" for number in range(20)]
            others[0].send("from another")
            assert first.recv(timeout=CLIENT_TIMEOUT) == "from another"
            assert others[1].recv(timeout=CLIENT_TIMEOUT) == "from another"


def test_sync_methods_refuse_the_event_loop_thread(server: Server) -> None:
    with open_ws(server, "/sync-on-loop") as ws:
        assert ws.recv(timeout=CLIENT_TIMEOUT).startswith("RuntimeError: a sync WebSocket method")


@pytest.mark.parametrize("kind", ASGI_SERVERS)
def test_blocking_handlers_are_capped(kind: str) -> None:
    running = Server(kind, {}, app=CAPPED_APP)  # websocket_threads=2
    try:
        with ExitStack() as stack:
            held = [stack.enter_context(open_ws(running, "/blocking/echo")) for _ in range(2)]
            for ws in held:  # both handlers hold their thread now
                ws.send("busy")
                assert ws.recv(timeout=CLIENT_TIMEOUT) == "busy"
            assert refusal(running, "/blocking/echo").response.status_code == 503
            running.wait_for(r"WebSocket /blocking/echo refused: all 2 websocket threads are busy")
            with open_ws(running, "/event/echo") as ws:  # other styles hold no thread: still served
                ws.send("x")
                assert ws.recv(timeout=CLIENT_TIMEOUT) == "x"
            held[0].close()
            # The thread comes back once its handler has returned: retry until then.
            deadline = time.monotonic() + CLIENT_TIMEOUT
            while True:
                try:
                    with open_ws(running, "/blocking/echo") as ws:
                        ws.send("free")
                        assert ws.recv(timeout=CLIENT_TIMEOUT) == "free"
                    break
                except InvalidStatus as refused:
                    assert refused.response.status_code == 503
                    assert time.monotonic() < deadline, "the blocking handler's thread never came back"
    finally:
        running.stop()


def test_a_dropped_connection_ends_the_handler(server: Server, marker: Path) -> None:
    # The code is what the ASGI server reports: RFC 6455's 1006 on hypercorn;
    # 1005 on uvicorn's default implementation (websockets-sansio), so there
    # the iteration ends as at a normal close.
    expected = {"uvicorn": "blocking ended 1", "hypercorn": "blocking raised 1006"}[server.kind]
    with open_ws(server, "/iterate/blocking") as ws:
        ws.send("dropping")
        ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame
    wait_for_file(marker, lambda text: expected in text)


def h2_websocket_first_message(port: int, path: str) -> tuple[dict[str, str], bytes]:
    """Open a WebSocket over HTTP/2 (RFC 8441, cleartext with prior
    knowledge) and read the server's first message: the response's fields
    and the message's payload (one unfragmented, uncompressed frame)."""
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        connection.initiate_connection()
        sock.sendall(connection.data_to_send())
        enabled, stream, response, data = False, None, {}, b""
        while True:
            chunk = sock.recv(65536)
            assert chunk, "hypercorn closed the connection"
            for event in connection.receive_data(chunk):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    setting = event.changed_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL)
                    enabled = enabled or (setting is not None and setting.new_value == 1)
                elif isinstance(event, h2.events.ResponseReceived):
                    response = {name.decode(): value.decode() for name, value in event.headers}
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if enabled and stream is None:  # RFC 8441 §3: only once the server allows it
                stream = connection.get_next_available_stream_id()
                connection.send_headers(stream, [
                    (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                    (":path", path), (":authority", f"127.0.0.1:{port}"), ("sec-websocket-version", "13"),
                ])
            sock.sendall(connection.data_to_send())
            if len(data) >= 4:  # RFC 6455 §5.2: a server's frame is unmasked
                assert data[0] == 0x81 and data[1] & 0x7F != 127, data[:2]  # FIN, text, < 64 KiB
                size, start = data[1] & 0x7F, 2
                if size == 126:
                    size, start = int.from_bytes(data[2:4], "big"), 4
                if len(data) >= start + size:
                    return response, data[start:start + size]


def test_handshake_over_http2_on_hypercorn(tmp_path: Path) -> None:
    running = Server("hypercorn", {"WEBSOCKET_MARKER": str(tmp_path / "marker")}, app=APP)
    try:
        response, payload = h2_websocket_first_message(running.port, "/info?over=h2")
    finally:
        running.stop()
    assert response[":status"] == "200"
    assert "sec-websocket-accept" not in response  # RFC 8441 §5
    info = json.loads(payload)
    assert (info["path"], info["query_string"], info["http_version"]) == ("/info", "over=h2", "2")
    assert ["host", f"127.0.0.1:{running.port}"] in info["headers"]  # from :authority, as on HTTP/1.1


def test_the_shared_rules_doctests() -> None:
    results = doctest.testmod(propylon.websocket)
    assert results.attempted > 0 and results.failed == 0


def test_websocket_closed_is_exported() -> None:
    assert propylon.WebSocketClosed is propylon.websocket.WebSocketClosed
    assert issubclass(propylon.WebSocketClosed, Exception)
