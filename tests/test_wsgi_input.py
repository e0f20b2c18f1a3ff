"""``wsgi.input`` under WSGI 1.1: terminated input, every read method on every kind of body,
truncated bodies, request decompression (``--decompress``) and buffering (``--buffer-body``).

Bodies come with a Content-Length, chunked (HTTP/1.1), and as HTTP/2 DATA
frames without a content-length; the test app reports what it read and what
reads after the end returned (all must be ``b""`` without blocking).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import random
import re
import socket
import zlib

import h2.config
import h2.connection
import httpx
import pytest

from tests.support import (
    CLIENT_TIMEOUT,
    RawConnection,
    assert_serving,
    chunks_of,
    send_refusable,
    wait_for_file,
)

#: Lines of many lengths, an empty line, a CRLF line and a last line without a newline.
BODY = (
    b"".join(b"line %d %s\n" % (i, b"x" * (i * 37 % 211)) for i in range(300))
    + b"\n\r\n"
    + b"".join(b"%d\n" % i for i in range(100))
    + b"last line without newline"
)

MODES = ["read", "read_none", "read_minus1", "read_n", "readline", "readline_limit", "readlines",
         "readlines_hint", "iter"]
TRANSPORTS = ["content-length", "chunked", "http2"]
N = {"read_n": 7, "readline_limit": 50, "readlines_hint": 1000}


def lines_of(data: bytes) -> list[bytes]:
    """Split after each b"\\n" (what readline() does; bytes.splitlines() also splits at \\r)."""
    return re.findall(rb"[^\n]*\n|[^\n]+$", data)


def expected_pieces(mode: str, data: bytes) -> list[int]:
    if mode.startswith("read") and not mode.startswith("readline"):
        if mode == "read_n":
            n = N[mode]
            return [min(n, len(data) - i) for i in range(0, len(data), n)]
        return [len(data)]
    if mode == "readline_limit":
        n = N[mode]
        return [min(n, len(line) - i) for line in lines_of(data) for i in range(0, len(line), n)]
    return [len(line) for line in lines_of(data)]  # readline, readlines, readlines_hint, iter


def post(port_or_url, path: str, body: bytes, transport: str, headers: dict[str, str] | None = None,
         chunk: int = 1000) -> tuple[int, bytes]:
    """POST ``body`` with the given framing; returns (status, response body)."""
    headers = dict(headers or {})
    if transport == "http2":
        with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as client:
            response = client.post(port_or_url + path, content=chunks_of(body, chunk), headers=headers)
            assert response.http_version == "HTTP/2"
            return response.status_code, response.content
    port = port_or_url if isinstance(port_or_url, int) else int(port_or_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    try:
        if transport == "chunked":
            headers["Transfer-Encoding"] = "chunked"
            conn.request("POST", path, body=chunks_of(body, chunk), headers=headers, encode_chunked=True)
        else:
            conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post_json(target, path, body, transport, headers=None, chunk=1000) -> dict:
    status, data = post(target, path, body, transport, headers, chunk)
    assert status == 200, (status, data[:500])
    return json.loads(data)


def target_for(server, transport):
    return server.url if transport == "http2" else server.port


# ------------------------------------------------------------------ read methods


@pytest.fixture(scope="module")
def input_server(start_module_server):
    # A short --body-timeout turns a read that wrongly blocks past the end into a
    # reported ClientDisconnected instead of a test timeout. No body is read
    # ahead: these tests are about what the application's reads see as a body
    # arrives (and stops arriving).
    return start_module_server(
        "tests.apps.wsgi_app:app", "--body-timeout", "10", "--preread-body-size", "0"
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", MODES)
def test_read_method_on_body(input_server, mode, transport):
    n = N.get(mode, 7)
    result = post_json(target_for(input_server, transport), f"/input/{mode}?n={n}", BODY, transport)
    assert result["sha256"] == hashlib.sha256(BODY).hexdigest()
    assert result["length"] == len(BODY)
    assert result["pieces"] == expected_pieces(mode, BODY)
    assert result["after_eof"] == ["", "", "", ""], "reads after the end must return b'' at once"
    expected_cl = str(len(BODY)) if transport == "content-length" else "<absent>"
    assert result["CONTENT_LENGTH"] == expected_cl


#: A body for large reads: a first line, then bytes of every value.
LARGE_BODY = b"first line\n" + bytes(range(256)) * 1200


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("n", [16384, 40000, 1_000_000])
@pytest.mark.parametrize("mode", ["read_n", "readline_then_read_n"])
def test_large_reads(input_server, mode, n, transport):
    # Reads of 16 KiB and more go straight into the bytes object returned;
    # what a read leaves of a chunk (and what readline() left) comes first in
    # the next one, and the last read is short only because the body ends.
    result = post_json(target_for(input_server, transport), f"/input/{mode}?n={n}", LARGE_BODY, transport,
                       chunk=10_000)
    assert result["sha256"] == hashlib.sha256(LARGE_BODY).hexdigest()
    rest = len(LARGE_BODY)
    expected = []
    if mode == "readline_then_read_n":
        expected.append(len(b"first line\n"))
        rest -= expected[0]
    expected += [min(n, rest - i) for i in range(0, rest, n)]
    assert result["pieces"] == expected
    assert result["after_eof"] == ["", "", "", ""]


@pytest.mark.parametrize("mode", ["read", "read_n", "readline", "readlines", "iter"])
def test_read_without_body_returns_empty_at_once(input_server, mode):
    conn = http.client.HTTPConnection("127.0.0.1", input_server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", f"/input/{mode}")
        response = conn.getresponse()
        result = json.loads(response.read())
    finally:
        conn.close()
    assert result["length"] == 0
    assert result["after_eof"] == ["", "", "", ""]


def test_input_does_not_read_into_the_next_pipelined_request(input_server):
    # WSGI 1.1: read() stops at the end of this body, whatever follows on the connection.
    with RawConnection(input_server.port) as raw:
        raw.send(b"POST /input/read HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                 b"POST /input/read HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n0\r\n\r\n"
                 b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        first, second, third = raw.read_response(), raw.read_response(), raw.read_response()
    assert json.loads(first.body)["sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert json.loads(second.body)["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert (third.status, third.body) == (200, b"hello")


def test_large_chunked_upload(input_server):
    block = os.urandom(1024 * 1024)
    body_blocks = [bytes([i]) + block[1:] for i in range(32)]  # 32 MiB, no two blocks alike
    digest = hashlib.sha256(b"".join(body_blocks)).hexdigest()
    conn = http.client.HTTPConnection("127.0.0.1", input_server.port, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("POST", "/hash", body=iter(body_blocks), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        response = conn.getresponse()
        result = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 200
    assert (result["length"], result["sha256"]) == (32 * 1024 * 1024, digest)


# ------------------------------------------------------------------ truncated bodies


def wait_until_app_started(record_path):
    wait_for_file(record_path, lambda text: text.startswith("started\n"))


def body_report(record_path) -> dict:
    """The JSON line /body-report records after its ``started`` line."""
    lines = wait_for_file(record_path, lambda text: len(text.splitlines()) >= 2).splitlines()
    assert lines[0] == "started", lines
    return json.loads(lines[1])


def assert_client_disconnected(record_path):
    seen = body_report(record_path)
    assert seen["error"] == "ClientDisconnected", seen
    assert seen["is_oserror"] and seen["is_RequestBodyError"] and seen["is_ClientDisconnected"], seen
    assert seen["bytes_read"] <= 1000, seen


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_client_closing_mid_body_raises_client_disconnected(input_server, tmp_path, framing):
    record_path = tmp_path / "record.json"
    if framing == "content-length":
        head = b"Content-Length: 100000\r\n"
        partial = b"a" * 1000
    else:
        head = b"Transfer-Encoding: chunked\r\n"
        partial = b"3e8\r\n" + b"a" * 1000 + b"\r\n" + b"3e8\r\n" + b"b" * 10
    with RawConnection(input_server.port) as raw:
        raw.send(b"POST /body-report HTTP/1.1\r\nHost: t\r\nX-Record-Path: " + str(record_path).encode()
                 + b"\r\n" + head + b"\r\n" + partial)
        wait_until_app_started(record_path)
    assert_client_disconnected(record_path)
    assert_serving(input_server.port)


def _h2_partial_upload(port: int, record_path) -> tuple[socket.socket, h2.connection.H2Connection]:
    """Open an HTTP/2 connection and send half of a declared 100000-byte body on stream 1."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [
        (":method", "POST"), (":path", "/body-report"), (":scheme", "http"),
        (":authority", f"127.0.0.1:{port}"), ("content-length", "100000"),
        ("x-record-path", str(record_path)),
    ])
    conn.send_data(1, b"a" * 1000)
    sock.sendall(conn.data_to_send())
    return sock, conn


