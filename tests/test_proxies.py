"""Trusted proxies: ``--forwarded-allow-ips``, ``--proxy-headers``, ``--proxy-protocol``.

What the application sees (``REMOTE_ADDR``, ``REMOTE_PORT``, ``wsgi.url_scheme``,
``HTTP_HOST``, ``SERVER_NAME``, ``SERVER_PORT``; a WebSocket's ``client`` and
``scheme``; the access log's client) when a trusted peer sends ``Forwarded`` or
``X-Forwarded-*`` fields, when an untrusted one sends the same, and when a
connection starts with a PROXY protocol header (v1 text, v2 binary).

Clients: http.client (from 127.0.0.1, a trusted proxy by default, or from
127.0.0.2, which is not), httpx over HTTP/2, the ``websockets`` client, raw
sockets for PROXY headers, and a real nginx (Debian's) started here with
docs/guide/deployment-nginx.conf.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.support import (
    CLIENT_TIMEOUT,
    EVENT_TIMEOUT,
    REPO,
    ServerProcess,
    UnixHTTPConnection,
    assert_one_error_line,
    assert_serving,
    run_cli,
)

APP = "tests.apps.wsgi_app:app"
WS_APP = "tests.apps.ws_server_app:app"
#: A loopback address the server does not trust by default (127.0.0.1 and ::1 it does).
STRANGER = "127.0.0.2"

FORWARDED_FIELDS = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "example.com",
    "X-Forwarded-Port": "8443",
}


def environ(port: int, headers: dict[str, str] | None = None, source: str = "127.0.0.1") -> dict[str, Any]:
    """The environ of one GET /env on a fresh connection from ``source``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT, source_address=(source, 0))
    try:
        return get_env(conn, headers)
    finally:
        conn.close()


