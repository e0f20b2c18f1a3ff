"""The ``propylon`` command and the server process: options, binds, start-up errors,
graceful shutdown, access log, ``--factory``; and the showcase example.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest

import propylon
from tests.support import (
    CLIENT_TIMEOUT,
    REPO,
    UnixHTTPConnection,
    assert_one_error_line,
    http_request,
    run_cli,
)

# ------------------------------------------------------------------ the command


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert propylon.__version__ in result.stdout
    assert result.stdout.strip() == f"propylon {propylon.__version__}"


def test_help_lists_the_options():
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--bind", "--threads", "--queue-size", "--factory", "--max-body-size", "--decompress",
                   "--buffer-body", "--max-header-size", "--max-headers", "--access-log", "--root-path"):
        assert option in result.stdout, option


def test_console_script_matches_python_m():
    script = Path(sys.executable).with_name("propylon")
    if not script.exists():
        script = shutil.which("propylon")
        if script is None:
            pytest.skip("the propylon console script is not installed")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout == run_cli("--version").stdout


def test_python_m_propylon_serves(start_server):
    # Every server in this suite runs as ``python -m propylon``; this one also
    # checks the default attribute lookup (``application`` before ``app``).
    srv = start_server("tests.apps.factory_app")
    assert http_request(srv.port, "GET", "/")[2] == b"from application"


def test_factory(start_server):
    srv = start_server("tests.apps.factory_app:create_app", "--factory")
    assert http_request(srv.port, "GET", "/")[2] == b"from factory"


@pytest.mark.parametrize("args, code", [
    (["tests.apps.no_such_module:app"], 1),
    (["tests.apps.wsgi_app:no_such_attr"], 1),
    (["tests.apps.wsgi_app:TEXT"], 1),  # a list, not callable
    (["tests.apps.wsgi_app:app", "--bind", "nonsense:port"], 2),
    (["tests.apps.wsgi_app:app", "--threads", "many"], 2),
    (["tests.apps.wsgi_app:app", "--no-such-option"], 2),
])
def test_user_errors_are_one_line(args, code):
    assert_one_error_line(run_cli(*args), code)


def test_address_in_use_is_one_line_and_exit_1():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli("tests.apps.wsgi_app:app", "--bind", f"127.0.0.1:{port}")
    line = assert_one_error_line(result, 1)
    assert str(port) in line, line


# ------------------------------------------------------------------ binds


def test_unix_socket_bind(start_server, tmp_path):
    path = tmp_path / "propylon.sock"
    srv = start_server("tests.apps.wsgi_app:app", binds=[f"unix:{path}"])
    assert srv.listeners == [f"unix:{path}"]
    conn = UnixHTTPConnection(str(path))
    try:
        conn.request("GET", "/env")
        response = conn.getresponse()
        env = json.loads(response.read())
        conn.request("GET", "/")  # keep-alive over the unix socket too
        assert conn.getresponse().read() == b"hello"
    finally:
        conn.close()
    assert response.status == 200
    assert env["REMOTE_ADDR"] == ""
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_unix_socket_http2_with_curl(start_server, tmp_path):
    path = tmp_path / "propylon.sock"
    start_server("tests.apps.wsgi_app:app", binds=[f"unix:{path}"])
    result = subprocess.run(["curl", "-sS", "--max-time", "20", "--http2-prior-knowledge", "--unix-socket",
                             str(path), "http://localhost/env"], capture_output=True, timeout=30, check=True)
    assert json.loads(result.stdout)["SERVER_PROTOCOL"] == "HTTP/2.0"


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback")
def test_ipv6_bind(start_server):
    srv = start_server("tests.apps.wsgi_app:app", binds=["[::1]:0"])
    assert re.fullmatch(r"http://\[::1\]:\d+", srv.listeners[0]), srv.listeners
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        response = client.get(f"{srv.listeners[0]}/env")
    assert response.status_code == 200
    assert response.json()["REMOTE_ADDR"] == "::1"


def test_two_binds_on_one_server(start_server, tmp_path):
    path = tmp_path / "second.sock"
    srv = start_server("tests.apps.wsgi_app:app", binds=["127.0.0.1:0", "127.0.0.1:0", f"unix:{path}"])
    tcp = [address for address in srv.listeners if address.startswith("http://")]
    assert len(tcp) == 2 and tcp[0] != tcp[1], srv.listeners
    for address in tcp:
        assert httpx.get(f"{address}/", timeout=CLIENT_TIMEOUT).content == b"hello"
    conn = UnixHTTPConnection(str(path))
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello"
    finally:
        conn.close()


def _congestion_controls() -> tuple[str, list[str]]:
    """The system's default TCP congestion control and the ones a process may choose."""
    try:
        default = Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip()
        allowed = Path("/proc/sys/net/ipv4/tcp_allowed_congestion_control").read_text().split()
    except OSError:
        return "", []
    return default, allowed


def _server_side_congestion(port: int) -> list[str]:
    """The congestion control of each established server-side socket on ``port``, as ss(8) shows it."""
    result = subprocess.run(["ss", "-tinH", "state", "established", f"( sport = :{port} )"],
                            capture_output=True, text=True, timeout=10, check=True)
    names = set(_congestion_controls()[1]) | {"bbr", "cubic", "reno"}
    # ss prints each socket's line, then its details: the algorithm's name is one word of them.
    return [word for word in result.stdout.split() if word in names]


@pytest.mark.skipif(shutil.which("ss") is None or not sys.platform.startswith("linux"),
                    reason="needs Linux and ss(8)")