def test_http2_connection_closed_mid_body_raises_client_disconnected(input_server, tmp_path):
    record_path = tmp_path / "record.json"
    sock, _ = _h2_partial_upload(input_server.port, record_path)
    wait_until_app_started(record_path)
    sock.close()
    assert_client_disconnected(record_path)
    assert_serving(input_server.port)


def test_http2_stream_reset_mid_body_raises_client_disconnected(input_server, tmp_path):
    record_path = tmp_path / "record.json"
    sock, conn = _h2_partial_upload(input_server.port, record_path)
    try:
        wait_until_app_started(record_path)
        conn.reset_stream(1)
        sock.sendall(conn.data_to_send())
        assert_client_disconnected(record_path)
    finally:
        sock.close()
    assert_serving(input_server.port)


# ------------------------------------------------------------------ --decompress

DECODED = BODY * 40  # ~1.3 MB, compressible


def _brotli(data: bytes) -> bytes:
    brotli = pytest.importorskip("brotli", reason="the brotli package is needed to make br bodies")
    return brotli.compress(data)


def _zstd(data: bytes) -> bytes:
    zstandard = pytest.importorskip("zstandard", reason="the zstandard package is needed to make zstd bodies")
    return zstandard.ZstdCompressor().compress(data)


ENCODERS = {
    "gzip": gzip.compress,
    "GZip": gzip.compress,  # RFC 9110 §8.4.1: content-coding names are case-insensitive
    "deflate": zlib.compress,  # RFC 9110 §8.4.1.2: "deflate" is the zlib format
    "br": _brotli,
    "zstd": _zstd,
}


