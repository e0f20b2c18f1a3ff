"""An unmodified Flask application (tests/apps/flask_app.py) on Propylon."""

from __future__ import annotations

import hashlib
import http.client
import json
import os

import httpx
import pytest

from tests.support import CLIENT_TIMEOUT, UPLOAD_MIB, upload_blocks


@pytest.fixture(scope="module")
def flask_server(start_module_server):
    return start_module_server("tests.apps.flask_app:app")


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_form_post(flask_server, http2):
    with httpx.Client(http1=not http2, http2=http2, timeout=CLIENT_TIMEOUT) as client:
        response = client.post(f"{flask_server.url}/form", data={"name": "Zoë", "n": "3"})
    assert response.status_code == 200
    assert response.json()["fields"] == {"name": "Zoë", "n": "3"}


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_json(flask_server, http2):
    with httpx.Client(http1=not http2, http2=http2, timeout=CLIENT_TIMEOUT) as client:
        response = client.post(f"{flask_server.url}/json", json={"numbers": [1, 2, 3.5], "name": "x"})
    assert response.status_code == 200
    assert response.json() == {"sum": 6.5, "name": "x"}


def test_chunked_upload_streamed_to_request_stream(flask_server):
    blocks = upload_blocks()
    digest = hashlib.sha256(b"".join(blocks)).hexdigest()
    conn = http.client.HTTPConnection("127.0.0.1", flask_server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("POST", "/upload", body=(b for b in blocks), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        result = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 200
    assert result == {"length": UPLOAD_MIB * 1024 * 1024, "sha256": digest, "content_length": "<absent>"}


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
def test_send_file_goes_through_wsgi_file_wrapper(flask_server, tmp_path, http2):
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "download.bin"
    path.write_bytes(data)
    start = flask_server.mark()
    with httpx.Client(http1=not http2, http2=http2, timeout=CLIENT_TIMEOUT) as client:
        response = client.get(f"{flask_server.url}/download", params={"path": str(path)})
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(data))
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(data).hexdigest()
    # Werkzeug's send_file wrapped the file with environ["wsgi.file_wrapper"] and
    # the FileWrapper object itself reached the server (tests/apps/_validate.py logs it).
    flask_server.wait_for_line(r"FILE-WRAPPER-PASSTHROUGH FileWrapper", start)
