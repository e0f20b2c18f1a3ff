"""The showcase application object end to end, as the README's first command serves it.

One server, started as ``propylon examples.showcase:app``, shows the pieces of
the application object working together: the WSGI pages, the ``/static/``
mount served by the runtime (precompressed siblings, validators), the
preloads announced with ``103 Early Hints`` (``curl -v`` over HTTP/1.1, the
``h2`` package over HTTP/2), and, with ``--http2-push``, the preloads pushed
to an HTTP/2 client that allows push, served by the static mount.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import brotli
import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest

from tests.support import CLIENT_TIMEOUT, ServerProcess

REPO = Path(__file__).resolve().parent.parent
STATIC = REPO / "examples" / "static"
PRELOADS = [
    b"</static/showcase.css>; rel=preload; as=style",
    b"</static/showcase.js>; rel=preload; as=script",
]


@pytest.fixture(scope="module")
def showcase(start_module_server) -> ServerProcess:
    return start_module_server("examples.showcase:app", "--http2-push")


def test_the_page_links_the_static_assets_and_they_are_served_by_the_mount(showcase):
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        page = client.get(f"{showcase.url}/")
        assert 'href="/static/showcase.css"' in page.text and 'src="/static/showcase.js"' in page.text
        css = client.get(f"{showcase.url}/static/showcase.css", headers={"Accept-Encoding": "identity"})
        assert css.status_code == 200
        assert css.content == (STATIC / "showcase.css").read_bytes()
        assert css.headers["content-type"] == "text/css; charset=utf-8"
        assert css.headers["cache-control"] == "public, max-age=60"
        assert css.headers["vary"] == "Accept-Encoding"
        # The validator is the representation's: the identity one's, asked for again.
        again = client.get(
            f"{showcase.url}/static/showcase.css",
            headers={"Accept-Encoding": "identity", "If-None-Match": css.headers["etag"]},
        )
        assert again.status_code == 304


def test_a_client_that_accepts_br_gets_the_precompressed_sibling(showcase):
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        raw = client.get(f"{showcase.url}/static/showcase.js", headers={"Accept-Encoding": "br, gzip"})
    assert raw.headers["content-encoding"] == "br"
    assert int(raw.headers["content-length"]) == (STATIC / "showcase.js.br").stat().st_size
    assert raw.content == (STATIC / "showcase.js").read_bytes()  # httpx decoded it
    assert brotli.decompress((STATIC / "showcase.js.br").read_bytes()) == raw.content


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_sees_the_103_with_the_preloads_before_the_page(showcase):
    result = subprocess.run(
        ["curl", "-sv", "--http1.1", "-H", "Accept: text/html", "-o", "/dev/null", f"{showcase.url}/"],
        capture_output=True, timeout=CLIENT_TIMEOUT,
    )  # fmt: skip
    lines = [line.strip() for line in result.stderr.splitlines() if line.startswith(b"< ")]
    hint, final = lines.index(b"< HTTP/1.1 103 Early Hints"), lines.index(b"< HTTP/1.1 200 OK")
    assert hint < final
    links = [line[2:].split(b": ", 1)[1] for line in lines[hint:final] if line.lower().startswith(b"< link:")]
    assert links == PRELOADS


def h2_page_with_pushes(port: int, enable_push: bool) -> tuple[list, dict[int, dict], dict[int, bytes]]:
    """GET / over h2c as a browser navigation: the 103s' fields, and per stream
    (1 and any pushed) the response fields and body."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: int(enable_push)})
    hints: list = []
    heads: dict[int, dict] = {}
    bodies: dict[int, bytes] = {}
    open_streams = {1}
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", f"127.0.0.1:{port}"),
                              (":path", "/"), ("accept", "text/html")], end_stream=True)  # fmt: skip
        sock.sendall(conn.data_to_send())
        while open_streams:
            data = sock.recv(65536)
            assert data, "the server closed before every stream ended"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.PushedStreamReceived):
                    open_streams.add(event.pushed_stream_id)
                    heads[event.pushed_stream_id] = {b"promise": dict(event.headers)}
                elif isinstance(event, h2.events.InformationalResponseReceived):
                    hints.append([value for name, value in event.headers if name == b"link"])
                elif isinstance(event, h2.events.ResponseReceived):
                    heads.setdefault(event.stream_id, {}).update(dict(event.headers))
                elif isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    open_streams.discard(event.stream_id)
            sock.sendall(conn.data_to_send())
    return hints, heads, bodies


def test_http2_gets_the_hints_and_with_push_allowed_the_pushed_assets(showcase):
    hints, heads, bodies = h2_page_with_pushes(showcase.port, enable_push=True)
    assert hints == [PRELOADS]
    assert heads[1][b":status"] == b"200"
    pushed = {heads[sid][b"promise"][b":path"]: sid for sid in heads if sid != 1}
    assert sorted(pushed) == [b"/static/showcase.css", b"/static/showcase.js"]
    for path, sid in pushed.items():
        assert sid % 2 == 0, "pushed streams are even (RFC 9113 §5.1.1)"
        assert heads[sid][b":status"] == b"200"
        name = path.decode().rsplit("/", 1)[1]
        assert bodies[sid] == (STATIC / name).read_bytes()


def test_http2_client_that_disables_push_gets_no_push(showcase):
    hints, heads, bodies = h2_page_with_pushes(showcase.port, enable_push=False)
    assert hints == [PRELOADS]
    assert list(heads) == [1]
    assert b"Propylon showcase" in bodies[1]