@pytest.fixture(scope="module")
def decompress_server(start_module_server):
    return start_module_server("tests.apps.wsgi_app:app", "--decompress", "--max-body-size", "10M")


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("encoding", list(ENCODERS))
def test_decompress_decodes_body(decompress_server, encoding, transport):
    encoded = ENCODERS[encoding](DECODED)
    result = post_json(target_for(decompress_server, transport), "/input/read", encoded, transport,
                       headers={"Content-Encoding": encoding}, chunk=4096)
    assert result["sha256"] == hashlib.sha256(DECODED).hexdigest()
    assert result["length"] == len(DECODED)
    assert result["CONTENT_LENGTH"] == "<absent>"
    assert result["HTTP_CONTENT_ENCODING"] == "<absent>"
    assert result["after_eof"] == ["", "", "", ""]


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


def test_damaged_compressed_bodies_are_refused_whole_ones_decoded(decompress_server):
    # Seeded cases over every coding (raw DEFLATE too, which the server
    # sniffs), on the three transports, in pieces of 1 to 4096 bytes: a whole
    # body decodes to what was compressed; a truncated one, or one with bytes
    # after the end of its compressed data, is refused (400: the read raised
    # InvalidRequestBody); a second gzip member or zstd frame is part of the
    # body (RFC 1952, RFC 8878), a second zlib or brotli stream is not.
    encoders = {**ENCODERS, "raw-deflate": _raw_deflate}
    for case in range(120):
        rng = random.Random(case)
        coding = rng.choice(sorted(encoders))
        plain = b"".join(bytes([rng.randrange(97, 100)]) * rng.randint(1, 3000) for _ in range(rng.randint(1, 20)))
        data = encoders[coding](plain)
        damage = rng.choice(["none", "truncated", "garbage", "second"])
        if damage == "truncated":
            data = data[:rng.randrange(len(data))]
        elif damage == "garbage":
            data += bytes(rng.randrange(1, 256) for _ in range(rng.randint(1, 10)))
        elif damage == "second":
            data += encoders[coding](b"second")
        if damage == "none":
            expected = plain
        elif damage == "second" and coding.lower() in ("gzip", "zstd"):
            expected = plain + b"second"
        else:
            expected = None
        transport = rng.choice(TRANSPORTS)
        header = "deflate" if coding == "raw-deflate" else coding
        status, body = post(target_for(decompress_server, transport), "/hash", data, transport,
                            headers={"Content-Encoding": header}, chunk=rng.choice([1, 100, 4096]))
        where = f"case {case}: {coding}, {damage}, {transport}"
        if expected is None:
            assert status == 400, (where, status, body[:200])
        else:
            assert status == 200, (where, status, body[:200])
            assert json.loads(body)["sha256"] == hashlib.sha256(expected).hexdigest(), where


