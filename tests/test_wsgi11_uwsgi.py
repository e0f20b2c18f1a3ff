"""What ``WSGI11Middleware`` does on uWSGI (propylon/wsgi11/uwsgi_server.py), against real uWSGI.

uWSGI from the test extra, started by tests/wsgi11/uwsgi_hosts.py on
``--http-socket`` with 8 threads, and on the uwsgi protocol behind Debian's
nginx; both serve tests/wsgi11/apps.py, whose ``/native`` mount is the
conformance probe on its own and ``/middleware`` the probe behind the
middleware. Each test shows uWSGI's own behaviour on ``/native`` next to
the middleware's on ``/middleware``, so that each fails without what the
middleware does there.
"""

from __future__ import annotations

import http.client
import os

import httpx
import pytest

from propylon.wsgi11.conformance.probe import pattern
from tests.support import CLIENT_TIMEOUT, chunks_of
from tests.wsgi11.apps import LIMIT
from tests.wsgi11.fronted import assert_unread_bodies_keep_their_answers
from tests.wsgi11.servers import SERVERS
from tests.wsgi11.uwsgi_hosts import uwsgi_unavailable


def _start(name: str):
    if uwsgi_unavailable(name):
        pytest.skip(uwsgi_unavailable(name))
    return SERVERS[name]()


@pytest.fixture(scope="module")
def uwsgi_http():
    server = _start("uwsgi")
    yield server
    server.close()


@pytest.fixture(scope="module", params=["uwsgi", "uwsgi-nginx"])
def uwsgi_host(request):
    server = _start(request.param)
    yield server
    server.close()


@pytest.fixture(scope="module")
def uwsgi_nginx():
    server = _start("uwsgi-nginx")
    yield server
    server.close()


def _post_chunked(server, path: str, body: bytes, size: int) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("POST", path, body=chunks_of(body, size), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_chunked_upload_reaches_the_application_whole(uwsgi_http):
    # uWSGI's --http-socket passes a chunked body with no CONTENT_LENGTH and a
    # wsgi.input that reads nothing; the middleware reads it through
    # uwsgi.chunked_read(). The probe reads wsgi.input in a thread of its own,
    # where uWSGI's chunked-input API does not answer.
    body = os.urandom(200_000)
    status, native = _post_chunked(uwsgi_http, "/native/read/read-all", body, 30_000)
    assert status == 200
    assert httpx.Response(200, content=native).json().get("value") != [body.decode("latin-1")]
    response = httpx.post(uwsgi_http.url("middleware/read/read-all"), content=chunks_of(body, 30_000),
                          headers={"Content-Type": "application/octet-stream"}, timeout=CLIENT_TIMEOUT)
    assert response.status_code == 200, response.text[:300]
    report = response.json()
    assert report["transfer_encoding"] == "chunked"
    assert report["content_length"] is None
    assert "".join(report["value"]).encode("latin-1") == body
    assert report["after"] == ["", "", ""]


def test_chunked_upload_over_the_limit_is_413(uwsgi_http):
    status, _ = _post_chunked(uwsgi_http, "/middleware/limit", os.urandom(LIMIT + 1000), 64 * 1024)
    assert status == 413


def test_wrapped_file_is_sent_from_tell_up_to_content_length(uwsgi_host):
    # uWSGI's own wsgi.file_wrapper sends the whole file from offset 0; the
    # middleware sends it with uwsgi.sendfile() from tell(), Content-Length
    # bytes, and never iterates it in Python.
    query = {"size": "300000", "skip": "1000", "declared": "200000", "token": "t-native"}
    native = httpx.get(uwsgi_host.url("native/file"), params=query, timeout=CLIENT_TIMEOUT)
    assert native.content[:1000] == pattern(1000)  # from offset 0, not from tell()
    query["token"] = "t-middleware"
    response = httpx.get(uwsgi_host.url("middleware/file"), params=query, timeout=CLIENT_TIMEOUT)
    assert response.status_code == 200
    assert response.headers["content-length"] == "200000"
    assert response.content == pattern(200_000, 1000)
    record = httpx.get(uwsgi_host.url("middleware/result/t-middleware"), timeout=CLIENT_TIMEOUT).json()
    assert not record.get("iterated"), record
    assert record.get("file_closed"), record


def test_wrapped_file_without_content_length_gets_the_rest_of_the_file(uwsgi_host):
    query = {"size": "100000", "skip": "4096", "token": "t-rest"}
    response = httpx.get(uwsgi_host.url("middleware/file"), params=query, timeout=CLIENT_TIMEOUT)
    assert response.status_code == 200
    assert response.headers["content-length"] == str(100_000 - 4096)
    assert response.content == pattern(100_000 - 4096, 4096)


def test_exception_before_start_response_is_answered_500(uwsgi_http):
    # The probe's /file route raises ValueError for a size that is not a number,
    # before start_response; uWSGI alone closes the connection without a response.
    conn = http.client.HTTPConnection("127.0.0.1", uwsgi_http.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", "/native/file?size=many")
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
    finally:
        conn.close()
    response = httpx.get(uwsgi_http.url("middleware/file"), params={"size": "many"}, timeout=CLIENT_TIMEOUT)
    assert (response.status_code, response.text) == (500, "Internal Server Error\n")
    assert "ValueError" in uwsgi_http.output()


def test_unread_body_behind_nginx_leaves_the_answer_intact(uwsgi_nginx):
    # uWSGI closes the socket with the body's rest unread unless the
    # middleware reads it after answering (propylon/wsgi11/frontend.py).
    assert_unread_bodies_keep_their_answers(uwsgi_nginx)