def test_tcp_congestion_is_inherited_by_accepted_connections(start_server, tmp_path):
    default, allowed = _congestion_controls()
    other = next((name for name in ("cubic", "reno", *allowed) if name in allowed and name != default), None)
    if other is None:
        pytest.skip(f"only {default!r} may be chosen here")
    # A Unix listener beside the TCP one: the setting does not apply to it and does not fail it.
    chosen = start_server("tests.apps.wsgi_app:app", "--tcp-congestion", other,
                          binds=["127.0.0.1:0", f"unix:{tmp_path / 's.sock'}"])
    plain = start_server("tests.apps.wsgi_app:app")
    for srv, expected in ((chosen, other), (plain, default)):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=CLIENT_TIMEOUT)
        try:
            # One request answered: the connection is established on both sides, and stays open.
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"hello"
            assert _server_side_congestion(srv.port) == [expected]
        finally:
            conn.close()
    conn = UnixHTTPConnection(str(tmp_path / "s.sock"))
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"hello"
    finally:
        conn.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's TCP_CONGESTION")
def test_unknown_tcp_congestion_is_one_line_and_exit_1():
    line = assert_one_error_line(run_cli("tests.apps.wsgi_app:app", "--bind", "127.0.0.1:0",
                                         "--tcp-congestion", "nosuchcc"), 1)
    assert "nosuchcc" in line and "127.0.0.1:0" in line, line
    if _congestion_controls()[1]:
        assert "this machine allows:" in line, line


# ------------------------------------------------------------------ shutdown and logging


def test_sigterm_lets_in_flight_request_finish_then_exits_0(start_server, tmp_path):
    srv = start_server("tests.apps.wsgi_app:app")
    release = tmp_path / "release"
    token = uuid.uuid4().hex
    outcome: dict[str, object] = {}

    def slow_request() -> None:
        try:
            outcome["response"] = http_request(srv.port, "GET", f"/block?release={release}&token={token}")
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=slow_request, daemon=True)
    thread.start()
    try:
        srv.wait_for_line(f"BLOCK-STARTED {token}")
        start = srv.mark()
        srv.terminate()
        srv.wait_for_line("Shutting down", start)
    finally:
        release.touch()
    thread.join(CLIENT_TIMEOUT)
    assert "error" not in outcome, outcome
    status, _, body = outcome["response"]
    assert (status, body) == (200, b"released")
    assert srv.wait() == 0
    srv.wait_for_line("Stopped", start)


def test_access_log_line_per_request(start_server):
    srv = start_server("tests.apps.wsgi_app:app", "--access-log")
    start = srv.mark()
    http_request(srv.port, "GET", "/env?q=1", headers={"User-Agent": "e2e-agent/1.0"})
    http_request(srv.port, "POST", "/echo", body=b"12345", headers={"User-Agent": "e2e-agent/2.0"})
    first = srv.wait_for_line(r"propylon\.access: .*e2e-agent/1\.0", start).string
    second = srv.wait_for_line(r"propylon\.access: .*e2e-agent/2\.0", start).string
    assert re.search(r'\[INFO\] propylon\.access: 127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                     r'"GET /env\?q=1 HTTP/1\.1" 200 \d+ "-" "e2e-agent/1\.0" \d+\.\d+$', first), first
    assert '"POST /echo HTTP/1.1" 200 5 ' in second, second


def test_access_log_escapes_quotes_and_bytes_and_keeps_absolute_targets(start_server):
    srv = start_server("tests.apps.wsgi_app:app", "--access-log")
    start = srv.mark()
    token = uuid.uuid4().hex
    # A forged field attempt in User-Agent, a backslash, a tab and obs-text
    # (RFC 9110 allows bytes 0x80-0xFF in field values); the target in
    # absolute form.
    request = (f"GET http://example.com/?t={token} HTTP/1.1\r\nHost: example.com\r\n"
               f"User-Agent: x\" 200 0 \"-\" \"forged\\\t\xe9\r\nConnection: close\r\n\r\n").encode("latin-1")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=CLIENT_TIMEOUT) as conn:
        conn.sendall(request)
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1.1 200 "), response
    line = srv.wait_for_line(rf"propylon\.access: .*{token}", start).string
    assert f'"GET http://example.com/?t={token} HTTP/1.1" 200 5 "-" ' in line, line
    assert line.endswith(r'"x\" 200 0 \"-\" \"forged\\\x09\xe9" ' + line.rsplit(" ", 1)[1]), line


def test_no_access_log_by_default(server):
    token = uuid.uuid4().hex
    http_request(server.port, "GET", f"/?{token}")
    server.sync_log(f"sync-{token}")
    assert not [line for line in server.stderr_lines() if "propylon.access" in line]


# ------------------------------------------------------------------ examples/showcase.py


def test_showcase_example(start_server):
    srv = start_server("examples.showcase:app")
    with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
        index = client.get(f"{srv.url}/")
        assert index.status_code == 200
        for link in ("/echo", "/stream", "/file", "/env"):
            assert link in index.text
        assert client.post(f"{srv.url}/echo", content=b"ping").content == b"ping"
        stream = client.get(f"{srv.url}/stream")
        assert stream.status_code == 200 and stream.content
        assert client.get(f"{srv.url}/file").content == (REPO / "examples" / "showcase.py").read_bytes()
        assert client.get(f"{srv.url}/env").json()["wsgi.version"] == [1, 1]
    with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as client:
        assert client.get(f"{srv.url}/env").json()["SERVER_PROTOCOL"] == "HTTP/2.0"


def test_showcase_precompressed_assets_match_their_files():
    # Each .br/.zst/.gz sibling decodes to its file: an edited asset whose
    # siblings were not rewritten (python scripts/precompress.py examples/static)
    # would be served stale to every client that accepts the coding.
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "precompress.py"), "--check", str(REPO / "examples" / "static")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