def test_decompress_passes_unknown_encoding_through(decompress_server):
    body = b"opaque bytes \x00\x01\x02"
    result = post_json(decompress_server.port, "/input/read", body, "content-length",
                       headers={"Content-Encoding": "x-custom"})
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert result["CONTENT_LENGTH"] == str(len(body))
    assert result["HTTP_CONTENT_ENCODING"] == "x-custom"


@pytest.fixture(scope="module")
def gzip_bomb():
    """100 MiB of zeros, gzipped to about 100 kB: far past --max-body-size 10M once decoded."""
    return gzip.compress(bytes(100 * 1024 * 1024), compresslevel=9)


def test_gzip_bomb_read_raises_request_body_too_large(decompress_server, gzip_bomb, tmp_path):
    record_path = tmp_path / "record.json"
    send_refusable(decompress_server.port, "POST", "/body-report", gzip_bomb,
                   headers={"Content-Encoding": "gzip", "X-Record-Path": str(record_path)})
    seen = body_report(record_path)
    assert seen["error"] == "RequestBodyTooLarge", seen
    assert seen["is_RequestBodyTooLarge"] and seen["is_RequestBodyError"] and seen["is_oserror"], seen
    assert seen["bytes_read"] <= 10 * 1024 * 1024


@pytest.mark.parametrize("transport", ["content-length", "chunked"])
def test_gzip_bomb_propagated_is_413(decompress_server, gzip_bomb, transport):
    response = send_refusable(decompress_server.port, "POST", "/hash", gzip_bomb,
                              headers={"Content-Encoding": "gzip"}, chunked=transport == "chunked")
    assert response is not None, "connection closed without a response"
    assert response.status == 413
    assert_serving(decompress_server.port)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_invalid_compressed_body_propagated_is_400(decompress_server, encoding):
    if encoding in ("br", "zstd"):
        ENCODERS[encoding](b"")  # skips like the encoder tests when the library is missing
    response = send_refusable(decompress_server.port, "POST", "/hash", b"this is not compressed data at all" * 10,
                              headers={"Content-Encoding": encoding})
    assert response is not None, "connection closed without a response"
    assert response.status == 400
    assert_serving(decompress_server.port)


def test_invalid_gzip_read_raises_invalid_request_body(decompress_server, tmp_path):
    record_path = tmp_path / "record.json"
    send_refusable(decompress_server.port, "POST", "/body-report", b"\x1f\x8b but not really gzip",
                   headers={"Content-Encoding": "gzip", "X-Record-Path": str(record_path)})
    seen = body_report(record_path)
    assert seen["error"] == "InvalidRequestBody", seen
    assert seen["is_InvalidRequestBody"] and seen["is_RequestBodyError"] and seen["is_oserror"], seen


