"""The WSGI environ (PEP 3333 "environ Variables", plus WSGI 1.1's keys) as applications see it."""

from __future__ import annotations

import http.client
import json
import socket
import uuid

import httpx
import pytest

from tests.support import CLIENT_TIMEOUT, RawConnection


def env_over_http11(port: int, path: str = "/env", headers: list[tuple[str, str]] = (), method: str = "GET",
                    body: bytes | None = None) -> dict:
    """GET the environ with http.client; ``headers`` may repeat a name."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        skip_host = any(name.lower() == "host" for name, _ in headers)
        conn.putrequest(method, path, skip_host=skip_host, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        conn.close()


def env_over_http2(url: str, path: str = "/env", headers: list[tuple[str, str]] = ()) -> dict:
    with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as client:
        response = client.get(url + path, headers=list(headers))
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    return response.json()


def test_wsgi_keys(server):
    env = env_over_http11(server.port)
    assert env["wsgi.version"] == [1, 1]
    assert env["wsgi.version_is_tuple"] is True
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.url_scheme"] == "http"
    assert env["file_wrapper_is_propylon"] is True
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/env"


def test_server_protocol_http11(server):
    assert env_over_http11(server.port)["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_server_protocol_http10(server):
    with RawConnection(server.port) as raw:
        raw.send(b"GET /env HTTP/1.0\r\n\r\n")
        response = raw.read_response()
    assert json.loads(response.body)["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_server_protocol_http2(server):
    assert env_over_http2(server.url)["SERVER_PROTOCOL"] == "HTTP/2.0"


@pytest.mark.parametrize("protocol", ["http1", "http2"])
def test_path_info_is_percent_decoded_as_latin1(server, protocol):
    # PEP 3333: environ strings are "bytes in a str", decoded as ISO-8859-1.
    # "%C3%A9" is UTF-8 for "é"; the app gets the two bytes as two code points.
    path = "/env/caf%C3%A9/x%20y"
    env = env_over_http11(server.port, path) if protocol == "http1" else env_over_http2(server.url, path)
    assert env["PATH_INFO"] == "/env/caf\xc3\xa9/x y"
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/env/café/x y"


def test_query_string_is_raw(server):
    env = env_over_http11(server.port, "/env?a=%20b&c=d+e&caf%C3%A9=%2F")
    assert env["QUERY_STRING"] == "a=%20b&c=d+e&caf%C3%A9=%2F"
    assert env["PATH_INFO"] == "/env"


def test_query_string_empty_when_absent(server):
    assert env_over_http11(server.port)["QUERY_STRING"] == ""


def test_repeated_headers_are_joined_with_comma_http11(server):
    env = env_over_http11(server.port, headers=[("X-Multi", "a"), ("X-Multi", "b"), ("X-Multi", "c")])
    assert env["HTTP_X_MULTI"] == "a, b, c"


def test_cookies_are_joined_with_semicolon_http11(server):
    env = env_over_http11(server.port, headers=[("Cookie", "a=1"), ("Cookie", "b=2")])
    assert env["HTTP_COOKIE"] == "a=1; b=2"


def test_repeated_headers_and_cookies_over_http2(server):
    # RFC 9113 §8.2.3: HTTP/2 clients may send each cookie as its own field;
    # they are joined with "; " (other repeated fields with ", ").
    env = env_over_http2(server.url, headers=[
        ("x-multi", "a"), ("x-multi", "b"), ("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3"),
    ])
    assert env["HTTP_X_MULTI"] == "a, b"
    assert env["HTTP_COOKIE"] == "a=1; b=2; c=3"


def test_http2_host_comes_from_authority(server):
    env = env_over_http2(server.url)
    assert env["HTTP_HOST"] == f"127.0.0.1:{server.port}"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)


def test_remote_addr_and_port(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.connect()
        client_port = conn.sock.getsockname()[1]
        conn.request("GET", "/env")
        env = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(client_port)


def test_server_name_and_port_from_host_header(server):
    env = env_over_http11(server.port, headers=[("Host", "example.com:8080")])
    assert (env["SERVER_NAME"], env["SERVER_PORT"], env["HTTP_HOST"]) == ("example.com", "8080", "example.com:8080")


def test_server_port_defaults_to_80_for_host_without_port(server):
    env = env_over_http11(server.port, headers=[("Host", "example.com")])
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "80")


def test_server_name_and_port_without_host_are_the_local_address(server):
    with RawConnection(server.port) as raw:
        raw.send(b"GET /env HTTP/1.0\r\n\r\n")
        env = json.loads(raw.read_response().body)
    assert "HTTP_HOST" not in env
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", str(server.port))


def test_headers_with_underscores_are_dropped(server):
    # "X_Spoof" and "X-Spoof" would both become HTTP_X_SPOOF; only the dash form is trusted.
    env = env_over_http11(server.port, headers=[("X_Spoof", "underscore"), ("X-Spoof", "dash"),
                                                ("Only_Underscore", "x")])
    assert env["HTTP_X_SPOOF"] == "dash"
    assert "HTTP_ONLY_UNDERSCORE" not in env


def test_proxy_header_is_dropped(server):
    # httpoxy (CVE-2016-5385): HTTP_PROXY would be taken for the proxy setting.
    env = env_over_http11(server.port, headers=[("Proxy", "http://evil.example:1")])
    assert "HTTP_PROXY" not in env


def test_content_type_and_length_have_no_http_prefix(server):
    env = env_over_http11(server.port, method="POST", body=b"hello",
                          headers=[("Content-Type", "text/x-test")])
    assert env["CONTENT_TYPE"] == "text/x-test"
    assert env["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in env
    assert "HTTP_CONTENT_LENGTH" not in env


def test_other_headers_become_http_variables(server):
    env = env_over_http11(server.port, headers=[("User-Agent", "e2e/1"), ("X-Custom-Thing", "v a l")])
    assert env["HTTP_USER_AGENT"] == "e2e/1"
    assert env["HTTP_X_CUSTOM_THING"] == "v a l"


def test_wsgi_errors_writes_are_logged_on_propylon_wsgi(server):
    marker = f"errors-marker-{uuid.uuid4().hex}"
    start = server.mark()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", f"/log?msg={marker}")
        assert conn.getresponse().read() == b"logged"
    finally:
        conn.close()
    line = server.wait_for_line(marker, start).string
    assert " propylon.wsgi: " in line, line


def test_root_path_becomes_script_name(start_server):
    srv = start_server("tests.apps.wsgi_app:app", "--root-path", "/app")
    env = env_over_http11(srv.port, "/app/env/x")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/env/x")


def test_ipv6_remote_addr(start_server):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    srv = start_server("tests.apps.wsgi_app:app", binds=["[::1]:0"])
    conn = http.client.HTTPConnection("::1", srv.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", "/env")
        env = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert env["REMOTE_ADDR"] == "::1"


def test_values_follow_each_request_on_one_connection(server):
    # The server reuses the str objects of values a connection repeats (Host,
    # User-Agent, the peer and server address); a value that changes from one
    # request to the next on the same keep-alive connection must show as sent.
    sent = [("a.example", "agent/1", "x"), ("b.example:8080", "agent/2", "x"),
            ("a.example", "agent/1", "caf\u00e9"), ("a.example", "", "")]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
    try:
        seen = []
        for host, agent, language in sent:
            conn.putrequest("GET", "/env", skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host)
            if agent:
                conn.putheader("User-Agent", agent)
            if language:
                conn.putheader("Accept-Language", language.encode("latin-1"))
            conn.endheaders()
            response = conn.getresponse()
            assert response.status == 200
            seen.append(json.loads(response.read()))
        ports = {env["REMOTE_PORT"] for env in seen}
        assert len(ports) == 1, "all four requests came on one connection"
    finally:
        conn.close()
    for env, (host, agent, language) in zip(seen, sent, strict=False):
        assert env["HTTP_HOST"] == host
        assert env["SERVER_NAME"] == host.split(":")[0]
        assert env["SERVER_PORT"] == (host.split(":")[1] if ":" in host else "80")
        assert env.get("HTTP_USER_AGENT") == (agent or None)
        assert env.get("HTTP_ACCEPT_LANGUAGE") == (language or None)
        assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_values_follow_each_stream_on_one_http2_connection(server):
    with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as client:
        envs = [client.get(f"http://127.0.0.1:{server.port}/env", headers={"User-Agent": agent}).json()
                for agent in ("one", "two", "one")]
    assert [env["HTTP_USER_AGENT"] for env in envs] == ["one", "two", "one"]
    assert len({env["REMOTE_PORT"] for env in envs}) == 1