def get_env(conn: http.client.HTTPConnection, headers: dict[str, str] | None = None) -> dict[str, Any]:
    conn.request("GET", "/env", headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


def seen(env: dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    """REMOTE_ADDR, REMOTE_PORT, wsgi.url_scheme, HTTP_HOST, SERVER_NAME, SERVER_PORT."""
    return (env["REMOTE_ADDR"], env["REMOTE_PORT"], env["wsgi.url_scheme"], env.get("HTTP_HOST", "<absent>"),
            env["SERVER_NAME"], env["SERVER_PORT"])  # fmt: skip


def own(port: int, remote: str = "127.0.0.1") -> tuple[str, str, str, str]:
    """What ``seen`` gives without forwarding (the remote port aside): the socket's facts."""
    return (remote, "http", f"127.0.0.1:{port}", "127.0.0.1")


def without_port(facts: tuple[str, ...]) -> tuple[str, ...]:
    return (facts[0], *facts[2:5])


@pytest.fixture(scope="module")
def server(start_module_server) -> ServerProcess:
    """Default trust (127.0.0.1, ::1), the access log on."""
    return start_module_server(APP, "--access-log")


# ------------------------------------------------------------------ headers from a trusted peer


def test_a_trusted_proxy_s_fields_are_what_the_application_sees(server) -> None:
    env = environ(server.port, FORWARDED_FIELDS)
    assert seen(env) == ("203.0.113.7", "0", "https", "example.com:8443", "example.com", "8443")
    # The fields themselves stay, as always.
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"
    assert env["HTTP_X_FORWARDED_PROTO"] == "https"
    # The default port of the scheme is not written into HTTP_HOST.
    env = environ(server.port, {**FORWARDED_FIELDS, "X-Forwarded-Port": "443"})
    assert seen(env)[3:] == ("example.com", "example.com", "443")
    # The scheme alone: the request's own host, the scheme's default port.
    env = environ(server.port, {"X-Forwarded-Proto": "https", "Host": "example.org"})
    assert seen(env)[2:] == ("https", "example.org", "example.org", "443")


def test_the_access_log_shows_the_forwarded_client(server) -> None:
    mark = server.mark()
    environ(server.port, {"X-Forwarded-For": "198.51.100.23", "User-Agent": "forwarded-log-test"})
    line = server.wait_for_line(r"forwarded-log-test", start=mark)
    assert "198.51.100.23 - - [" in line.string, line.string


def test_an_untrusted_peer_s_fields_change_nothing(start_server) -> None:
    srv = start_server(APP, "--forwarded-allow-ips", "10.0.0.1")
    env = environ(srv.port, FORWARDED_FIELDS)
    assert without_port(seen(env)) == own(srv.port)
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"
    # An empty list trusts nobody either.
    srv = start_server(APP, "--forwarded-allow-ips", "")
    assert without_port(seen(environ(srv.port, FORWARDED_FIELDS))) == own(srv.port)


def test_a_peer_outside_the_list_changes_nothing(server) -> None:
    # 127.0.0.2 is loopback, but not in the default list.
    env = environ(server.port, FORWARDED_FIELDS, source=STRANGER)
    assert without_port(seen(env)) == own(server.port, STRANGER)


def test_no_proxy_headers_switches_them_off(start_server) -> None:
    srv = start_server(APP, "--no-proxy-headers")
    assert without_port(seen(environ(srv.port, FORWARDED_FIELDS))) == own(srv.port)


def test_every_peer_trusted_with_a_star(start_server) -> None:
    srv = start_server(APP, "--forwarded-allow-ips", "*")
    env = environ(srv.port, {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}, source=STRANGER)
    # Everyone trusted: the leftmost entry.
    assert env["REMOTE_ADDR"] == "6.6.6.6"


def test_x_forwarded_for_wins_over_forwarded(server) -> None:
    # A client's own Forwarded, passed on by a proxy that sets X-Forwarded-*, is not read.
    env = environ(server.port, {**FORWARDED_FIELDS, "Forwarded": "for=6.6.6.6;proto=http;host=evil.example"})
    assert seen(env) == ("203.0.113.7", "0", "https", "example.com:8443", "example.com", "8443")


def test_forwarded_is_read_without_x_forwarded_for(server) -> None:
    env = environ(server.port, {
        "X-Forwarded-Port": "8443",
        "Forwarded": 'for="[2001:db8::1]:4711";proto=https;host=forwarded.example',
    })  # fmt: skip
    # The other X-Forwarded-* fields are not read once Forwarded is.
    assert seen(env) == ("2001:db8::1", "4711", "https", "forwarded.example", "forwarded.example", "443")
    env = environ(server.port, {"Forwarded": "for=_hidden;proto=http", "Host": "h"})
    assert seen(env)[0] == "127.0.0.1"  # an obfuscated client: the peer stays
    assert seen(env)[2] == "http"


@pytest.mark.parametrize(
    ("chain", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        # Entries left of the first untrusted one from the right are the client's own.
        ("6.6.6.6, 203.0.113.7", "203.0.113.7"),
        ("6.6.6.6, 203.0.113.7, 127.0.0.1, ::1", "203.0.113.7"),
        # Every entry trusted: the leftmost.
        ("127.0.0.1, ::1", "127.0.0.1"),
        ("[2001:db8::1]:4711, 127.0.0.1", "2001:db8::1"),
        # Not an address: the peer stays.
        ("203.0.113.7, unknown", "127.0.0.1"),
        ("203.0.113.7, garbage", "127.0.0.1"),
    ],
)
def test_chains_are_read_from_the_right(server, chain: str, client: str) -> None:
    assert environ(server.port, {"X-Forwarded-For": chain})["REMOTE_ADDR"] == client


@pytest.mark.parametrize(
    "fields",
    [
        {"X-Forwarded-Proto": "gopher"},
        {"X-Forwarded-Proto": "https, ftp"},
        {"X-Forwarded-Host": "user@evil.example"},
        {"X-Forwarded-Host": "evil.example:http"},
        {"X-Forwarded-Port": "99999"},
        {"X-Forwarded-Port": "-1"},
        {"X-Forwarded-For": "1.2.3.4.5"},
        {"X-Forwarded-For": "x" * 4000},
        {"Forwarded": 'for="203.0.113.7'},
        {"Forwarded": "for=203.0.113.7;for=6.6.6.6;proto=https"},
        {"Forwarded": "for=[2001:db8::1]:80;proto=https", "X-Forwarded-Proto": "https"},
    ],
)
def test_bad_values_change_nothing(server, fields: dict[str, str]) -> None:
    env = environ(server.port, fields)
    assert without_port(seen(env)) == own(server.port)


def test_an_overlong_chain_is_read_from_the_right(server) -> None:
    chain = ", ".join(["6.6.6.6"] * 2000 + ["203.0.113.7"])
    assert environ(server.port, {"X-Forwarded-For": chain})["REMOTE_ADDR"] == "203.0.113.7"


def test_each_request_of_a_keep_alive_connection_shows_its_own_fields(server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        plain = without_port(seen(get_env(conn)))
        assert plain == own(server.port)
        first = seen(get_env(conn, FORWARDED_FIELDS))
        assert first == ("203.0.113.7", "0", "https", "example.com:8443", "example.com", "8443")
        assert without_port(seen(get_env(conn))) == plain
        other = {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "http"}
        assert seen(get_env(conn, other))[:3] == ("198.51.100.1", "0", "http")
        assert seen(get_env(conn, FORWARDED_FIELDS)) == first
        assert without_port(seen(get_env(conn))) == plain
    finally:
        conn.close()


def test_unix_socket_peers_are_trusted(start_server, tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    start_server(APP, "--forwarded-allow-ips", "10.0.0.1", binds=[f"unix:{path}"])
    conn = UnixHTTPConnection(str(path))
    try:
        env = get_env(conn)
        assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("", "")
        env = get_env(conn, FORWARDED_FIELDS)
        assert seen(env) == ("203.0.113.7", "0", "https", "example.com:8443", "example.com", "8443")
        # The next request on the connection has no client address again.
        env = get_env(conn)
        assert (env["REMOTE_ADDR"], env["REMOTE_PORT"], env["wsgi.url_scheme"]) == ("", "", "http")
    finally:
        conn.close()
    # An empty list trusts nobody, Unix-socket peers included.
    path = tmp_path / "none.sock"
    start_server(APP, "--forwarded-allow-ips", "", binds=[f"unix:{path}"])
    conn = UnixHTTPConnection(str(path))
    try:
        env = get_env(conn, FORWARDED_FIELDS)
        assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("", "http")
    finally:
        conn.close()


def test_http2_requests_show_the_forwarded_client(server) -> None:
    with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as client:
        url = f"http://127.0.0.1:{server.port}/env"
        env = client.get(url, headers=FORWARDED_FIELDS).json()
        assert env["SERVER_PROTOCOL"] == "HTTP/2.0"
        assert seen(env) == ("203.0.113.7", "0", "https", "example.com:8443", "example.com", "8443")
        # Another stream of the same connection, without the fields.
        env = client.get(url).json()
        assert without_port(seen(env)) == own(server.port)


def test_websocket_client_and_scheme(start_server) -> None:
    srv = start_server(WS_APP, "--forwarded-allow-ips", "127.0.0.1")
    fields = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    with connect(f"ws://127.0.0.1:{srv.port}/info/async", additional_headers=fields,
                 open_timeout=CLIENT_TIMEOUT) as ws:  # fmt: skip
        info = json.loads(ws.recv(timeout=CLIENT_TIMEOUT))
    assert (info["client"], info["scheme"]) == (["203.0.113.7", 0], "wss")
    # From a peer that is not trusted, the socket's facts.
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=CLIENT_TIMEOUT, source_address=(STRANGER, 0))
    local = list(sock.getsockname())
    with connect(f"ws://127.0.0.1:{srv.port}/info/async", sock=sock, additional_headers=fields,
                 open_timeout=CLIENT_TIMEOUT) as ws:  # fmt: skip
        info = json.loads(ws.recv(timeout=CLIENT_TIMEOUT))
    assert (info["client"], info["scheme"]) == (local, "ws")


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("10.0.0.300", "'10.0.0.300' is not an IP address or network"),
        ("10.0.0.1/8", "'10.0.0.1/8' has host bits set"),
        ("127.0.0.1;::1", "is not an IP address or network"),
        ("localhost", "'localhost' is not an IP address or network"),
        ("10.0.0.0/255.0.0.0", "is not an IP address or network"),
        ("fe80::1%eth0", "is not an IP address or network"),
    ],
)
def test_a_bad_list_is_one_line_and_exit_2(value: str, says: str) -> None:
    line = assert_one_error_line(run_cli(APP, "--forwarded-allow-ips", value), 2)
    assert "--forwarded-allow-ips" in line and says in line, line


# ------------------------------------------------------------------ PROXY protocol


def v2_header(command: int, family: int, block: bytes) -> bytes:
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20 | command, family]) + struct.pack("!H", len(block)) + block


