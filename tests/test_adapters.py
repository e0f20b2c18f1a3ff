"""The adapters (``propylon.adapters.asgi`` and ``.wsgi``): one application
object (tests/apps/adapters_app.py) served by uvicorn and hypercorn through the
ASGI adapter, by gunicorn (sync worker) and by Propylon through the WSGI
adapter, and by Propylon as it is; every server a real process on a free port,
talked to with httpx and raw sockets.

Checked on each server: the WSGI endpoint (request body read in pieces,
streamed response, an exception answered 500), the static mount (validators
and 304, precompressed siblings, index files and the trailing-slash redirect,
one byte range, 405, traversal attempts and symbolic links refused), the
``server`` object and the app's configuration from the environment and the
``[app]`` table, ``startup`` before the first request and ``shutdown`` after
the server stopped (a marker file), a failing ``startup``, bad configuration,
an endless response stopped when its client goes. On one server each: HTTP/2
and ``103 Early Hints`` (hypercorn), ``--preload`` (gunicorn). The rules
without a server (configuration types, preload links, declaration errors) are
table tests at the end.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace

import brotli
import httpx
import pytest

from propylon.adapters import WSGIAdapter, _server
from propylon.declarations import read_application
from propylon.wsgi11.conformance.client import RawConnection
from tests.support import CLIENT_TIMEOUT, READY_TIMEOUT, REPO, STOP_TIMEOUT

#: How each server is started on a free port (port 0), and the line saying on which.
SERVERS = {
    "uvicorn": (["-m", "uvicorn", "tests.apps.adapters_app:asgi_app", "--host", "127.0.0.1", "--port", "0"],
                r"Uvicorn running on http://127\.0\.0\.1:(\d+)"),
    "hypercorn": (["-m", "hypercorn", "tests.apps.adapters_app:asgi_app", "--bind", "127.0.0.1:0"],
                  r"Running on http://127\.0\.0\.1:(\d+)"),
    "gunicorn": (["-m", "gunicorn", "tests.apps.adapters_app:wsgi_app", "--bind", "127.0.0.1:0",
                  "--workers", "1", "--worker-class", "sync", "--graceful-timeout", "10"],
                 r"Listening at: http://127\.0\.0\.1:(\d+)"),
    "propylon": (["-m", "propylon", "tests.apps.adapters_app:wsgi_app", "--bind", "127.0.0.1:0"],
                 r"Listening on http://127\.0\.0\.1:(\d+)"),
}
#: The servers whose application is the ASGI adapter (startup failure stops them).
ASGI_SERVERS = ("uvicorn", "hypercorn")

CSS = b"body { color: rebeccapurple }\n" * 64
BIG = bytes(range(256)) * 1200


class Server:
    """One server process; its output (stdout and stderr) kept line by line."""

    def __init__(self, kind: str, env: dict[str, str], app: str | None = None, extra: list[str] | None = None) -> None:
        self.kind = kind
        args, ready = SERVERS[kind]
        if app is not None:
            args = [app if arg.startswith("tests.apps.adapters_app:") else arg for arg in args]
        args = args + (extra or [])
        if kind == "gunicorn":
            args = args + ["--control-socket", env["ADAPTERS_MARKER"] + ".ctl"]
        self.command = [sys.executable, *args]
        full_env = dict(os.environ, **env, PYTHONUNBUFFERED="1")
        full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.eof = False
        self.proc = subprocess.Popen(self.command, cwd=REPO, env=full_env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._drain, daemon=True).start()
        self.port = int(self.wait_for(ready).group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip())
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def output(self) -> str:
        with self.cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = READY_TIMEOUT) -> re.Match[str]:
        regex, deadline, seen = re.compile(pattern), time.monotonic() + timeout, 0
        with self.cond:
            while True:
                for line in self.lines[seen:]:
                    if match := regex.search(line):
                        return match
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self.eof or remaining <= 0:
                    break
                self.cond.wait(remaining)
        self.stop()
        raise AssertionError(f"no line matching {pattern!r} from {' '.join(self.command)}:\n{self.output()}")

    def wait_exit(self, timeout: float = READY_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.kind} did not exit:\n{self.output()}") from None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.wait_exit(STOP_TIMEOUT)
        with self.cond:
            self.cond.wait_for(lambda: self.eof, CLIENT_TIMEOUT)
        return code


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The static directory, a file outside it, and the config file."""
    base = tmp_path_factory.mktemp("adapters")
    root = base / "static"
    (root / "sub").mkdir(parents=True)
    (root / "app.css").write_bytes(CSS)
    (root / "app.css.gz").write_bytes(gzip.compress(CSS))
    (root / "app.css.br").write_bytes(brotli.compress(CSS))
    (root / "big.bin").write_bytes(BIG)
    (root / "index.html").write_bytes(b"<h1>index</h1>\n")
    (root / "sub" / "index.html").write_bytes(b"<h1>sub</h1>\n")
    (root / ".secret").write_bytes(b"SECRET-DOTFILE\n")
    (base / "outside.txt").write_bytes(b"SECRET-OUTSIDE\n")
    (root / "link-out").symlink_to(base / "outside.txt")
    (root / "link-in").symlink_to(root / "app.css")
    config = base / "adapters.toml"
    config.write_text("[app]\nratio = 0.25\ngreeting = 'from the file'\n")
    return SimpleNamespace(base=base, root=root, config=config)


