"""The client side's HTTP/2 (cleartext, prior knowledge), for the ``http2`` checks.

Built on the ``h2`` package (optional: without it those checks report
``n/a``). It sends what the checks need and ordinary clients do not: split
``cookie`` fields, and a request body abandoned with ``RST_STREAM(CANCEL)``;
and it reports whether the server ended a response or reset its stream.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from propylon.wsgi11.conformance.client import TIMEOUT, Target

__all__ = ["Client", "detect"]


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    #: The server reset the stream instead of ending it.
    reset: bool

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One HTTP/2 connection per request (the checks are few and small)."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def _connect(self) -> tuple[socket.socket, h2.connection.H2Connection]:
        sock = socket.create_connection((self.target.host, self.target.port), timeout=TIMEOUT)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="latin-1"))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        return sock, conn

    def _head(self, method: str, path: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(":method", method), (":scheme", "http"), (":authority", self.target.authority),
                (":path", self.target.path(path))] + headers

    def request(self, method: str, path: str, headers: list[tuple[str, str]] | None = None,
                body: list[bytes] | None = None) -> Response:
        sock, conn = self._connect()
        try:
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, self._head(method, path, list(headers or [])), end_stream=body is None)
            for i, piece in enumerate(body or []):
                conn.send_data(stream, piece, end_stream=i == len(body or []) - 1)
            sock.sendall(conn.data_to_send())
            return self._read(sock, conn, stream)
        finally:
            sock.close()

    def cancel_mid_body(self, path: str, declared: int, sent: int) -> None:
        """Declare ``declared`` bytes, send ``sent``, then reset the stream with CANCEL."""
        sock, conn = self._connect()
        try:
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, self._head("POST", path, [("content-length", str(declared))]))
            conn.send_data(stream, b"x" * sent)
            sock.sendall(conn.data_to_send())
            conn.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
            sock.sendall(conn.data_to_send())
            # Keep the connection until the server has seen the reset.
            conn.ping(b"12345678")
            sock.sendall(conn.data_to_send())
            while not any(isinstance(e, h2.events.PingAckReceived) for e in self._events(sock, conn)):
                pass
        finally:
            sock.close()

    @staticmethod
    def _events(sock: socket.socket, conn: h2.connection.H2Connection) -> list[Any]:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the HTTP/2 connection")
        events = conn.receive_data(data)
        pending = conn.data_to_send()
        if pending:
            sock.sendall(pending)
        return events

    def _read(self, sock: socket.socket, conn: h2.connection.H2Connection, stream: int) -> Response:
        status, body = 0, bytearray()
        headers: list[tuple[str, str]] = []
        while True:
            for event in self._events(sock, conn):
                if getattr(event, "stream_id", None) != stream:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    headers = [(str(k), str(v)) for k, v in event.headers]
                    status = int(dict(headers)[":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamEnded):
                    return Response(status, headers, bytes(body), reset=False)
                elif isinstance(event, h2.events.StreamReset):
                    return Response(status, headers, bytes(body), reset=True)


def detect(target: Target) -> Client | None:
    """A client if the server answers the HTTP/2 connection preface with SETTINGS, else None."""
    try:
        sock = socket.create_connection((target.host, target.port), timeout=5)
    except OSError:
        return None
    try:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        data = sock.recv(65536)
        if not data or data.startswith(b"HTTP/"):
            return None
        events = conn.receive_data(data)
        return Client(target) if any(isinstance(e, h2.events.RemoteSettingsChanged) for e in events) else None
    except (OSError, h2.exceptions.ProtocolError):
        return None
    finally:
        sock.close()