V2_INET = v2_header(0x1, 0x11, socket.inet_aton("203.0.113.9") + socket.inet_aton("192.0.2.1")
                    + struct.pack("!HH", 4711, 443) + b"\x01\x00\x02h2")  # fmt: skip
V2_INET6 = v2_header(0x1, 0x21, socket.inet_pton(socket.AF_INET6, "2001:db8::9")
                     + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("!HH", 4712, 443))  # fmt: skip
V2_LOCAL = v2_header(0x0, 0x00, b"")


def raw_env(port: int, header: bytes, source: str = "127.0.0.1", extra: dict[str, str] | None = None) -> dict[str, Any]:
    """A PROXY header, then GET /env on the same connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT, source_address=(source, 0)) as sock:
        fields = "".join(f"{k}: {v}\r\n" for k, v in (extra or {}).items())
        sock.sendall(header + f"GET /env HTTP/1.1\r\nHost: app\r\n{fields}Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    result: dict[str, Any] = json.loads(body)
    return result


def closed_without_answer(port: int, data: bytes, source: str = "127.0.0.1") -> None:
    """``data`` on a fresh connection is answered by a close and no byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT, source_address=(source, 0)) as sock:
        sock.sendall(data)
        try:
            assert sock.recv(65536) == b""
        except ConnectionResetError:
            pass


