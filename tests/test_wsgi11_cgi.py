"""``propylon.wsgi11.cgi``: the request body on a CGI gateway, without Apache.

The middleware behind a CGI gateway (tests/test_wsgi11_conformance.py runs
the kit against Apache ``mod_cgid``) reads a body of unknown length to the
end of stdin without de-chunking it again, tells a truncated one from a
complete one by how the front end ended the socket, survives the front
end's ``SIGTERM`` so that the application hears of it, and reads what the
application left of the body before the response starts. Here each of
these is driven exactly: the script's environment is patched in, and the
socket ``mod_cgid`` would give is a ``socketpair``.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from propylon.errors import ClientDisconnected, RequestBodyError
from propylon.wsgi11 import WSGI11Middleware
from propylon.wsgi11.cgi import CgiBody, is_cgi
from propylon.wsgi11.input import TerminatedInput
from tests.support import REPO
from tests.wsgi11.gateway import Gateway


@pytest.fixture
def cgi_process(monkeypatch):
    """This process's environment as a CGI script's (RFC 3875 §4.1)."""
    monkeypatch.setenv("GATEWAY_INTERFACE", "CGI/1.1")
    monkeypatch.setenv("REQUEST_METHOD", "POST")


def cgi_gateway(body: bytes, **extra: Any) -> Gateway:
    gateway = Gateway(body, **extra)
    gateway.environ["wsgi.run_once"] = True
    return gateway


def echo(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    data = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(data)))])
    return [data]


def test_cgi_is_told_from_the_process_environment(cgi_process, monkeypatch):
    assert is_cgi(cgi_gateway(b"").environ)
    assert not is_cgi(Gateway(b"").environ)  # wsgi.run_once not set: a long-running server
    monkeypatch.delenv("GATEWAY_INTERFACE")
    assert not is_cgi(cgi_gateway(b"").environ)  # the process is not a CGI script


def test_a_body_without_length_is_read_to_the_end_of_stdin_as_is(cgi_process):
    # Apache de-chunks, keeps HTTP_TRANSFER_ENCODING and passes no CONTENT_LENGTH.
    body = b"5\r\nthese bytes look like chunked framing but are the body\r\n"
    gateway = cgi_gateway(body, HTTP_TRANSFER_ENCODING="chunked")
    assert gateway.run(WSGI11Middleware(echo)) == body
    assert gateway.status == "200 OK"


def test_no_length_and_no_transfer_coding_is_no_body(cgi_process):
    gateway = cgi_gateway(b"extension data a CGI server may supply (RFC 3875 4.2)")
    assert gateway.run(WSGI11Middleware(echo)) == b""


def test_the_unread_body_is_read_before_the_response_starts(cgi_process):
    stdin = io.BytesIO(b"x" * 300_000)
    gateway = cgi_gateway(b"", content_length="300000")
    gateway.environ["wsgi.input"] = stdin
    seen = {}

    def answers_first(environ, start_response):
        environ["wsgi.input"].read(10)
        write = start_response("200 OK", [("Content-Length", "2")])
        seen["at_head"] = stdin.tell()
        write(b"ok")
        with pytest.raises(RequestBodyError, match="discarded when the response started"):
            environ["wsgi.input"].read(10)
        return []

    gateway.run(WSGI11Middleware(answers_first))
    assert seen["at_head"] == 10  # start_response alone gives the server nothing
    assert stdin.tell() == 300_000
    assert gateway.status == "200 OK"


def test_a_refused_body_is_read_before_the_413(cgi_process):
    stdin = io.BytesIO(b"z" * 5000)
    gateway = cgi_gateway(b"", content_length="5000")
    gateway.environ["wsgi.input"] = stdin
    gateway.run(WSGI11Middleware(echo, max_body_size=1000))
    assert gateway.status.startswith("413")
    assert stdin.tell() == 5000


def test_a_body_read_whole_stays_at_its_end_after_the_response_starts(cgi_process):
    gateway = cgi_gateway(b"abc", content_length="3")

    def reads_again(environ, start_response):
        first = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", "3")])
        return [first + environ["wsgi.input"].read()]

    assert gateway.run(WSGI11Middleware(reads_again)) == b"abc"


#: The front end's ends of the socket pairs, kept open while a test runs.
FRONT_ENDS: list[socket.socket] = []


def _socket_stdin(end: Callable[[socket.socket], None]) -> tuple[io.BufferedReader, socket.socket]:
    """The script's side of a mod_cgid socket, after the front end wrote a body and ended it with ``end``."""
    script, front_end = socket.socketpair()
    front_end.sendall(b"part of a body")
    end(front_end)
    FRONT_ENDS.append(front_end)
    return io.BufferedReader(socket.SocketIO(script, "rb")), script


@pytest.fixture(autouse=True)
def _close_front_ends():
    yield
    while FRONT_ENDS:
        FRONT_ENDS.pop().close()


def test_input_ended_by_a_half_close_is_a_complete_body():
    stdin, script = _socket_stdin(lambda s: s.shutdown(socket.SHUT_WR))
    try:
        body = CgiBody(stdin, None, has_body=True, stdout_fd=script.fileno())
        stream = TerminatedInput(body, length=None, terminated=True, limit=1 << 20)
        assert stream.read() == b"part of a body"
    finally:
        script.close()


def test_input_ended_by_closing_the_socket_is_a_truncated_body():
    stdin, script = _socket_stdin(socket.socket.close)
    try:
        body = CgiBody(stdin, None, has_body=True, stdout_fd=script.fileno())
        stream = TerminatedInput(body, length=None, terminated=True, limit=1 << 20)
        with pytest.raises(ClientDisconnected, match="without ending it"):
            stream.read()
    finally:
        script.close()


def test_closing_tells_nothing_where_stdin_is_not_the_response_socket():
    # A pipe, or a socket used for input only, is ended by closing it whether the body is complete or not.
    stdin, script = _socket_stdin(socket.socket.close)
    other, _ = socket.socketpair()
    try:
        body = CgiBody(stdin, None, has_body=True, stdout_fd=other.fileno())
        assert TerminatedInput(body, length=None, terminated=True, limit=1 << 20).read() == b"part of a body"
    finally:
        script.close()
        other.close()


SIGTERM_SCRIPT = """
import io, os, signal
os.environ.update(GATEWAY_INTERFACE="CGI/1.1", REQUEST_METHOD="POST")
from propylon.wsgi11 import WSGI11Middleware

def app(environ, start_response):
    os.kill(os.getpid(), signal.SIGTERM)  # the front end abandons the request
    try:
        environ["wsgi.input"].read()
        outcome = "read returned"
    except OSError as exc:
        outcome = type(exc).__name__
    start_response("200 OK", [])
    return [outcome.encode()]

environ = {"REQUEST_METHOD": "POST", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.run_once": True,
           "wsgi.input": io.BytesIO(b"what arrived before the end"), "wsgi.errors": io.StringIO()}
body = b"".join(WSGI11Middleware(app)(environ, lambda status, headers: None))
print(body.decode())
"""


def test_sigterm_from_the_front_end_is_heard_by_the_application_not_fatal():
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    out = subprocess.run([sys.executable, "-c", SIGTERM_SCRIPT], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ClientDisconnected"
