"""TLS (issue 4, point 1): rustls with ALPN, client certificates, key types and
formats, start-up errors, SIGHUP reload; and the real-client matrix.

One server for most of this module (``tls_server``): ``--bind`` is TLS (ALPN
``h2`` and ``http/1.1``) and ``--insecure-bind`` adds a cleartext listener beside
it, as Hypercorn does; TLS is not detected on a cleartext port. Every real
client -- curl (h2 by ALPN, http/1.1 over TLS, ``--http2`` upgrade,
``--http2-prior-knowledge``, ``--http1.1``), httpx, Python's ``ssl`` with and
without a client certificate, nghttp -- talks to that one process: one port
for TLS, one for cleartext.

Certificates come from the session's ``pki`` fixture (made at test time by
trustme and cryptography, see tests/pki.py).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.pki import KEY_PASSWORD, ServerFiles, rewrite_key, serial_of_der
from tests.support import (
    CLIENT_TIMEOUT,
    RawConnection,
    assert_one_error_line,
    http_request,
    run_cli,
)

APP = "tests.apps.wsgi_app:app"

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
needs_nghttp = pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp (nghttp2-client) is not installed")


@pytest.fixture(scope="module")
def tls_server(start_module_server, pki):
    """TLS on --bind, cleartext on --insecure-bind; client certificates optional."""
    return start_module_server(
        APP, *pki.ecdsa.args(), "--insecure-bind", "127.0.0.1:0",
        "--ca-certs", str(pki.ca_path), "--client-cert", "optional",
        "--keep-alive-timeout", "30",
    )


class HTTPSResult:
    """What one request over Python's ``ssl`` saw: the response and the TLS session."""

    def __init__(self, conn: http.client.HTTPSConnection, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.body = response.read()
        sock = conn.sock
        self.version = sock.version()
        self.cipher = sock.cipher()[0]
        self.alpn = sock.selected_alpn_protocol()
        self.peer_der = sock.getpeercert(binary_form=True)

    def json(self) -> dict:
        return json.loads(self.body)


def https_get(port: int, path: str, context: ssl.SSLContext, host: str = "127.0.0.1") -> HTTPSResult:
    conn = http.client.HTTPSConnection(host, port, timeout=CLIENT_TIMEOUT, context=context)
    try:
        conn.request("GET", path)
        return HTTPSResult(conn, conn.getresponse())
    finally:
        conn.close()


def client_context(files: ServerFiles, client_pem: Path | None = None, alpn=None,
                   version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = files.client_context(alpn)
    if client_pem is not None:
        context.load_cert_chain(str(client_pem))
    if version is not None:
        context.minimum_version = context.maximum_version = version
    return context


def curl(*args: str) -> tuple[str, bytes]:
    """Run curl; (the ``%{http_version}`` it reports, the body)."""
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "20", "-w", "\n%{http_version}", *args],
        capture_output=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr.decode()
    body, _, version = result.stdout.rpartition(b"\n")
    return version.decode(), body


# ------------------------------------------------------------------ listeners


def test_one_tls_listener_and_one_cleartext_listener(tls_server):
    assert tls_server.listeners[0].startswith("https://127.0.0.1:"), tls_server.listeners
    assert tls_server.listeners[1].startswith("http://127.0.0.1:"), tls_server.listeners
    assert tls_server.tls_port != tls_server.port
    lines = tls_server.stderr_text()
    assert f"Listening on {tls_server.tls_url}" in lines
    assert f"Listening on {tls_server.url}" in lines


def test_cleartext_on_the_tls_port_is_refused_and_the_server_keeps_serving(tls_server, pki):
    start = tls_server.mark()
    with RawConnection(tls_server.tls_port) as raw:
        raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        rest = raw.read_until_close()
    # rustls answers a non-TLS record with a TLS alert (or nothing), never HTTP.
    assert not rest.startswith(b"HTTP/"), rest[:100]
    tls_server.wait_for_line(r"TLS handshake with 127\.0\.0\.1:\d+ failed", start)
    assert https_get(tls_server.tls_port, "/", client_context(pki.ecdsa)).body == b"hello"


def test_a_client_that_never_finishes_the_handshake_is_closed(start_server, pki):
    # The handshake counts against --header-timeout (slowloris over TLS).
    srv = start_server(APP, *pki.ecdsa.args("--header-timeout", "1"))
    start = srv.mark()
    with RawConnection(srv.tls_port) as raw:
        raw.send(b"\x16\x03\x01")  # the start of a TLS record, and nothing more
        assert raw.read_until_close() == b""
    srv.wait_for_line(r"TLS handshake with 127\.0\.0\.1:\d+ timed out", start)


def test_alpn_without_a_common_protocol_is_refused(tls_server, pki):
    # RFC 7301 §3.2 lets the server refuse with no_application_protocol; rustls does.
    with pytest.raises(ssl.SSLError, match="no application protocol"):
        https_get(tls_server.tls_port, "/", client_context(pki.ecdsa, alpn=("spdy/3.1",)))


def test_tls_on_the_cleartext_port_is_not_served(tls_server, pki):
    # Cleartext listeners do not sniff for TLS: a handshake there fails.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(tls_server.port, "/", client_context(pki.ecdsa))
    assert http_request(tls_server.port, "GET", "/")[2] == b"hello"


# ------------------------------------------------------------------ real clients, one server


@needs_curl
@pytest.mark.parametrize("listener, flags, http_version, protocol", [
    ("tls", [], "2", "HTTP/2.0"),                       # ALPN picks h2
    ("tls", ["--http1.1"], "1.1", "HTTP/1.1"),        # ALPN picks http/1.1
    ("tls", ["--http2"], "2", "HTTP/2.0"),
    ("clear", ["--http2"], "2", "HTTP/2.0"),            # Upgrade: h2c
    ("clear", ["--http2-prior-knowledge"], "2", "HTTP/2.0"),
    ("clear", ["--http1.1"], "1.1", "HTTP/1.1"),
], ids=["tls-alpn-h2", "tls-http1.1", "tls-http2", "h2c-upgrade", "h2c-prior-knowledge", "clear-http1.1"])
def test_curl(tls_server, pki, listener, flags, http_version, protocol):
    if listener == "tls":
        url, tls_flags, scheme = tls_server.tls_url, ["--cacert", str(pki.ca_path)], "https"
    else:
        url, tls_flags, scheme = tls_server.url, [], "http"
    version, body = curl(*tls_flags, *flags, f"{url}/env")
    env = json.loads(body)
    assert (version, env["SERVER_PROTOCOL"], env["wsgi.url_scheme"]) == (http_version, protocol, scheme)


@needs_curl
def test_curl_http2_upgrade_goes_through_101(tls_server):
    result = subprocess.run(
        ["curl", "-sS", "-v", "--max-time", "20", "--http2", "--data-binary", "upgraded body",
         f"{tls_server.url}/echo"],
        capture_output=True, timeout=30, check=True,
    )
    log = result.stderr.decode()
    assert "Upgrade: h2c" in log and "101 Switching Protocols" in log and "HTTP/2 200" in log, log
    assert result.stdout == b"upgraded body"


@needs_curl
def test_curl_over_tls_does_not_upgrade_to_h2c(tls_server, pki):
    # h2c is cleartext only: an Upgrade: h2c request over TLS is answered in HTTP/1.1.
    result = subprocess.run(
        ["curl", "-sS", "-v", "--max-time", "20", "--http1.1", "--cacert", str(pki.ca_path),
         "-H", "Connection: Upgrade, HTTP2-Settings", "-H", "Upgrade: h2c", "-H", "HTTP2-Settings: AAMAAABkAAQAAP__",
         f"{tls_server.tls_url}/env"],
        capture_output=True, timeout=30, check=True,
    )
    assert "101" not in result.stderr.decode().split("< HTTP/1.1 ", 1)[1][:4]
    env = json.loads(result.stdout)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["wsgi.url_scheme"] == "https"


def test_httpx_http2_over_tls(tls_server, pki):
    body = bytes(range(256)) * 400
    with httpx.Client(http2=True, verify=client_context(pki.ecdsa), timeout=CLIENT_TIMEOUT) as client:
        env = client.get(f"{tls_server.tls_url}/env")
        echo = client.post(f"{tls_server.tls_url}/echo", content=body)
    assert env.http_version == "HTTP/2"
    assert env.json()["SERVER_PROTOCOL"] == "HTTP/2.0"
    assert env.json()["wsgi.url_scheme"] == "https"
    assert (echo.http_version, echo.content) == ("HTTP/2", body)


def test_python_ssl_without_a_client_certificate(tls_server, pki):
    result = https_get(tls_server.tls_port, "/env", client_context(pki.ecdsa))
    env = result.json()
    assert result.status == 200
    assert env["HTTPS"] == "on"
    assert "SSL_CLIENT_CERT" not in env


def test_a_body_the_app_does_not_read_does_not_cost_a_tls_client_its_response(tls_server, pki):
    # http.client sends the whole body before reading; the server answers
    # without reading it and closes (lingering close: tests/test_limits.py).
    conn = http.client.HTTPSConnection("127.0.0.1", tls_server.tls_port, timeout=CLIENT_TIMEOUT,
                                       context=client_context(pki.ecdsa))
    try:
        conn.request("POST", "/expect-noread", body=b"x" * (40 * 1024 * 1024))
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"unread")
    finally:
        conn.close()


