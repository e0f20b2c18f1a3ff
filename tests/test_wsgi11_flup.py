"""flup's FastCGI server behind nginx with ``fastcgi_request_buffering off``.

The conformance run keeps nginx's request buffering on (tests/wsgi11/flup_hosts.py
says why). Turned off, nginx streams bodies to the gateway as they arrive,
which is the one configuration where a body of unknown length reaches a
FastCGI gateway: a chunked body becomes stdin records without a
``CONTENT_LENGTH``, ended by the empty record. What is observed here:

- the middleware reads such a body to that end, and gives it without a length;
- a client that stops mid-body: nginx closes its connection to flup (it
  never sends ``FCGI_ABORT_REQUEST``), and flup's ``wsgi.input`` raises
  ``EOFError``, which is not an ``OSError``: on its own flup fails the
  ``truncated-*`` checks; behind the middleware the read raises
  :class:`propylon.ClientDisconnected`, with or without a length.

The first tests drive flup's own stdin stream in process, fed the records
a front end sends, for the middleware's reading of it
(propylon/wsgi11/flup.py).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from propylon.wsgi11 import WSGI11Middleware
from propylon.wsgi11.conformance import Context, Target, run
from propylon.wsgi11.conformance.checks import BODY, RECORD_WAIT
from propylon.wsgi11.conformance.client import chunked, request_bytes, wait_for
from tests.wsgi11.apps import LIMIT
from tests.wsgi11.flup_hosts import FlupFastCGIStreaming, FlupSCGI, flup_unavailable
from tests.wsgi11.fronted import assert_unread_bodies_keep_their_answers
from tests.wsgi11.gateway import Gateway

TRUNCATED = ["truncated-length", "truncated-chunked"]


class _FrontEndConnection:
    """What flup's stdin stream asks of its connection: the next record, here none."""

    server = SimpleNamespace(inputStreamShrinkThreshold=1 << 20)

    def process_input(self) -> None:
        raise EOFError  # what flup's Record.read raises when the front end closed the connection


def _stdin(*records: bytes):
    fcgi_base = pytest.importorskip("flup.server.fcgi_base")
    stream = fcgi_base.InputStream(_FrontEndConnection())
    for data in records:
        stream.add_data(data)  # b"": the empty FCGI_STDIN record, the end of the body
    return stream


def _echo(environ, start_response):
    data = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", str(len(data)))])
    return [data]


def _streamed(stream) -> Gateway:
    # How nginx passes a chunked body with fastcgi_request_buffering off.
    gateway = Gateway(content_length="", HTTP_TRANSFER_ENCODING="chunked")
    gateway.environ["wsgi.input"] = stream
    return gateway


def test_fastcgi_stdin_without_a_length_is_read_to_its_end():
    gateway = _streamed(_stdin(BODY[:10], BODY[10:], b""))
    assert gateway.run(WSGI11Middleware(_echo)) == BODY  # not empty, not de-chunked again
    assert gateway.status == "200 OK"


def test_fastcgi_stdin_closed_before_its_end_is_a_client_gone():
    gateway = _streamed(_stdin(BODY[:10]))
    assert gateway.run(WSGI11Middleware(_echo)) == b"Incomplete request body\n"
    assert gateway.status.startswith("400")
    assert "the server's wsgi.input failed: EOFError" in gateway.errors.getvalue()


@pytest.fixture(scope="module")
def streaming():
    if flup_unavailable():
        pytest.skip(flup_unavailable())
    server = FlupFastCGIStreaming()
    yield server
    server.close()


def _outcomes(server, mount: str) -> dict[str, tuple[str, str]]:
    results = run(Context(Target(server.url(mount)), None, LIMIT), only=TRUNCATED)
    return {cid: (outcome.result, outcome.detail) for cid, outcome in results.items()}


def test_chunked_body_reaches_the_application_while_it_arrives_without_a_length(streaming):
    target = Target(streaming.url("middleware"))
    ctx = Context(target)
    token = ctx.token()
    with target.connect() as conn:
        conn.try_send(request_bytes(target, "POST", f"/record/{token}", [("Transfer-Encoding", "chunked")])
                      + chunked(BODY[:10], end=False))
        # The application runs before the body is complete: streamed, not buffered.
        assert wait_for(lambda: ctx.record(token), RECORD_WAIT), "the application was not called mid-body"
        conn.try_send(chunked(BODY[10:]))
        response = conn.read_response("POST")
    assert response is not None and response.status == 200
    record = response.json()
    assert (record["outcome"], record["bytes"]) == ("complete", len(BODY))
    assert record["content_length"] is None  # nginx's empty CONTENT_LENGTH, removed (§3)


@pytest.mark.timeout(120)
def test_bodies_cut_short_raise_only_behind_the_middleware(streaming):
    native = _outcomes(streaming, "native")
    assert native == {
        "truncated-length": ("fail", "Content-Length body cut short: the read raised EOFError, not an OSError"),
        "truncated-chunked": ("fail", "chunked body cut short: the read raised EOFError, not an OSError"),
    }
    assert _outcomes(streaming, "middleware") == dict.fromkeys(TRUNCATED, ("pass", ""))


@pytest.fixture(scope="module")
def scgi():
    if flup_unavailable():
        pytest.skip(flup_unavailable())
    server = FlupSCGI()
    yield server
    server.close()


def test_unread_body_over_scgi_leaves_the_answer_intact(scgi):
    # flup's SCGI input is the socket; the middleware reads the body's rest
    # once it has answered (propylon/wsgi11/frontend.py).
    assert_unread_bodies_keep_their_answers(scgi)