def environment(site: SimpleNamespace, kind: str, marker: Path, **extra: str) -> dict[str, str]:
    env = {
        "ADAPTERS_STATIC": str(site.root),
        "ADAPTERS_MARKER": str(marker),
        "PROPYLON_APP_SECRET": "s3cret",
        "PROPYLON_APP_GREETING": "hi from env",  # the environment wins over the file
        "PROPYLON_APP_RETRIES": "5",
        "PROPYLON_APP_DEBUG": "yes",
    }
    if kind == "propylon":
        # Propylon reads PROPYLON_CONFIG itself, and its file has no [app] table yet.
        env["PROPYLON_APP_RATIO"] = "0.25"
    else:
        env["PROPYLON_CONFIG"] = str(site.config)
    env.update(extra)
    return env


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest, site: SimpleNamespace) -> Iterator[Server]:
    kind = request.param
    marker = site.base / f"marker-{kind}"
    running = Server(kind, environment(site, kind, marker))
    yield running
    running.stop()


@pytest.fixture()
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
        yield client


# -- the WSGI endpoint -------------------------------------------------------------


def test_server_object_and_configuration(server: Server, client: httpx.Client) -> None:
    report = client.get("/server").json()
    assert report["started"] is True
    assert report["name"].startswith("propylon.adapters.")
    assert report["protocols"] == (["websocket", "wsgi"] if server.kind in ASGI_SERVERS else ["wsgi"])
    assert report["features"] == ["static"]
    assert (report["worker"], report["workers"]) == (0, 1)
    assert report["config"] == {"greeting": "hi from env", "retries": 5, "ratio": 0.25, "debug": True,
                                "secret": "s3cret", "fail_startup": False}
    assert client.get("/hello").text == "hi from env"


def test_request_body_is_read_in_pieces(client: httpx.Client) -> None:
    body = os.urandom(700_000)
    report = client.post("/echo", content=body).json()
    assert report == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest(), "terminated": True}