@pytest.fixture(scope="module")
def proxied(start_module_server) -> ServerProcess:
    return start_module_server(APP, "--proxy-protocol", "--header-timeout", "2")


@pytest.mark.parametrize(
    ("header", "remote"),
    [
        (b"PROXY TCP4 203.0.113.9 192.0.2.1 4711 443\r\n", ("203.0.113.9", "4711")),
        (b"PROXY TCP6 2001:db8::9 2001:db8::1 4712 443\r\n", ("2001:db8::9", "4712")),
        (V2_INET, ("203.0.113.9", "4711")),
        (V2_INET6, ("2001:db8::9", "4712")),
        # The proxy's own connection, or no address: the socket's peer.
        (V2_LOCAL, ("127.0.0.1", None)),
        (b"PROXY UNKNOWN\r\n", ("127.0.0.1", None)),
    ],
)
def test_proxy_protocol_source_is_the_client(proxied, header: bytes, remote: tuple[str, str | None]) -> None:
    env = raw_env(proxied.port, header)
    assert env["REMOTE_ADDR"] == remote[0]
    if remote[1] is not None:
        assert env["REMOTE_PORT"] == remote[1]
    assert env["wsgi.url_scheme"] == "http"


def test_proxy_protocol_client_is_not_a_trusted_proxy(proxied) -> None:
    # The header's source is the peer from then on: 203.0.113.9 is not trusted.
    env = raw_env(proxied.port, V2_INET, extra={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"})
    assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("203.0.113.9", "http")
    # A trusted one (a proxy behind the load balancer) is.
    header = b"PROXY TCP4 127.0.0.1 127.0.0.1 4711 80\r\n"
    env = raw_env(proxied.port, header, extra={"X-Forwarded-For": "198.51.100.5", "X-Forwarded-Proto": "https"})
    assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == ("198.51.100.5", "https")


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PROXY TCP4 203.0.113.9 192.0.2.1 4711\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"PROXY TCP4 203.0.113.900 192.0.2.1 4711 443\r\n",
        b"PROXY " + b"x" * 200 + b"\r\n",
        b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x00",
        v2_header(0x1, 0x11, b"\x00" * 5),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ],
)
def test_bad_proxy_headers_close_the_connection(proxied, data: bytes) -> None:
    closed_without_answer(proxied.port, data)
    env = raw_env(proxied.port, b"PROXY TCP4 203.0.113.9 192.0.2.1 4711 443\r\n")
    assert env["REMOTE_ADDR"] == "203.0.113.9"


