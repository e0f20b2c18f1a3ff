"""Flask and Django behind ``WSGI11Middleware`` on servers we did not write.

The same applications, and the same upload and download tests, as
tests/test_flask.py and tests/test_django.py run on Propylon: here on
gunicorn, waitress, wsgiref, Apache mod_wsgi (embedded and daemon mode), CGI
under Apache mod_cgid, uWSGI (alone and behind nginx), and flup's FastCGI and
SCGI servers behind nginx, each started for real
(tests/wsgi11/servers.py) and serving them behind the middleware
(tests/wsgi11/apps.py mounts Flask at ``/flask`` and Django, in the
compatibility mode, at ``/django``). ``/flask-validated`` adds
``propylon.wsgi11.validator`` between the middleware and Flask: the
validator finds nothing to complain about in either. HTTP/1.1 only: none of these servers
speaks HTTP/2.

What the middleware adds is visible in the chunked uploads: wsgiref passes
the chunked framing through and never ends ``wsgi.input``; gunicorn and
mod_wsgi give Django no ``CONTENT_LENGTH``, so Django would see an empty
body without the compatibility mode.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re

import httpx
import pytest

from tests.support import CLIENT_TIMEOUT, UPLOAD_MIB, chunks_of, upload_blocks
from tests.wsgi11.flup_hosts import FLUP_HOSTS
from tests.wsgi11.servers import SERVERS, unavailable


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request):
    if reason := unavailable(request.param):
        pytest.skip(reason)
    started = SERVERS[request.param](body_limit=1 << 30)  # uploads here are not about limits
    yield started
    started.close()


def _chunked_upload(server, path: str, blocks: list[bytes]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("POST", path, body=iter(blocks), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


# ----------------------------------------------------------------------------- Flask


@pytest.mark.parametrize("mount", ["flask", "flask-validated"])
def test_flask_form_post(server, mount):
    response = httpx.post(server.url(f"{mount}/form"), data={"name": "Zoë", "n": "3"}, timeout=CLIENT_TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.json()["fields"] == {"name": "Zoë", "n": "3"}


def test_flask_json(server):
    response = httpx.post(server.url("flask/json"), json={"numbers": [1, 2, 3.5], "name": "x"},
                          timeout=CLIENT_TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.json() == {"sum": 6.5, "name": "x"}


@pytest.mark.parametrize("path", ["/flask/upload", "/flask-validated/upload"])
def test_flask_chunked_upload_streamed_to_request_stream(server, path):
    blocks = upload_blocks()  # the size of tests/test_flask.py's
    digest = hashlib.sha256(b"".join(blocks)).hexdigest()
    status, result = _chunked_upload(server, path, blocks)
    assert status == 200
    # Absent: the body is streamed. waitress, and nginx in front of uWSGI and
    # flup, read the whole body before calling the application and give its
    # exact length, which §3 allows.
    exact = str(UPLOAD_MIB * 1024 * 1024) if server.name in ("waitress", "uwsgi-nginx", *FLUP_HOSTS) else "<absent>"
    assert result == {"length": UPLOAD_MIB * 1024 * 1024, "sha256": digest, "content_length": exact}


@pytest.mark.parametrize("mount", ["flask", "flask-validated"])
def test_flask_send_file(server, mount):
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = server.tmp / "download.bin"  # a directory Apache's worker (www-data) can read
    path.write_bytes(data)
    path.chmod(0o644)
    response = httpx.get(server.url(f"{mount}/download"), params={"path": str(path)}, timeout=CLIENT_TIMEOUT)
    assert response.status_code == 200, response.text[:300]
    # Apache frames a CGI response itself, without the script's Content-Length (CVE-2024-24795).
    assert response.headers.get("content-length") == (None if server.name == "cgi" else str(len(data)))
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------- Django


def test_django_get(server):
    response = httpx.get(server.url("django/"), timeout=CLIENT_TIMEOUT)
    assert (response.status_code, response.text) == (200, "hello")


def test_django_form_post_with_csrf(server):
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        form = client.get(server.url("django/form"))
        assert form.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        response = client.post(server.url("django/form"), data={"csrfmiddlewaretoken": token, "name": "Ada"})
    assert (response.status_code, response.text) == (200, "hello Ada")


def test_django_form_post_without_csrf_token_is_403(server):
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        client.get(server.url("django/form"))
        response = client.post(server.url("django/form"), data={"name": "Mallory"})
    assert response.status_code == 403


def test_django_multipart_upload(server):
    data = os.urandom(2 * 1024 * 1024 + 123)
    response = httpx.post(server.url("django/upload"), data={"note": "hi"},
                          files={"file": ("data.bin", data, "application/octet-stream")}, timeout=CLIENT_TIMEOUT)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["size"] == len(data)
    assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert response.json()["name"] == "data.bin"
    assert response.json()["note"] == "hi"


def test_django_chunked_body_reaches_django_whole(server):
    # Without the compatibility mode Django would see no CONTENT_LENGTH and an empty body.
    body = os.urandom(300_000)
    status, result = _chunked_upload(server, "/django/body", list(chunks_of(body, 10_000)))
    assert status == 200
    assert result == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                      "content_length": str(len(body))}