def test_truncated_gzip_is_an_error_not_an_end(decompress_server, tmp_path):
    # DESIGN §1: a truncated body is an error, not an end -- also once decoded.
    record_path = tmp_path / "record.json"
    truncated = gzip.compress(DECODED)[:-100]
    send_refusable(decompress_server.port, "POST", "/body-report", truncated,
                   headers={"Content-Encoding": "gzip", "X-Record-Path": str(record_path)})
    seen = body_report(record_path)
    assert seen["error"] == "InvalidRequestBody", seen


def test_without_decompress_body_is_passed_as_sent(input_server):
    encoded = gzip.compress(b"payload")
    result = post_json(input_server.port, "/input/read", encoded, "content-length",
                       headers={"Content-Encoding": "gzip"})
    assert result["sha256"] == hashlib.sha256(encoded).hexdigest()
    assert result["CONTENT_LENGTH"] == str(len(encoded))
    assert result["HTTP_CONTENT_ENCODING"] == "gzip"


# ------------------------------------------------------------------ --buffer-body


@pytest.fixture(scope="module")
def buffer_server(start_module_server):
    return start_module_server("tests.apps.wsgi_app:app", "--buffer-body", "--buffer-memory-limit", "64K",
                               "--decompress")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_buffer_body_sets_exact_content_length(buffer_server, transport):
    result = post_json(target_for(buffer_server, transport), "/input/read", BODY, transport)
    assert result["CONTENT_LENGTH"] == str(len(BODY))
    assert result["sha256"] == hashlib.sha256(BODY).hexdigest()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_buffer_body_spills_large_body_intact(buffer_server, transport):
    body = os.urandom(3 * 1024 * 1024)  # far above --buffer-memory-limit 64K
    result = post_json(target_for(buffer_server, transport), "/input/read_n?n=100000", body, transport,
                       chunk=65536)
    assert result["CONTENT_LENGTH"] == str(len(body))
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert result["after_eof"] == ["", "", "", ""]


def test_buffer_body_with_decompress_gives_decoded_length(buffer_server):
    result = post_json(buffer_server.port, "/input/readline", gzip.compress(DECODED), "chunked",
                       headers={"Content-Encoding": "gzip"})
    assert result["CONTENT_LENGTH"] == str(len(DECODED))
    assert result["HTTP_CONTENT_ENCODING"] == "<absent>"
    assert result["sha256"] == hashlib.sha256(DECODED).hexdigest()


def test_buffer_body_with_an_empty_content_length_gives_zero(buffer_server):
    # An empty body needs no buffering, but CONTENT_LENGTH is still the exact length.
    result = post_json(buffer_server.port, "/input/read", b"", "content-length")
    assert result["CONTENT_LENGTH"] == "0"
    assert result["sha256"] == hashlib.sha256(b"").hexdigest()


# ------------------------------------------------------------------ random reads
#
# Random bodies read with random sequences of read calls (seeded: the same
# cases every run), on every way a body arrives: Content-Length on the own
# HTTP/1.1 path (sent in random pieces, so that any part of it comes with the
# head), Content-Length with an absolute-form target, chunked in
# random chunk sizes (decoded by the connection), HTTP/2, the body of an `Upgrade: h2c` request (with a
# length and chunked), and HTTP/1.1 over TLS. What wsgi.input returns must be what
# io.BytesIO returns for the same calls on the same bytes, piece for piece.

RANDOM_READ_CASES = 30


def random_body(rng) -> bytes:
    lines = []
    for _ in range(rng.choice([0, 1, 5, 50, 400])):
        length = rng.choice([0, 1, 10, 100, 5000, 70_000])
        lines.append(bytes([rng.randrange(97, 123)]) * length + rng.choice([b"\n", b"\r\n", b"\n", b""]))
    return b"".join(lines)