def test_an_unfinished_proxy_header_is_closed_after_the_header_timeout(proxied) -> None:
    started = time.monotonic()
    closed_without_answer(proxied.port, b"PROXY TCP4 203.0.113.9 ")
    assert time.monotonic() - started < EVENT_TIMEOUT


def test_a_proxy_header_from_an_untrusted_peer_closes_the_connection(proxied) -> None:
    mark = proxied.mark()
    closed_without_answer(proxied.port, b"PROXY TCP4 203.0.113.9 192.0.2.1 4711 443\r\nGET / HTTP/1.1\r\n\r\n",
                          source=STRANGER)  # fmt: skip
    proxied.wait_for_line(r"WARNING.*127\.0\.0\.2.*not in --forwarded-allow-ips", start=mark)
    closed_without_answer(proxied.port, b"PROXY UNKNOWN\r\n", source=STRANGER)
    # The warning is given once.
    warned = [line for line in proxied.lines_since(mark) if "not in --forwarded-allow-ips" in line]
    assert len(warned) == 1, warned


def test_a_stopping_server_does_not_wait_for_an_unfinished_proxy_header(start_server) -> None:
    srv = start_server(APP, "--proxy-protocol", "--header-timeout", "60")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(b"PROXY TCP4 ")
        # Served meanwhile: the server is up and the unfinished header is being read.
        assert raw_env(srv.port, b"PROXY UNKNOWN\r\n")["REMOTE_ADDR"] == "127.0.0.1"
        started = time.monotonic()
        assert srv.stop() == 0
        # The connection did not hold the stop until the 30 s graceful timeout.
        assert time.monotonic() - started < 20
        assert "graceful timeout expired" not in srv.stderr_text()


