"""Static files served by the Rust runtime (issue 21, point 6): real clients
against a server whose plan has static mounts (``tests/apps/serve_plan.py``).

The mounts, over one directory of test files:

- ``/static``: the defaults (index ``index.html``, precompressed siblings,
  no symbolic links out, no dotfiles), ``Cache-Control: public,
  max-age=31536000, immutable``;
- ``/open``: the same directory with ``follow_symlinks`` and ``dotfiles``,
  no index, no precompressed siblings.

Every other path is the WSGI test app (``tests/apps/wsgi_app.py``) on one
thread (``--threads 1``), so a request blocked in it holds every Python
thread.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from email.utils import formatdate
from pathlib import Path

import brotli
import httpx
import pytest
import zstandard

from tests.support import (
    CLIENT_TIMEOUT,
    REPO,
    RawConnection,
    ServerProcess,
    check_stopped_cleanly,
    http_request,
)

APP = "tests.apps.wsgi_app:app"
RUNNER = str(REPO / "tests" / "apps" / "serve_plan.py")
IMMUTABLE = "public, max-age=31536000, immutable"
HELLO = b"Hello, static world!\n"
SCRIPT = b"console.log('propylon');\n" * 40
BIG = os.urandom(1 << 20)
NOISE = os.urandom(4096).hex().encode()
ETAG = re.compile(r'^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$')

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The served directory, and a secret next to it (outside)."""
    base = tmp_path_factory.mktemp("static")
    (base / "secret.txt").write_bytes(b"TOP SECRET\n")
    root = base / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(HELLO)
    (root / "a b.txt").write_bytes(b"space\n")
    (root / "big.bin").write_bytes(BIG)
    # Old enough for its date to be a strong validator (RFC 9110 §8.8.2.2).
    os.utime(root / "big.bin", (1_700_000_000, 1_700_000_000))
    (root / "data.json").write_bytes(b'{"ok": true}\n')
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "app.js").write_bytes(SCRIPT)
    (root / "app.js.br").write_bytes(brotli.compress(SCRIPT))
    (root / "app.js.gz").write_bytes(gzip.compress(SCRIPT))
    (root / "app.js.zst").write_bytes(zstandard.ZstdCompressor().compress(SCRIPT))
    (root / "noise.txt").write_bytes(NOISE)
    (root / "noise.txt.gz").write_bytes(gzip.compress(NOISE))
    (root / "style.css").write_bytes(b"body{}\n")
    (root / "style.css.gz").write_bytes(gzip.compress(b"body{}\n"))
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_bytes(b"<h1>docs</h1>\n")
    (root / "empty").mkdir()
    (root / ".env").write_bytes(b"PASSWORD=hunter2\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(b"[core]\n")
    (root / "index.html").write_bytes(b"<h1>home</h1>\n")
    os.symlink(base / "secret.txt", root / "leak.txt")
    os.symlink(base, root / "leakdir")
    os.symlink(root / "hello.txt", root / "alias.txt")
    return root


def mounts_for(root: Path) -> str:
    return json.dumps([
        {"prefix": "/static", "directory": str(root), "cache_control": IMMUTABLE},
        {"prefix": "/open", "directory": str(root), "index": None, "precompressed": False,
         "follow_symlinks": True, "dotfiles": True},
    ])


class Servers:
    """The module's servers, stopped (and checked) at the end."""

    def __init__(self) -> None:
        self.started: list[ServerProcess] = []

    def start(self, mounts: str, *args: str) -> ServerProcess:
        server = ServerProcess(APP, ["--threads", "1", *args], ("127.0.0.1:0",), launcher=(RUNNER, mounts))
        self.started.append(server)
        return server


@pytest.fixture(scope="module")
def servers():
    started = Servers()
    yield started
    problems = []
    for server in started.started:
        if not server.stopped:
            problems += check_stopped_cleanly(server, server.stop())
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def srv(servers: Servers, tree: Path) -> ServerProcess:
    return servers.start(mounts_for(tree))


@pytest.fixture(scope="module")
def tls_srv(servers: Servers, tree: Path, pki) -> ServerProcess:
    return servers.start(mounts_for(tree), *pki.ecdsa.args())


def get(srv: ServerProcess, path: str, headers: dict[str, str] | None = None, method: str = "GET"):
    return http_request(srv.port, method, path, headers=headers)


def raw(srv: ServerProcess, target: str, method: str = "GET", extra: str = ""):
    """One request with the target exactly as written (no client normalises it)."""
    with RawConnection(srv.port, timeout=CLIENT_TIMEOUT) as conn:
        conn.send(f"{method} {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode("latin-1"))
        response = conn.read_response(method)
    assert response is not None
    return response


# -- what a file gets ------------------------------------------------------------


def test_get_a_file_with_its_validators(srv, tree):
    status, headers, body = get(srv, "/static/hello.txt")
    assert (status, body) == (200, HELLO)
    assert headers["content-length"] == str(len(HELLO))
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert ETAG.match(headers["etag"]), headers["etag"]
    stat = os.stat(tree / "hello.txt")
    assert headers["etag"] == f'"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    assert headers["last-modified"] == formatdate(int(stat.st_mtime), usegmt=True)
    assert headers["cache-control"] == IMMUTABLE
    assert headers["accept-ranges"] == "bytes"
    assert "date" in headers
    assert "vary" not in headers  # hello.txt has no precompressed sibling
    assert "content-encoding" not in headers


def test_head_has_the_head_and_no_body(srv):
    _, got, _ = get(srv, "/static/hello.txt")
    with RawConnection(srv.port, timeout=CLIENT_TIMEOUT) as conn:
        conn.send(b"HEAD /static/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /static/data.json HTTP/1.1\r\nHost: x\r\n\r\n")
        head = conn.read_response("HEAD")
        after = conn.read_response("GET")
    assert head.status == 200 and head.body == b""
    assert head.header("content-length") == str(len(HELLO))
    assert head.header("etag") == got["etag"]
    assert head.header("content-type") == "text/plain; charset=utf-8"
    # Nothing of a body came between the two answers.
    assert (after.status, after.body) == (200, b'{"ok": true}\n')


@pytest.mark.parametrize(("name", "content_type"), [
    ("hello.txt", "text/plain; charset=utf-8"),
    ("app.js", "text/javascript; charset=utf-8"),
    ("data.json", "application/json; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("docs/index.html", "text/html; charset=utf-8"),
    ("logo.png", "image/png"),
    ("big.bin", "application/octet-stream"),
])
def test_content_types(srv, name, content_type):
    status, headers, _ = get(srv, f"/static/{name}", {"Accept-Encoding": "identity"})
    assert (status, headers["content-type"]) == (200, content_type)


def test_a_large_file_whole_over_http1(srv):
    # Cleartext HTTP/1.1: the sendfile path.
    status, headers, body = get(srv, "/static/big.bin")
    assert status == 200 and headers["content-length"] == str(len(BIG))
    assert hashlib.sha256(body).digest() == hashlib.sha256(BIG).digest()


@needs_curl
def test_curl_whole_range_and_not_modified(srv, tmp_path):
    out = tmp_path / "out"
    url = f"{srv.url}/static/big.bin"
    whole = subprocess.run(["curl", "-sS", "--http1.1", "-o", str(out), "-w", "%{http_code} %{size_download}", url],
                           capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=True)
    assert whole.stdout == f"200 {len(BIG)}" and out.read_bytes() == BIG
    part = subprocess.run(["curl", "-sS", "--http1.1", "-r", "1000-1999", "-o", str(out), "-w", "%{http_code}", url],
                          capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=True)
    assert part.stdout == "206" and out.read_bytes() == BIG[1000:2000]
    _, headers, _ = get(srv, "/static/big.bin", method="HEAD")
    cached = subprocess.run(["curl", "-sS", "--http1.1", "-o", str(out), "-w", "%{http_code}",
                             "-H", f"If-None-Match: {headers['etag']}", url],
                            capture_output=True, text=True, timeout=CLIENT_TIMEOUT, check=True)
    assert cached.stdout == "304"


# -- conditional requests (RFC 9110 §13) ----------------------------------------------


def test_conditional_requests(srv, tree):
    _, headers, _ = get(srv, "/static/hello.txt")
    etag, date = headers["etag"], headers["last-modified"]
    later = formatdate(os.stat(tree / "hello.txt").st_mtime + 3600, usegmt=True)
    earlier = "Mon, 01 Jan 2001 00:00:00 GMT"
    cases = [
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": f"W/{etag}"}, 304),
        ({"If-None-Match": f'"nope", {etag}'}, 304),
        ({"If-None-Match": "*"}, 304),
        ({"If-None-Match": '"nope"'}, 200),
        ({"If-Modified-Since": date}, 304),
        ({"If-Modified-Since": later}, 304),
        ({"If-Modified-Since": earlier}, 200),
        ({"If-Modified-Since": "not a date"}, 200),
        # If-None-Match decides alone when present (RFC 9110 §13.1.3).
        ({"If-None-Match": '"nope"', "If-Modified-Since": date}, 200),
        ({"If-Match": etag}, 200),
        ({"If-Match": "*"}, 200),
        ({"If-Match": '"nope"'}, 412),
        ({"If-Match": f"W/{etag}"}, 412),
        ({"If-Unmodified-Since": earlier}, 412),
        ({"If-Unmodified-Since": date}, 200),
        ({"If-Match": '"nope"', "If-None-Match": etag}, 412),
    ]
    for fields, expected in cases:
        status, got, body = get(srv, "/static/hello.txt", fields)
        assert status == expected, fields
        if status == 304:
            assert body == b""
            assert got["etag"] == etag and got["cache-control"] == IMMUTABLE
            assert "content-length" not in got


def test_not_modified_keeps_vary(srv):
    _, headers, _ = get(srv, "/static/app.js", {"Accept-Encoding": "br"})
    status, got, _ = get(srv, "/static/app.js", {"Accept-Encoding": "br", "If-None-Match": headers["etag"]})
    assert status == 304 and got["vary"].lower() == "accept-encoding"


# -- ranges (RFC 9110 §14) --------------------------------------------------------------


def test_single_ranges(srv):
    n = len(BIG)
    cases = [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, n - 1),
        ("bytes=-500", n - 500, n - 1),
        ("bytes=10-10", 10, 10),
        ("bytes=100-999999999", 100, n - 1),
    ]
    for value, first, last in cases:
        status, headers, body = get(srv, "/static/big.bin", {"Range": value})
        assert status == 206, value
        assert headers["content-range"] == f"bytes {first}-{last}/{n}"
        assert headers["content-length"] == str(last - first + 1)
        assert body == BIG[first:last + 1], value


def test_unsatisfiable_and_ignored_ranges(srv):
    status, headers, body = get(srv, "/static/hello.txt", {"Range": "bytes=9999-"})
    assert (status, headers["content-range"], body) == (416, f"bytes */{len(HELLO)}", b"")
    for value in ["bytes=5-1", "lines=1-2", "bytes=x-y"]:
        status, headers, body = get(srv, "/static/hello.txt", {"Range": value})
        assert (status, body) == (200, HELLO), value
        assert "content-range" not in headers
    # Too many ranges: the whole file.
    many = ",".join(f"{i * 2000}-{i * 2000}" for i in range(201))
    status, _, body = get(srv, "/static/big.bin", {"Range": f"bytes={many}"})
    assert status == 200 and len(body) == len(BIG)


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    boundary = content_type.split("boundary=", 1)[1].encode()
    parts = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((fields["Content-Range"], data.removesuffix(b"\r\n")))
        assert fields["Content-Type"] == "application/octet-stream"
    return parts


def test_multiple_ranges_are_multipart(srv):
    n = len(BIG)
    status, headers, body = get(srv, "/static/big.bin", {"Range": "bytes=-100, 0-9, 5-19, 500000-799999"})
    assert status == 206
    assert headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert headers["content-length"] == str(len(body))
    # Sorted; the overlapping 0-9 and 5-19 coalesced.
    assert parse_multipart(headers["content-type"], body) == [
        (f"bytes 0-19/{n}", BIG[0:20]),
        (f"bytes 500000-799999/{n}", BIG[500000:800000]),
        (f"bytes {n - 100}-{n - 1}/{n}", BIG[n - 100:]),
    ]


def test_if_range(srv):
    _, headers, _ = get(srv, "/static/big.bin", method="HEAD")
    etag, date = headers["etag"], headers["last-modified"]
    for if_range, expected in [(etag, 206), (date, 206), (f"W/{etag}", 200), ('"old"', 200),
                               ("Mon, 01 Jan 2001 00:00:00 GMT", 200)]:
        status, _, body = get(srv, "/static/big.bin", {"Range": "bytes=0-9", "If-Range": if_range})
        assert status == expected, if_range
        assert body == (BIG[:10] if expected == 206 else BIG)


def test_if_range_with_a_date_that_is_not_a_strong_validator(srv, tree):
    # Modified "later than now" (or within the last second): its date may
    # change without the date changing, so If-Range with it gets the whole file.
    fresh = tree / "fresh.txt"
    fresh.write_bytes(b"0123456789")
    future = time.time() + 3600
    os.utime(fresh, (future, future))
    _, headers, _ = get(srv, "/static/fresh.txt", method="HEAD")
    status, _, body = get(srv, "/static/fresh.txt", {"Range": "bytes=0-1", "If-Range": headers["last-modified"]})
    assert (status, body) == (200, b"0123456789")
    status, _, body = get(srv, "/static/fresh.txt", {"Range": "bytes=0-1", "If-Range": headers["etag"]})
    assert (status, body) == (206, b"01")


def test_ranges_only_on_get(srv):
    status, headers, body = get(srv, "/static/hello.txt", {"Range": "bytes=0-1"}, method="HEAD")
    assert (status, body) == (200, b"")
    assert "content-range" not in headers and headers["content-length"] == str(len(HELLO))


# -- precompressed siblings -------------------------------------------------------------


@pytest.mark.parametrize(("accept", "coding"), [
    ("gzip, deflate, br, zstd", "br"),
    ("gzip, zstd", "zstd"),
    ("gzip", "gzip"),
    ("br;q=0.5, gzip", "gzip"),
    ("br;q=0, zstd;q=0, gzip;q=0.1", "gzip"),
    ("*", "br"),
    ("*;q=0.5, br;q=0", "zstd"),
    ("identity", None),
    ("gzip;q=0.5, identity", None),
    ("deflate", None),
    ("br;q=0, gzip;q=0, zstd;q=0", None),
    (None, None),
])
def test_precompressed_sibling_by_accept_encoding(srv, tree, accept, coding):
    fields = {"Accept-Encoding": accept} if accept is not None else {}
    status, headers, body = get(srv, "/static/app.js", fields)
    assert status == 200
    assert headers.get("content-encoding") == coding
    assert headers["vary"].lower() == "accept-encoding"
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    decoded = {
        None: lambda b: b, "br": brotli.decompress, "gzip": gzip.decompress,
        "zstd": lambda b: zstandard.ZstdDecompressor().decompress(b),
    }[coding](body)
    assert decoded == SCRIPT
    suffix = {None: "", "br": ".br", "gzip": ".gz", "zstd": ".zst"}[coding]
    assert body == (tree / f"app.js{suffix}").read_bytes()
    # Each file its own validator.
    stat = os.stat(tree / f"app.js{suffix}")
    assert headers["etag"] == f'"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"'


def test_ranges_of_a_precompressed_answer(srv, tree):
    compressed = (tree / "noise.txt.gz").read_bytes()
    assert len(compressed) > 1000
    status, headers, body = get(srv, "/static/noise.txt", {"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
    assert (status, headers["content-encoding"], body) == (206, "gzip", compressed[:10])
    assert headers["content-range"] == f"bytes 0-9/{len(compressed)}"
    # Several ranges: the whole compressed file, not a multipart body under
    # Content-Encoding; the same ranges of the file itself are multipart.
    ranges = {"Range": "bytes=0-1,-1"}
    status, headers, body = get(srv, "/static/noise.txt", {"Accept-Encoding": "gzip", **ranges})
    assert (status, headers["content-encoding"], body) == (200, "gzip", compressed)
    status, headers, body = get(srv, "/static/noise.txt", {"Accept-Encoding": "identity", **ranges})
    assert status == 206 and headers["content-type"].startswith("multipart/byteranges")


def test_only_the_siblings_that_exist(srv):
    status, headers, body = get(srv, "/static/style.css", {"Accept-Encoding": "br, zstd"})
    assert (status, body, headers.get("content-encoding")) == (200, b"body{}\n", None)
    assert headers["vary"].lower() == "accept-encoding"
    status, headers, _ = get(srv, "/static/style.css", {"Accept-Encoding": "br, gzip"})
    assert headers.get("content-encoding") == "gzip"


def test_no_siblings_on_a_mount_without_precompressed(srv):
    status, headers, body = get(srv, "/open/app.js", {"Accept-Encoding": "br, gzip, zstd"})
    assert (status, body) == (200, SCRIPT)
    assert "content-encoding" not in headers and "vary" not in headers and "cache-control" not in headers


def test_a_sibling_is_not_served_by_its_own_name_with_another_coding(srv):
    # The sibling itself, asked for by name, is a plain file of its own type.
    status, headers, _ = get(srv, "/static/app.js.gz", {"Accept-Encoding": "gzip"})
    assert status == 200 and "content-encoding" not in headers


# -- directories ------------------------------------------------------------------------


def test_directories_redirect_and_index(srv):
    for target, location in [
        ("/static/docs", "/static/docs/"),
        ("/static/docs?v=1&x", "/static/docs/?v=1&x"),
        ("/static", "/static/"),
    ]:
        response = raw(srv, target)
        assert response.status == 301, target
        assert response.header("location") == location
    status, headers, body = get(srv, "/static/docs/")
    assert (status, body, headers["content-type"]) == (200, b"<h1>docs</h1>\n", "text/html; charset=utf-8")
    status, _, body = get(srv, "/static/")
    assert (status, body) == (200, b"<h1>home</h1>\n")
    # No index file: not found (no listing); no index on the mount: not found.
    assert get(srv, "/static/empty/")[0] == 404
    assert get(srv, "/open/docs/")[0] == 404
    # A file asked for as a directory.
    assert get(srv, "/static/hello.txt/")[0] == 404


def test_missing_files_are_not_found_here_not_passed_to_wsgi(srv):
    # The mount answers for every path under its prefix (the WSGI app's own
    # 404 says "not found").
    for path in ["/static/nope.txt", "/static/.env", "/static/%2e%2e/x"]:
        assert get(srv, path)[::2] == (404, b"404 Not Found\n"), path
    assert get(srv, "/staticx/hello.txt")[::2] == (404, b"not found")
    assert get(srv, "/")[::2] == (200, b"hello")


def test_a_file_replaced_on_disk_is_served_anew_within_a_second(srv, tree):
    # Files found stay found for up to a second (runtime::static_files::mount,
    # FOUND_VALID); a file replaced by a rename, as deployments replace them,
    # is then served with its new content and validators.
    path = tree / "replaced.txt"
    path.write_bytes(b"first\n")
    status, headers, body = get(srv, "/static/replaced.txt")
    assert (status, body) == (200, b"first\n")
    new = tree / ".replaced.txt.new"
    new.write_bytes(b"second version\n")
    new.rename(path)
    deadline = time.monotonic() + 10
    while (answer := get(srv, "/static/replaced.txt"))[2] != b"second version\n" and time.monotonic() < deadline:
        # Served from what was found, whole and consistent: the old content
        # with its own validators.
        assert answer[:3:2] == (200, b"first\n")
        assert answer[1]["etag"] == headers["etag"]
        time.sleep(0.05)
    status, new_headers, body = get(srv, "/static/replaced.txt")
    assert (status, body) == (200, b"second version\n")
    assert new_headers["etag"] != headers["etag"]
    assert new_headers["content-length"] == "15"


def test_other_methods_are_not_allowed(srv):
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"]:
        body = None if method == "OPTIONS" else b"x"
        status, headers, _ = http_request(srv.port, method, "/static/hello.txt", body=body)
        assert (status, headers["allow"]) == (405, "GET, HEAD"), method


def test_names_are_percent_decoded_once(srv):
    assert get(srv, "/static/a%20b.txt")[2] == b"space\n"
    assert get(srv, "/static/hello%2etxt")[2] == HELLO
    assert get(srv, "/static/hello%252etxt")[0] == 404


# -- never outside the root --------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "/static/../secret.txt",
    "/static/../../secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E/secret.txt",
    "/static/%2E./secret.txt",
    "/static/.%2e/secret.txt",
    "/static/..%2fsecret.txt",
    "/static/..%2Fsecret.txt",
    "/static/docs/..%2f..%2fsecret.txt",
    "/static/..%5csecret.txt",
    "/static/..\\secret.txt",
    "/static/hello.txt%00.png",
    "/static//etc/passwd",
    "/static/%2fetc/passwd",
    "/static/leak.txt",
    "/static/leakdir/secret.txt",
    "/static/.env",
    "/static/%2eenv",
    "/static/.git/config",
    "/open/../secret.txt",
    "/open/%2e%2e/secret.txt",
])
def test_traversal_attempts_are_not_found(srv, target):
    response = raw(srv, target)
    assert response.status in (400, 404), (target, response.status)
    assert b"SECRET" not in response.body and b"hunter2" not in response.body and b"root:" not in response.body


def test_only_regular_files(srv, tree):
    # A FIFO is not a file (and opening it cannot hold a thread); nor is a directory.
    fifo = tree / "pipe"
    if not fifo.exists():
        os.mkfifo(fifo)
    assert get(srv, "/static/pipe")[::2] == (404, b"404 Not Found\n")
    assert get(srv, "/static/docs/")[0] == 200


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_forbidden(srv, tree):
    locked = tree / "locked.txt"
    locked.write_bytes(b"locked")
    locked.chmod(0)
    assert get(srv, "/static/locked.txt")[0] == 403


def test_links_and_dotfiles_where_the_mount_allows_them(srv):
    assert get(srv, "/static/alias.txt")[2] == HELLO  # a link inside the root
    assert get(srv, "/open/leak.txt")[2] == b"TOP SECRET\n"  # follow_symlinks
    assert get(srv, "/open/.env")[2] == b"PASSWORD=hunter2\n"  # dotfiles


# -- HTTP/2 and TLS ----------------------------------------------------------------------


def check_client(client: httpx.Client, base: str, version: str) -> None:
    r = client.get(f"{base}/static/hello.txt")
    assert (r.status_code, r.content, r.http_version) == (200, HELLO, version)
    assert r.headers["content-type"] == "text/plain; charset=utf-8" and r.headers["cache-control"] == IMMUTABLE
    etag = r.headers["etag"]
    r = client.get(f"{base}/static/hello.txt", headers={"If-None-Match": etag})
    assert (r.status_code, r.content) == (304, b"")
    r = client.head(f"{base}/static/big.bin")
    assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", str(len(BIG)))
    r = client.get(f"{base}/static/big.bin")
    assert r.status_code == 200 and r.content == BIG
    r = client.get(f"{base}/static/big.bin", headers={"Range": "bytes=100-199"})
    assert (r.status_code, r.content) == (206, BIG[100:200])
    r = client.get(f"{base}/static/big.bin", headers={"Range": "bytes=0-0,-1"})
    assert r.status_code == 206
    assert [d for _, d in parse_multipart(r.headers["content-type"], r.content)] == [BIG[:1], BIG[-1:]]
    r = client.get(f"{base}/static/big.bin", headers={"Range": "bytes=99999999-"})
    assert (r.status_code, r.headers["content-range"]) == (416, f"bytes */{len(BIG)}")
    r = client.get(f"{base}/static/app.js", headers={"Accept-Encoding": "br"})
    assert (r.status_code, r.headers["content-encoding"], r.content) == (200, "br", SCRIPT)
    r = client.get(f"{base}/static/docs", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (301, "/static/docs/")
    r = client.post(f"{base}/static/hello.txt", content=b"x")
    assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD")
    r = client.get(f"{base}/static/%2e%2e/secret.txt")
    assert r.status_code == 404


def test_http2_cleartext(srv):
    with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as client:
        check_client(client, srv.url, "HTTP/2")


@pytest.mark.parametrize("http2", [False, True])
def test_tls(tls_srv, pki, http2):
    with httpx.Client(http1=not http2, http2=http2, verify=pki.ecdsa.client_context(),
                      timeout=CLIENT_TIMEOUT) as client:
        check_client(client, tls_srv.tls_url, "HTTP/2" if http2 else "HTTP/1.1")


# -- no Python in the way ----------------------------------------------------------------


def test_static_files_while_every_python_thread_is_busy(srv, tmp_path):
    release = tmp_path / f"release-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex
    mark = srv.mark()
    outcome: dict[str, object] = {}

    def blocked() -> None:
        try:
            outcome["response"] = http_request(srv.port, "GET", f"/block?release={release}&token={token}")
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=blocked)
    thread.start()
    try:
        srv.wait_for_line(f"BLOCK-STARTED {token}", mark)
        # The only Python thread is held; static files are still answered,
        # over HTTP/1.1 (sendfile) and HTTP/2.
        status, _, body = get(srv, "/static/big.bin")
        assert status == 200 and body == BIG
        with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as client:
            r = client.get(f"{srv.url}/static/app.js", headers={"Accept-Encoding": "gzip"})
            assert (r.status_code, r.content) == (200, SCRIPT)
        assert "response" not in outcome  # still blocked
    finally:
        release.touch()
        thread.join(CLIENT_TIMEOUT)
    assert outcome.get("response", (None, None, None))[2] == b"released", outcome


@pytest.mark.parametrize("args", [(), ("--buffer-body",)])
def test_a_static_request_body_is_not_waited_for(servers, tree, args):
    server = servers.start(mounts_for(tree), *args)
    # A declared body never sent: the answer comes at once, without reading
    # it ahead (the read-ahead of small bodies, --buffer-body).
    with RawConnection(server.port, timeout=10) as conn:
        conn.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        response = conn.read_response("GET")
    assert (response.status, response.body) == (200, HELLO)
    server.stop()


# -- bad mounts --------------------------------------------------------------------------


@pytest.mark.parametrize(("mount", "message"), [
    ({"prefix": "/s", "directory": "/nonexistent/propylon"}, "cannot serve directory"),
    ({"prefix": "/s", "directory": __file__}, "is not a directory"),
    ({"prefix": "/s", "directory": "/tmp", "index": "../x"}, "is not a file name"),
    ({"prefix": "/s", "directory": "/tmp", "cache_control": "a\nb"}, "is not a field value"),
])
def test_a_bad_mount_is_one_line(mount, message):
    result = subprocess.run([sys.executable, RUNNER, json.dumps([mount]), APP, "--bind", "127.0.0.1:0"],
                            capture_output=True, text=True, cwd=REPO, timeout=30,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("propylon: error: static mount"), result.stderr
    assert message in lines[0]