def test_python_ssl_with_a_client_certificate(tls_server, pki):
    result = https_get(tls_server.tls_port, "/env", client_context(pki.ecdsa, pki.client_pem))
    env = result.json()
    sent = x509.load_pem_x509_certificates(pki.client_pem.read_bytes())[0]
    assert env["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----\n")
    assert x509.load_pem_x509_certificate(env["SSL_CLIENT_CERT"].encode()) == sent


def test_a_client_certificate_from_another_ca_is_refused(tls_server, pki):
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(tls_server.tls_port, "/env", client_context(pki.ecdsa, pki.stranger_pem))
    assert https_get(tls_server.tls_port, "/", client_context(pki.ecdsa)).body == b"hello"


@needs_nghttp
def test_nghttp_over_tls(tls_server):
    # nghttp has no option for a CA file; it warns about the certificate and goes on.
    result = subprocess.run(["nghttp", "-v", "-t", "20", f"{tls_server.tls_url}/env"],
                            capture_output=True, timeout=30, check=True)
    out = result.stdout.decode()
    assert "The negotiated protocol: h2" in out, out
    assert ":status: 200" in out
    assert '"wsgi.url_scheme": "https"' in out


@needs_nghttp
def test_nghttp_h2c_upgrade(tls_server):
    result = subprocess.run(["nghttp", "-u", "-v", "-t", "20", f"{tls_server.url}/env"],
                            capture_output=True, timeout=30, check=True)
    out = result.stdout.decode()
    assert "HTTP/1.1 101 Switching Protocols" in out and "HTTP Upgrade success" in out, out
    assert '"SERVER_PROTOCOL": "HTTP/2.0"' in out