def test_proxy_protocol_before_tls(start_server, pki) -> None:
    srv = start_server(APP, *pki.ecdsa.args(), "--proxy-protocol")
    context = pki.ecdsa.client_context()
    with socket.create_connection(("127.0.0.1", srv.tls_port), timeout=CLIENT_TIMEOUT) as raw:
        raw.sendall(b"PROXY TCP4 203.0.113.9 192.0.2.1 4711 443\r\n")
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(b"GET /env HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    env = json.loads(data.partition(b"\r\n\r\n")[2])
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"], env["wsgi.url_scheme"]) == ("203.0.113.9", "4711", "https")


# ------------------------------------------------------------------ behind a real nginx

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
NGINX_CONF = REPO / "docs" / "guide" / "deployment-nginx.conf"


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_answering(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Connect until the port accepts (nginx has no readiness line)."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    while True:
        assert process.poll() is None, log.read_text() if log.exists() else "nginx exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "nginx did not start listening"
            time.sleep(0.05)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[Any]:
    """Start nginx in front of a Propylon port: ``start(upstream_port, tls_files=None) -> port``."""
    if NGINX is None:
        pytest.skip("nginx is not installed (.ci/run installs it)")
    processes: list[subprocess.Popen[bytes]] = []

    def start(upstream: int, tls: Any = None) -> int:
        port = free_port()
        site = NGINX_CONF.read_text()
        site = site.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};")
        if tls is None:
            site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
        else:
            site = site.replace("listen 80;\n", "")
            site = site.replace("# listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
            site = site.replace("# ssl_certificate /etc/ssl/example.com/fullchain.pem;",
                                f"ssl_certificate {tls.certfile};")  # fmt: skip
            site = site.replace("# ssl_certificate_key /etc/ssl/example.com/privkey.pem;",
                                f"ssl_certificate_key {tls.keyfile};")  # fmt: skip
        prefix = tmp_path / f"nginx-{port}"
        prefix.mkdir()
        (prefix / "site.conf").write_text(site)
        log = prefix / "error.log"
        temp = "\n".join(f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                                 "uwsgi", "scgi"))  # fmt: skip
        (prefix / "nginx.conf").write_text(
            f"daemon off;\nmaster_process off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {log} info;\nevents {{ worker_connections 64; }}\n"
            f"http {{\n    access_log off;\n{temp}\n    include {prefix / 'site.conf'};\n}}\n"
        )
        process = subprocess.Popen([NGINX, "-p", str(prefix), "-e", str(log), "-c", str(prefix / "nginx.conf")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        processes.append(process)
        wait_until_answering(port, process, log)
        return port

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=EVENT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_behind_nginx_the_application_sees_the_client(server, nginx) -> None:
    port = nginx(server.port)
    # Several requests on one client connection, and over nginx's kept-alive upstream.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT, source_address=(STRANGER, 0))
    try:
        for _ in range(3):
            env = get_env(conn)
            assert seen(env)[0] == STRANGER
            assert seen(env)[2:] == ("http", f"127.0.0.1:{port}", "127.0.0.1", str(port))
            # The client's own fields: nginx appends to X-Forwarded-For and replaces the
            # rest; the right-most untrusted entry is the client, and Forwarded is not read.
            env = get_env(conn, {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https",
                                 "X-Forwarded-Host": "evil.example", "Forwarded": "for=6.6.6.6;proto=https"})
            assert env["HTTP_X_FORWARDED_FOR"] == f"6.6.6.6, {STRANGER}"
            assert env["HTTP_FORWARDED"] == "for=6.6.6.6;proto=https"  # passed on, not read
            assert seen(env)[0] == STRANGER
            assert seen(env)[2:] == ("http", f"127.0.0.1:{port}", "127.0.0.1", str(port))
    finally:
        conn.close()
    # The same fields sent straight to Propylon by that client change nothing.
    env = environ(server.port, {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https",
                                "X-Forwarded-Host": "evil.example"}, source=STRANGER)  # fmt: skip
    assert without_port(seen(env)) == own(server.port, STRANGER)


def test_behind_nginx_with_tls_the_application_sees_https(server, nginx, pki) -> None:
    port = nginx(server.port, tls=pki.ecdsa)
    context = pki.ecdsa.client_context()
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT, context=context,
                                       source_address=(STRANGER, 0))  # fmt: skip
    try:
        env = get_env(conn)
        assert seen(env)[0] == STRANGER
        assert seen(env)[2:] == ("https", f"127.0.0.1:{port}", "127.0.0.1", str(port))
        # Propylon's own connection is cleartext: no TLS variables.
        assert "HTTPS" not in env
    finally:
        conn.close()


def test_behind_nginx_an_untrusted_upstream_peer_changes_nothing(start_server, nginx) -> None:
    # nginx is not in the list: its fields are not believed.
    srv = start_server(APP, "--forwarded-allow-ips", "10.0.0.1")
    port = nginx(srv.port)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT, source_address=(STRANGER, 0))
    try:
        env = get_env(conn)
    finally:
        conn.close()
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_X_FORWARDED_FOR"] == STRANGER
    # nginx's upstream Host is its upstream's name.
    assert seen(env)[2:4] == ("http", "propylon")
    assert_serving(srv.port)


def test_the_list_in_a_config_file_and_in_config() -> None:
    from propylon.config import Config, ConfigError, Networks

    assert Networks().from_toml("propylon.toml:1: forwarded-allow-ips", ["10.0.0.0/8", "::1"]) == "10.0.0.0/8,::1"
    assert Config(forwarded_allow_ips=" 10.0.0.0/8 , * ").forwarded_allow_ips == " 10.0.0.0/8 , * "
    with pytest.raises(ConfigError, match=r"forwarded_allow_ips: '10\.0\.0\.300' is not an IP address"):
        Config(forwarded_allow_ips="10.0.0.300")
