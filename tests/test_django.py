"""A small Django project (tests/apps/django_project/) on Propylon with ``--buffer-body``.

Django is a WSGI 1.0 application in one respect that matters here: it reads
exactly CONTENT_LENGTH bytes and treats a missing CONTENT_LENGTH as an empty
body. ``--buffer-body`` makes every body, chunked or HTTP/2 included, arrive
with an exact CONTENT_LENGTH.
"""

from __future__ import annotations

import hashlib
import os
import re

import httpx
import pytest

from tests.support import CLIENT_TIMEOUT, chunks_of


@pytest.fixture(scope="module")
def django_server(start_module_server):
    return start_module_server("tests.apps.django_project.wsgi:application", "--buffer-body")


def test_get(django_server):
    response = httpx.get(f"{django_server.url}/", timeout=CLIENT_TIMEOUT)
    assert (response.status_code, response.text) == (200, "hello")


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_form_post_with_csrf(django_server, http2):
    with httpx.Client(http1=not http2, http2=http2, timeout=CLIENT_TIMEOUT) as client:
        form = client.get(f"{django_server.url}/form")
        assert form.status_code == 200
        assert "csrftoken" in form.cookies
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        response = client.post(f"{django_server.url}/form", data={"csrfmiddlewaretoken": token, "name": "Ada"})
    assert (response.status_code, response.text) == (200, "hello Ada")


def test_form_post_without_csrf_token_is_403(django_server):
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        client.get(f"{django_server.url}/form")  # has the cookie, but sends no token
        response = client.post(f"{django_server.url}/form", data={"name": "Mallory"})
    assert response.status_code == 403


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_multipart_upload(django_server, http2):
    data = os.urandom(2 * 1024 * 1024 + 123)  # above FILE_UPLOAD_MAX_MEMORY_SIZE: Django spools to disk
    with httpx.Client(http1=not http2, http2=http2, timeout=CLIENT_TIMEOUT) as client:
        response = client.post(f"{django_server.url}/upload", data={"note": "hi"},
                               files={"file": ("data.bin", data, "application/octet-stream")})
    assert response.status_code == 200
    assert response.json()["size"] == len(data)
    assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert response.json()["name"] == "data.bin"
    assert response.json()["note"] == "hi"


@pytest.mark.parametrize("http2", [False, True], ids=["http1-chunked", "http2-streamed"])
def test_streamed_body_reaches_django_whole(django_server, http2):
    # Without --buffer-body Django would see no CONTENT_LENGTH and an empty body.
    body = os.urandom(300_000)
    with httpx.Client(http1=not http2, http2=http2, timeout=CLIENT_TIMEOUT) as client:
        response = client.post(f"{django_server.url}/body", content=chunks_of(body, 10_000))
    assert response.status_code == 200
    assert response.json() == {
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "content_length": str(len(body)),
    }