def random_ops(rng) -> list[str]:
    ops = []
    for _ in range(rng.randint(1, 5)):
        op = rng.choice("rlsi")
        if op != "i" and rng.random() < 0.7:
            op += str(rng.choice([1, 7, 100, 4096, 16384, 65536, 100_000]))
        ops.append(op)
    return ops


def expected_reads(body: bytes, ops: list[str]) -> list[int]:
    """What the same calls return on io.BytesIO: the piece lengths."""
    import io

    reference, pieces = io.BytesIO(body), []
    while True:
        for op in ops:
            n = int(op[1:]) if len(op) > 1 else None
            if op[0] == "r":
                got = [reference.read(n)]
            elif op[0] == "l":
                got = [reference.readline(-1 if n is None else n)]
            elif op[0] == "s":
                got = reference.readlines(-1 if n is None else n)
            else:
                got = [next(iter(reference), b"")]
            got = [piece for piece in got if piece]
            if not got:
                return pieces
            pieces.extend(len(piece) for piece in got)


def post_in_pieces(port: int, target: str, body: bytes, rng, chunked: bool, tls=None) -> dict:
    head = f"POST {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    if chunked:
        framed, at = [], 0
        while at < len(body):
            size = rng.choice([1, 100, 4096, 65536])
            framed.append(b"%x\r\n%s\r\n" % (len(body[at:at + size]), body[at:at + size]))
            at += size
        payload = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + b"".join(framed) + b"0\r\n\r\n"
    else:
        payload = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    with RawConnection(port) as raw:
        raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            raw.sock = tls.wrap_socket(raw.sock, server_hostname="127.0.0.1")
        at = 0
        while at < len(payload):
            step = rng.choice([1, 50, 3000, 70_000, len(payload)])
            raw.send(payload[at:at + step])
            at += step
        response = raw.read_response()
    assert response is not None and response.status == 200, response
    return json.loads(response.body)


def post_upgrading(port: int, path: str, body: bytes, chunked: bool) -> dict:
    """POST with ``Upgrade: h2c``: the body goes in HTTP/1.1, the answer comes on stream 1."""
    from tests.test_h2c import Upgraded

    up = Upgraded(port, "POST", path, body, chunked=chunked)
    try:
        assert up.head.status == 101
        status, _, answer = up.response(1)
    finally:
        up.close()
    assert status == 200, answer[:300]
    return json.loads(answer)


@pytest.fixture(scope="module")
def tls_input_server(start_module_server, pki):
    return start_module_server("tests.apps.wsgi_app:app", *pki.ecdsa.args(), "--body-timeout", "10")


@pytest.mark.parametrize("transport", ["own", "absolute", "chunked", "http2", "h2c", "h2c-chunked", "tls"])
def test_random_reads_return_what_bytesio_returns(input_server, tls_input_server, pki, transport):
    # "tls": HTTP/1.1 over TLS, where a body of at most 64 KiB that came with
    # its head is read into the connection's buffer, and the connection reads the rest.
    rng = random.Random(21)
    for case in range(RANDOM_READ_CASES):
        body, ops = random_body(rng), random_ops(rng)
        path = "/input-ops?ops=" + ",".join(ops)
        if transport == "tls":
            got = post_in_pieces(tls_input_server.tls_port, path, body, rng, chunked=False,
                                 tls=pki.ecdsa.client_context(alpn=("http/1.1",)))
        elif transport.startswith("h2c"):
            got = post_upgrading(input_server.port, path, body, chunked=transport == "h2c-chunked")
        elif transport == "http2":
            got = post_json(input_server.url, path, body, "http2", chunk=rng.choice([1000, 16384, 100_000]))
        else:
            target = f"http://t{path}" if transport == "absolute" else path
            got = post_in_pieces(input_server.port, target, body, rng, chunked=transport == "chunked")
        assert got["pieces"] == expected_reads(body, ops), f"case {case}: {ops} on {len(body)} bytes"
        assert got["sha256"] == hashlib.sha256(body).hexdigest(), f"case {case}"
        assert got["after_eof"] == ["", "", "", ""], f"case {case}"