# ------------------------------------------------------------------ ALPN and versions


@pytest.mark.parametrize("offered, selected", [
    (("h2", "http/1.1"), "h2"),
    (("http/1.1", "h2"), "h2"),  # the server's preference: h2 first
    (("http/1.1",), "http/1.1"),
    (("h2",), "h2"),
    (None, None),  # no ALPN at all: HTTP/1.1
])
def test_alpn(tls_server, pki, offered, selected):
    context = client_context(pki.ecdsa, alpn=offered)
    with (
        socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=CLIENT_TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        assert sock.selected_alpn_protocol() == selected
    if selected != "h2":
        # http.client speaks HTTP/1.1: fine on a connection that agreed on it (or on nothing).
        assert https_get(tls_server.tls_port, "/", context).body == b"hello"


@pytest.mark.parametrize("version, name", [
    (ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
    (ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
])
def test_tls_versions_and_their_environ(tls_server, pki, version, name):
    result = https_get(tls_server.tls_port, "/env", client_context(pki.ecdsa, version=version))
    env = result.json()
    assert result.version == name
    assert env["SSL_PROTOCOL"] == name
    # OpenSSL's names, as mod_ssl gives them: the client (OpenSSL) names the same suite.
    assert env["SSL_CIPHER"] == result.cipher, (env["SSL_CIPHER"], result.cipher)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls_older_than_1_2_is_refused(tls_server, pki):
    context = client_context(pki.ecdsa)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    try:
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    except ValueError:
        pytest.skip("this OpenSSL cannot offer TLS 1.1")
    start = tls_server.mark()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(tls_server.tls_port, "/", context)
    # The server is the one that refused (not this client's OpenSSL).
    tls_server.wait_for_line(r"TLS handshake with 127\.0\.0\.1:\d+ failed", start)


# ------------------------------------------------------------------ environ


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
def test_environ_over_tls(tls_server, pki, http2):
    with httpx.Client(http1=not http2, http2=http2, verify=client_context(pki.ecdsa),
                      timeout=CLIENT_TIMEOUT) as client:
        response = client.get(f"{tls_server.tls_url}/env")
    env = response.json()
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTPS"] == "on"
    assert env["SSL_PROTOCOL"] == "TLSv1.3"
    assert env["SSL_CIPHER"]
    assert "SSL_CLIENT_CERT" not in env
    assert env["SERVER_PORT"] == str(tls_server.tls_port)


def test_environ_on_the_cleartext_listener_has_no_tls_variables(tls_server):
    status, _, body = http_request(tls_server.port, "GET", "/env", headers={"HTTPS": "on", "SSL-Cipher": "x"})
    env = json.loads(body)
    assert status == 200
    assert env["wsgi.url_scheme"] == "http"
    assert not {"HTTPS", "SSL_PROTOCOL", "SSL_CIPHER", "SSL_CLIENT_CERT"} & env.keys()
    assert env["HTTP_HTTPS"] == "on"  # a client's header stays an HTTP_ variable


# ------------------------------------------------------------------ client certificates: required


def test_required_client_certificate(start_server, pki):
    srv = start_server(APP, *pki.rsa.args("--ca-certs", str(pki.ca_path), "--client-cert", "required"))
    port = srv.tls_port
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(port, "/", client_context(pki.rsa))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        https_get(port, "/", client_context(pki.rsa, pki.stranger_pem))
    env = https_get(port, "/env", client_context(pki.rsa, pki.client_pem)).json()
    assert env["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----")
    with httpx.Client(http2=True, verify=client_context(pki.rsa, pki.client_pem), timeout=CLIENT_TIMEOUT) as client:
        response = client.get(f"{srv.tls_url}/env")
    assert response.http_version == "HTTP/2"
    assert "SSL_CLIENT_CERT" in response.json()


# ------------------------------------------------------------------ key types and formats


KEY_CASES = {
    # name: (which certificate, key format, password, the public key class)
    "ecdsa-pkcs8": ("ecdsa", "pkcs8", None, ec.EllipticCurvePublicKey),
    "ecdsa-sec1": ("ecdsa", "traditional", None, ec.EllipticCurvePublicKey),
    "ecdsa-encrypted-pkcs8": ("ecdsa", "pkcs8", KEY_PASSWORD, ec.EllipticCurvePublicKey),
    "rsa-pkcs8": ("rsa", "pkcs8", None, rsa.RSAPublicKey),
    "rsa-pkcs1": ("rsa", "traditional", None, rsa.RSAPublicKey),
    "rsa-encrypted-pkcs8": ("rsa", "pkcs8", KEY_PASSWORD, rsa.RSAPublicKey),
    "ed25519-pkcs8": ("ed25519", "pkcs8", None, ed25519.Ed25519PublicKey),
    "ed25519-encrypted-pkcs8": ("ed25519", "pkcs8", KEY_PASSWORD, ed25519.Ed25519PublicKey),
}


@pytest.mark.parametrize("case", KEY_CASES)
def test_key_types_and_formats(start_server, pki, case):
    which, fmt, password, key_class = KEY_CASES[case]
    files = rewrite_key(getattr(pki, which), case, fmt, password)
    head = files.keyfile.read_text().splitlines()[0]
    if password is not None:
        assert head == "-----BEGIN ENCRYPTED PRIVATE KEY-----"
    extra = ["--keyfile-password", password] if password is not None else []
    srv = start_server(APP, *files.args(*extra))
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        result = https_get(srv.tls_port, "/env", client_context(files, version=version))
        assert result.status == 200
        assert result.json()["SSL_PROTOCOL"] == result.version
        assert serial_of_der(result.peer_der) == files.serial
        assert isinstance(x509.load_der_x509_certificate(result.peer_der).public_key(), key_class)
    with httpx.Client(http2=True, verify=client_context(files), timeout=CLIENT_TIMEOUT) as client:
        assert client.get(f"{srv.tls_url}/").http_version == "HTTP/2"


# ------------------------------------------------------------------ start-up errors


def error_cases(pki, tmp: Path):
    """(name, extra arguments, exit status, text the error line must contain)."""
    ecdsa = pki.ecdsa
    encrypted = rewrite_key(ecdsa, "err-encrypted", "pkcs8", KEY_PASSWORD)
    legacy = rewrite_key(ecdsa, "err-legacy", "legacy-encrypted", KEY_PASSWORD)
    unreadable = tmp / "unreadable.key"  # a directory: cannot be read as a file, even by root
    unreadable.mkdir()
    garbage = tmp / "garbage.pem"
    garbage.write_text("not a PEM file\n")
    return [
        ("missing-cert", ["--certfile", str(tmp / "nope.crt"), "--keyfile", str(ecdsa.keyfile)], 1, "nope.crt"),
        ("missing-key", ["--certfile", str(ecdsa.certfile), "--keyfile", str(tmp / "nope.key")], 1, "nope.key"),
        ("unreadable-key", ["--certfile", str(ecdsa.certfile), "--keyfile", str(unreadable)], 1, "unreadable.key"),
        ("cert-is-garbage", ["--certfile", str(garbage), "--keyfile", str(ecdsa.keyfile)], 1, "garbage.pem"),
        ("key-is-a-cert", ["--certfile", str(ecdsa.certfile), "--keyfile", str(ecdsa.certfile)], 1, "ecdsa.crt"),
        ("key-does-not-match", ["--certfile", str(ecdsa.certfile), "--keyfile", str(pki.rsa.keyfile)], 1,
         "does not match"),
        ("encrypted-without-password", encrypted.args(), 1, "--keyfile-password"),
        ("wrong-password", encrypted.args("--keyfile-password", "wrong"), 1, "--keyfile-password"),
        ("legacy-encryption", legacy.args("--keyfile-password", KEY_PASSWORD), 1, "openssl pkcs8 -topk8"),
        ("missing-ca", ecdsa.args("--ca-certs", str(tmp / "nope-ca.pem"), "--client-cert", "optional"), 1,
         "nope-ca.pem"),
        ("ca-is-garbage", ecdsa.args("--ca-certs", str(garbage), "--client-cert", "required"), 1, "garbage.pem"),
        ("unused-ca-is-missing", ecdsa.args("--ca-certs", str(tmp / "nope-ca.pem")), 1, "nope-ca.pem"),
        ("required-without-ca", ecdsa.args("--client-cert", "required"), 2, "--ca-certs"),
        ("optional-without-ca", ecdsa.args("--client-cert", "optional"), 2, "--ca-certs"),
        ("bad-client-cert-mode", ecdsa.args("--client-cert", "maybe"), 2, "--client-cert"),
        ("keyfile-without-certfile", ["--keyfile", str(ecdsa.keyfile)], 2, "--certfile"),
        ("certfile-without-keyfile", ["--certfile", str(ecdsa.certfile)], 2, "--keyfile"),
        ("password-without-tls", ["--keyfile-password", "x"], 2, "--certfile"),
        ("ca-without-tls", ["--ca-certs", str(pki.ca_path)], 2, "--certfile"),
        ("client-cert-without-tls", ["--client-cert", "optional"], 2, "--certfile"),
    ]


ERROR_NAMES = [
    "missing-cert", "missing-key", "unreadable-key", "cert-is-garbage", "key-is-a-cert", "key-does-not-match",
    "encrypted-without-password", "wrong-password", "legacy-encryption", "missing-ca", "ca-is-garbage",
    "unused-ca-is-missing",
    "required-without-ca", "optional-without-ca", "bad-client-cert-mode", "keyfile-without-certfile",
    "certfile-without-keyfile", "password-without-tls", "ca-without-tls", "client-cert-without-tls",
]


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_tls_errors_are_one_line(pki, tmp_path, name):
    cases = {case[0]: case[1:] for case in error_cases(pki, tmp_path)}
    args, code, text = cases[name]
    # A start-up error takes well under a second; a server that starts anyway
    # is stopped by the timeout (and the test fails).
    line = assert_one_error_line(run_cli(APP, "--bind", "127.0.0.1:0", *args, timeout=8), code)
    assert text in line, line


# ------------------------------------------------------------------ SIGHUP reload


def test_sighup_restarts_the_workers_with_the_new_certificate(start_server, pki, tmp_path):
    certfile, keyfile = tmp_path / "server.crt", tmp_path / "server.key"
    certfile.write_bytes(pki.ecdsa.certfile.read_bytes())
    keyfile.write_bytes(pki.ecdsa.keyfile.read_bytes())
    srv = start_server(APP, "--certfile", str(certfile), "--keyfile", str(keyfile))
    trust_both = ssl.create_default_context(cafile=str(pki.both_cas_path))
    assert serial_of_der(https_get(srv.tls_port, "/", trust_both).peer_der) == pki.ecdsa.serial
    old_worker = srv.worker_pid

    # Certificate B, from another CA: the new worker serves it.
    start = srv.mark()
    certfile.write_bytes(pki.other.certfile.read_bytes())
    keyfile.write_bytes(pki.other.keyfile.read_bytes())
    srv.proc.send_signal(signal.SIGHUP)
    srv.wait_for_line(r"SIGHUP: restarting the workers", start)
    srv.wait_for_line(rf"\[{old_worker}\] \[INFO\] propylon\.server: Stopped", start)
    new = https_get(srv.tls_port, "/", trust_both)
    assert new.body == b"hello"
    assert serial_of_der(new.peer_der) == pki.other.serial
    # A client that trusts only the first CA now fails: the new certificate is really served.
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(srv.tls_port, "/", pki.ecdsa.client_context())

    # A key that does not match: the new worker cannot start, the old one keeps serving.
    start = srv.mark()
    keyfile.write_bytes(pki.rsa.keyfile.read_bytes())
    srv.proc.send_signal(signal.SIGHUP)
    error = srv.wait_for_line(r"\[ERROR\] propylon\.server: the new worker 0 failed to start; "
                              r"the old one keeps serving: (.*)", start)  # fmt: skip
    assert "does not match" in error.group(1)
    assert serial_of_der(https_get(srv.tls_port, "/", trust_both).peer_der) == pki.other.serial
    assert srv.proc.poll() is None


def test_sighup_sent_to_a_worker_reloads_its_certificate_without_dropping_connections(start_server, pki, tmp_path):
    certfile, keyfile = tmp_path / "server.crt", tmp_path / "server.key"
    certfile.write_bytes(pki.ecdsa.certfile.read_bytes())
    keyfile.write_bytes(pki.ecdsa.keyfile.read_bytes())
    srv = start_server(APP, "--certfile", str(certfile), "--keyfile", str(keyfile), "--keep-alive-timeout", "60")
    trust_both = ssl.create_default_context(cafile=str(pki.both_cas_path))
    old_h1 = http.client.HTTPSConnection("127.0.0.1", srv.tls_port, timeout=CLIENT_TIMEOUT, context=trust_both)
    try:
        old_h1.request("GET", "/")
        assert old_h1.getresponse().read() == b"hello"
        old_h1_port = old_h1.sock.getsockname()[1]
        start = srv.mark()
        certfile.write_bytes(pki.other.certfile.read_bytes())
        keyfile.write_bytes(pki.other.keyfile.read_bytes())
        os.kill(srv.worker_pid, signal.SIGHUP)
        srv.wait_for_line(r"reloaded the TLS certificate", start)
        assert serial_of_der(https_get(srv.tls_port, "/", trust_both).peer_der) == pki.other.serial
        # The connection opened before still answers, on the same socket, with the old certificate.
        old_h1.request("GET", "/")
        assert old_h1.getresponse().read() == b"hello"
        assert old_h1.sock.getsockname()[1] == old_h1_port
        assert serial_of_der(old_h1.sock.getpeercert(binary_form=True)) == pki.ecdsa.serial
    finally:
        old_h1.close()


# ------------------------------------------------------------------ files over TLS


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
def test_file_wrapper_over_tls(start_server, pki, tmp_path, http2):
    """On cleartext HTTP/1.1 whole files go out with sendfile(2); over TLS they
    must be encrypted like everything else (a plaintext byte would break the
    TLS stream, and the client would fail)."""
    data = bytes(range(256)) * 8192  # 2 MiB
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    srv = start_server("tests.apps.file_app:app", *pki.ecdsa.args())
    with httpx.Client(http1=not http2, http2=http2, verify=client_context(pki.ecdsa), timeout=CLIENT_TIMEOUT) as c:
        response = c.get(f"{srv.tls_url}/file", params={"path": str(path)})
        again = c.get(f"{srv.tls_url}/file", params={"path": str(path), "seek": "1000"})
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert response.content == data
    assert again.content == data[1000:]