def test_request_body_chunked(client: httpx.Client) -> None:
    pieces = [os.urandom(5000) for _ in range(20)]
    report = client.post("/echo", content=iter(pieces)).json()
    assert report["size"] == 100_000
    assert report["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_streamed_response_and_errors(client: httpx.Client) -> None:
    assert client.get("/stream").text == "one two three"
    assert client.get("/error").status_code == 500
    assert client.get("/anything/else").text == "wsgi /anything/else"


def test_client_gone_ends_an_endless_response(server: Server, site: SimpleNamespace) -> None:
    marker = site.base / f"marker-{server.kind}"
    with RawConnection(server.port) as raw:
        raw.send(b"GET /endless HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert raw.read_head() is not None
        raw.read_some(100_000)
        raw.abort()
    deadline = time.monotonic() + READY_TIMEOUT
    while "endless-closed" not in marker.read_text():
        assert time.monotonic() < deadline, "the endless response's close() was never called"
        time.sleep(0.05)


# -- the static mount --------------------------------------------------------------


def test_static_file_with_validators(client: httpx.Client) -> None:
    response = client.get("/static/app.css", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.content == CSS
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert response.headers["content-length"] == str(len(CSS))
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in response.headers
    etag, last_modified = response.headers["etag"], response.headers["last-modified"]
    assert re.fullmatch(r'"[^"]+"', etag)

    again = client.get("/static/app.css", headers={"Accept-Encoding": "identity", "If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    since = client.get("/static/app.css", headers={"Accept-Encoding": "identity",
                                                    "If-Modified-Since": last_modified})
    assert since.status_code == 304
    other = client.get("/static/app.css", headers={"Accept-Encoding": "identity", "If-None-Match": '"other"'})
    assert other.status_code == 200


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_precompressed_sibling(client: httpx.Client, coding: str) -> None:
    plain = client.get("/static/app.css", headers={"Accept-Encoding": "identity"})
    response = client.get("/static/app.css", headers={"Accept-Encoding": f"{coding}, identity;q=0.5"})
    assert response.headers["content-encoding"] == coding
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.content == CSS  # httpx decodes it
    assert response.headers["etag"] != plain.headers["etag"]
    refused = client.get("/static/app.css", headers={"Accept-Encoding": f"{coding};q=0"})
    assert "content-encoding" not in refused.headers


def test_index_files_and_trailing_slash(client: httpx.Client) -> None:
    redirect = client.get("/static")
    assert (redirect.status_code, redirect.headers["location"]) == (301, "/static/")
    sub = client.get("/static/sub?x=1")
    assert (sub.status_code, sub.headers["location"]) == (301, "/static/sub/?x=1")
    assert client.get("/static/").content == b"<h1>index</h1>\n"
    assert client.get("/static/sub/").content == b"<h1>sub</h1>\n"
    assert client.get("/static/app.css/").status_code == 404
    assert client.get("/static/missing.css").status_code == 404


def test_byte_range(client: httpx.Client) -> None:
    response = client.get("/static/big.bin", headers={"Range": "bytes=1000-1999"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 1000-1999/{len(BIG)}"
    assert response.content == BIG[1000:2000]
    assert client.get("/static/big.bin", headers={"Range": "bytes=-10"}).content == BIG[-10:]
    unsatisfiable = client.get("/static/big.bin", headers={"Range": f"bytes={len(BIG)}-"})
    assert (unsatisfiable.status_code, unsatisfiable.headers["content-range"]) == (416, f"bytes */{len(BIG)}")
    stale = client.get("/static/big.bin", headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert (stale.status_code, stale.content) == (200, BIG)


def test_methods(client: httpx.Client) -> None:
    head = client.head("/static/big.bin")
    assert (head.status_code, head.headers["content-length"], head.content) == (200, str(len(BIG)), b"")
    post = client.post("/static/app.css", content=b"x")
    assert post.status_code == 405
    assert post.headers["allow"] == "GET, HEAD"


TRAVERSALS = [
    "/static/../outside.txt",
    "/static/%2e%2e/outside.txt",
    "/static/%2E%2E%2Foutside.txt",
    "/static/..%2foutside.txt",
    "/static/sub/../../outside.txt",
    "/static/..%5coutside.txt",
    "/static/%5c..%5coutside.txt",
    "/static/.secret",
    "/static/%2esecret",
    "/static/link-out",
    "/static/app.css%00",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_refused(server: Server, path: str) -> None:
    with RawConnection(server.port) as raw:
        raw.send(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        response = raw.read_response("GET")
    assert response is not None
    assert response.status in (400, 404), (response.status, response.body)
    assert b"SECRET" not in response.body


def test_symlink_inside_the_root_is_served(client: httpx.Client) -> None:
    assert client.get("/static/link-in", headers={"Accept-Encoding": "identity"}).content == CSS


def test_websocket_handshake_is_refused(server: Server) -> None:
    handshake = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    with RawConnection(server.port) as raw:
        raw.send(handshake.encode())
        response = raw.read_response("GET")
    assert response is not None
    # 404 where the refusal can carry a status; an ASGI server without the
    # websocket.http.response extension turns a close before accept into 403.
    assert response.status in (403, 404), response.status


def test_wsgi_over_http2(site: SimpleNamespace, tmp_path: Path) -> None:
    # hypercorn speaks HTTP/2 (h2c with prior knowledge): the bridge streams the body both ways.
    running = Server("hypercorn", environment(site, "hypercorn", tmp_path / "marker"))
    try:
        with httpx.Client(http1=False, http2=True, base_url=running.url, timeout=CLIENT_TIMEOUT) as client:
            body = os.urandom(500_000)
            echoed = client.post("/echo", content=body)
            assert echoed.http_version == "HTTP/2"
            assert echoed.json()["sha256"] == hashlib.sha256(body).hexdigest()
            assert client.get("/stream").text == "one two three"
            static = client.get("/static/big.bin", headers={"Range": "bytes=5-9"})
            assert (static.status_code, static.content) == (206, BIG[5:10])
    finally:
        running.stop()


def test_preload_announced_where_the_server_offers_early_hints(site: SimpleNamespace, tmp_path: Path) -> None:
    # hypercorn offers http.response.early_hint on HTTP/2 (h2c with prior knowledge here), not on HTTP/1.1.
    running = Server("hypercorn", environment(site, "hypercorn", tmp_path / "marker"))
    try:
        def curl(*args: str) -> str:
            result = subprocess.run(["curl", "-sv", *args, f"{running.url}/hello"], capture_output=True, text=True,
                                    timeout=CLIENT_TIMEOUT)
            assert result.returncode == 0, result.stderr
            return result.stderr

        page = curl("--http2-prior-knowledge", "-H", "Accept: text/html")
        assert "< HTTP/2 103" in page
        assert "< link: </static/app.css>; rel=preload; as=style" in page
        assert "< link: </static/font.woff2>; rel=preload; as=font; crossorigin" in page
        assert page.index("< HTTP/2 103") < page.index("< HTTP/2 200")
        assert "103" not in curl("--http2-prior-knowledge", "-H", "Accept: application/json")
        assert "103" not in curl("--http1.1", "-H", "Accept: text/html")
    finally:
        running.stop()


# -- the lifecycle -----------------------------------------------------------------


@pytest.mark.parametrize("kind", list(SERVERS))
def test_startup_before_first_request_and_shutdown_after_stop(site: SimpleNamespace, kind: str,
                                                               tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    running = Server(kind, environment(site, kind, marker))
    try:
        with httpx.Client(base_url=running.url, timeout=CLIENT_TIMEOUT) as client:
            assert client.get("/server").json()["started"] is True
            assert marker.read_text().split()[0] == "startup"
    finally:
        code = running.stop()
    # uvicorn ends by raising the signal again once it has shut down cleanly.
    assert code in (0, -signal.SIGTERM), running.output()
    lines = [line.split() for line in marker.read_text().splitlines()]
    assert [word for word, _ in lines] == ["startup", "shutdown"], running.output()
    assert lines[0][1] == lines[1][1]  # one process ran both


def test_startup_once_in_the_worker_under_gunicorn_preload(site: SimpleNamespace, tmp_path: Path) -> None:
    # --preload builds the adapter in the master; startup must still run in the
    # worker, once, however many threads ask for it at the same time.
    marker = tmp_path / "marker"
    running = Server("gunicorn", environment(site, "gunicorn", marker),
                     extra=["--preload", "--worker-class", "gthread", "--threads", "8"])
    try:
        with httpx.Client(base_url=running.url, timeout=CLIENT_TIMEOUT) as client:
            barrier = threading.Barrier(8)

            def first_request() -> bool:
                barrier.wait()
                return client.get("/server").json()["started"]

            results: list[bool] = []
            threads = [threading.Thread(target=lambda: results.append(first_request())) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(CLIENT_TIMEOUT)
            assert results == [True] * 8
    finally:
        running.stop()
    lines = [line.split() for line in marker.read_text().splitlines()]
    assert [word for word, _ in lines] == ["startup", "shutdown"], running.output()
    assert int(lines[0][1]) != running.proc.pid  # not the master


@pytest.mark.parametrize("kind", list(SERVERS))
def test_failing_startup(site: SimpleNamespace, kind: str, tmp_path: Path) -> None:
    env = environment(site, kind, tmp_path / "marker", PROPYLON_APP_FAIL_STARTUP="true")
    message = "startup raised RuntimeError: database unreachable"
    if kind in ASGI_SERVERS:
        # lifespan.startup.failed: the ASGI server exits instead of serving
        # (uvicorn with status 3, hypercorn with 0).
        args, _ = SERVERS[kind]
        full_env = dict(os.environ, **env, PYTHONPATH=str(REPO))
        result = subprocess.run([sys.executable, *args], cwd=REPO, env=full_env, capture_output=True, text=True,
                                timeout=READY_TIMEOUT)
        assert result.returncode != 0 or kind == "hypercorn", result
        assert message in result.stdout + result.stderr
        return
    running = Server(kind, env)
    try:
        with httpx.Client(base_url=running.url, timeout=CLIENT_TIMEOUT) as client:
            for _ in range(2):
                response = client.get("/hello")
                assert response.status_code == 500
                assert message in response.text
    finally:
        running.stop()
    assert not (tmp_path / "marker").exists()  # neither startup's line nor a shutdown


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_bad_configuration_stops_the_server(site: SimpleNamespace, kind: str, tmp_path: Path) -> None:
    env = environment(site, kind, tmp_path / "marker", PROPYLON_APP_RETRIES="many")
    args, _ = SERVERS[kind]
    full_env = dict(os.environ, **env, PYTHONPATH=str(REPO))
    if kind == "gunicorn":
        args = args + ["--control-socket", str(tmp_path / "ctl")]
    result = subprocess.run([sys.executable, *args], cwd=REPO, env=full_env, capture_output=True, text=True,
                            timeout=READY_TIMEOUT)
    assert result.returncode != 0
    assert "PROPYLON_APP_RETRIES must be a whole number, got 'many'" in result.stdout + result.stderr


def test_propylon_serves_the_objects_wsgi_part(site: SimpleNamespace, tmp_path: Path) -> None:
    # The object itself, no adapter: Propylon serves its WSGI endpoint.
    running = Server("propylon", environment(site, "propylon", tmp_path / "marker"),
                     app="tests.apps.adapters_app:app")
    try:
        with httpx.Client(base_url=running.url, timeout=CLIENT_TIMEOUT) as client:
            assert client.get("/plain").text == "wsgi /plain"
    finally:
        code = running.stop()
    assert code == 0, running.output()


# -- without a server: the rules ---------------------------------------------------

DECLARED = {"greeting": "hello", "retries": 3, "ratio": 0.5, "debug": False, "secret": str}


def read_app_config(declared: dict[str, object], environ: dict[str, str]) -> Mapping[str, object]:
    """The adapter's configuration of an application declaring ``__config__ = declared``."""
    keys = read_application(_Declared(endpoint=print, __config__=declared)).config
    return _server.read_app_config(keys, environ)


@pytest.mark.parametrize(("variable", "text", "value"), [
    ("PROPYLON_APP_DEBUG", "true", True), ("PROPYLON_APP_DEBUG", "1", True), ("PROPYLON_APP_DEBUG", "YES", True),
    ("PROPYLON_APP_DEBUG", "false", False), ("PROPYLON_APP_DEBUG", "0", False), ("PROPYLON_APP_DEBUG", "no", False),
    ("PROPYLON_APP_RETRIES", "12", 12), ("PROPYLON_APP_RATIO", "2", 2.0), ("PROPYLON_APP_RATIO", "1e-3", 0.001),
    ("PROPYLON_APP_GREETING", "  spaced ", "  spaced "),
])
def test_configuration_from_the_environment(variable: str, text: str, value: object) -> None:
    key = variable.removeprefix("PROPYLON_APP_").lower()
    config = read_app_config(DECLARED, {"PROPYLON_APP_SECRET": "s", variable: text})
    assert config[key] == value and type(config[key]) is type(value)


class _Declared:
    def __init__(self, **attributes: object) -> None:
        self.__dict__.update(attributes)

    def __endpoint__(self, protocol: str) -> object:
        return self.__dict__.get("endpoint") if protocol == "wsgi" else None


@pytest.mark.parametrize(("attributes", "environ", "message"), [
    ({"endpoint": "not callable"}, {}, "__endpoint__('wsgi') returned a str, not a callable or None"),
    ({"endpoint": print, "__static__": {"/s": "/nonexistent/dir"}}, {},
     "static mount '/s': directory /nonexistent/dir does not exist"),
    ({"endpoint": print, "__config__": {"retries": 3}}, {"PROPYLON_APP_RETRIES": "many"},
     "PROPYLON_APP_RETRIES must be a whole number, got 'many'"),
    ({"endpoint": print, "__config__": {"retries": 3}}, {"PROPYLON_APP_COLOUR": "red"},
     "PROPYLON_APP_COLOUR: the application has no configuration key 'COLOUR'"),
])  # fmt: skip
def test_the_adapters_read_applications_as_the_server_does(
    attributes: dict[str, object], environ: dict[str, str], message: str
) -> None:
    # The rules are propylon.declarations' and propylon.appconfig's (tested in
    # tests/test_declarations.py and tests/test_application.py): the adapters
    # refuse what the propylon command refuses, with the same line.
    with pytest.raises(ValueError, match=re.escape(message)):
        WSGIAdapter(_Declared(**attributes), environ=environ)
