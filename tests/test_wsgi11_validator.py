"""``propylon.wsgi11.validator``: both sides of the interface, checked against WSGI 1.1.

The server's side is played by :class:`tests.wsgi11.gateway.Gateway`, made
to break one rule at a time (the way gunicorn, waitress, wsgiref or mod_wsgi
do by themselves, or worse); the application's side by small applications
that break one rule each. Every breach must raise :class:`WSGIViolation`
whose message names the side at fault and the rule; a correct exchange,
including one through :class:`WSGI11Middleware`, must raise nothing.
"""

from __future__ import annotations

import gc
import io
import sys
from collections.abc import Callable
from typing import Any

import pytest

from propylon.filewrapper import FileWrapper
from propylon.wsgi11 import WSGI11Middleware, WSGIViolation, validator
from tests.wsgi11.gateway import Gateway, open_fds

WSGI11 = {"wsgi.version": (1, 1), "wsgi.input_terminated": True}


def server(body: bytes = b"", **kw: Any) -> Gateway:
    """A gateway that claims WSGI 1.1 (tests then break one thing)."""
    gateway = Gateway(body, **kw)
    gateway.environ.update(WSGI11)
    gateway.environ["wsgi.file_wrapper"] = kw.get("file_wrapper", FileWrapper)
    return gateway


def ok_app(environ: dict[str, Any], start_response: Callable) -> list[bytes]:
    data = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


def test_a_correct_exchange_passes():
    gateway = server(b"hello", content_length="5")
    assert gateway.run(validator(ok_app)) == b"hello"


def test_the_middleware_makes_a_pep3333_server_pass():
    # wsgiref-style environ: (1, 0), CONTENT_LENGTH "", no input_terminated, no file_wrapper class.
    gateway = Gateway(b"3\r\nabc\r\n0\r\n\r\n", HTTP_TRANSFER_ENCODING="chunked")
    gateway.environ["CONTENT_LENGTH"] = ""
    assert gateway.run(WSGI11Middleware(validator(ok_app))) == b"abc"


# ------------------------------------------------------------------- server side


def shadowing_wrapper(filelike, blksize=8192):
    return FileWrapper(filelike, blksize)


class ShadowingClass:
    def __init__(self, filelike, blksize=8192):
        self.filelike, self.blksize = filelike, blksize
        self.close = filelike.close


class WrongAttributes:
    def __init__(self, file, block_size=8192):
        self.file, self.block_size = file, block_size

    def close(self):
        self.file.close()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"wsgi.version": (1, 0)}, r"wsgi.version is \(1, 0\), expected the tuple \(1, 1\)"),
        ({"wsgi.version": [1, 1]}, "wsgi.version is"),
        ({"wsgi.input_terminated": None}, "wsgi.input_terminated is '<absent>', expected True"),
        ({"CONTENT_LENGTH": ""}, "CONTENT_LENGTH is '': it must be the exact length, or absent"),
        ({"CONTENT_LENGTH": "12abc"}, "CONTENT_LENGTH is '12abc'"),
        ({"HTTP_CONTENT_LENGTH": "5"}, "environ has HTTP_CONTENT_LENGTH"),
        ({"wsgi.url_scheme": "ftp"}, "wsgi.url_scheme"),
        ({"wsgi.multithread": None}, "environ has no wsgi.multithread"),
        ({"SERVER_PORT": 80}, r"environ\['SERVER_PORT'\] is int, not str"),
        ({"wsgi.file_wrapper": shadowing_wrapper}, "not a class"),
        ({"wsgi.file_wrapper": ShadowingClass}, "assigns close on the instance"),
        ({"wsgi.file_wrapper": WrongAttributes}, "keep its arguments as .filelike and .blksize"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_server_environ_breaches(change, message):
    gateway = server()
    for key, value in change.items():
        if value is None:
            gateway.environ.pop(key, None)
        else:
            gateway.environ[key] = value
    with pytest.raises(WSGIViolation, match=f"WSGI 1.1 server: .*{message}"):
        gateway.run(validator(ok_app))


def test_server_input_past_content_length():
    gateway = server(b"helloEXTRA", content_length="5")  # a stream that does not stop at the body
    with pytest.raises(WSGIViolation, match="returned 10 bytes, more than CONTENT_LENGTH 5"):
        gateway.run(validator(ok_app))


def test_server_input_ending_early_without_an_error():
    gateway = server(b"hel", content_length="5")  # a server that lies in CONTENT_LENGTH, or hides a disconnect
    with pytest.raises(WSGIViolation, match="ended after 3 of 5 bytes without raising an OSError"):
        gateway.run(validator(ok_app))


def test_server_input_not_terminated():
    # A stream that said b"" (end of body), then produced more: not terminated (section 1).
    class EndThenMore(io.BytesIO):
        calls = 0

        def read(self, n=-1):
            EndThenMore.calls += 1
            return b"" if EndThenMore.calls == 1 else b"late"

    gateway = server()
    gateway.environ["wsgi.input"] = EndThenMore()

    def reads_twice(environ, start_response):
        environ["wsgi.input"].read(4)
        environ["wsgi.input"].read(4)
        start_response("200 OK", [])
        return []

    with pytest.raises(WSGIViolation, match="returned bytes after the end of the body"):
        gateway.run(validator(reads_twice))


def test_server_input_raising_something_else_than_oserror():
    class Broken(io.BytesIO):
        def read(self, n=-1):
            raise KeyError("not an OSError")

    gateway = server(content_length="5")
    gateway.environ["wsgi.input"] = Broken()
    with pytest.raises(WSGIViolation, match=r"raised KeyError.*must raise an OSError"):
        gateway.run(validator(ok_app))


def test_server_that_never_closes_the_response_is_reported():
    reported = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = lambda args: reported.append(str(args.exc_value))
    try:
        gateway = server(method="GET")
        response = validator(lambda e, s: (s("200 OK", []), [b""])[-1])(gateway.environ, gateway.start_response)
        list(response)
        del response
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert any("garbage collected without being closed" in r for r in reported), reported


def test_server_closing_twice_is_reported():
    gateway = server(method="GET")
    response = validator(lambda e, s: (s("200 OK", []), [b""])[-1])(gateway.environ, gateway.start_response)
    list(response)
    response.close()
    with pytest.raises(WSGIViolation, match="called close\\(\\) on the response twice"):
        response.close()


# -------------------------------------------------------------- application side


def app_with(status: str = "200 OK", headers: list | None = None, body: Any = (b"",), *,
             twice: bool = False, write: Any = None) -> Callable:
    def app(environ, start_response):
        w = start_response(status, headers if headers is not None else [("Content-Type", "text/plain")])
        if twice:
            start_response(status, [])
        if write is not None:
            w(write)
        return body

    return app


@pytest.mark.parametrize(
    ("app", "message"),
    [
        (app_with("200"), "status '200' must be three digits, a space and a reason phrase"),
        (app_with("100 Continue"), "1xx statuses cannot be WSGI responses"),
        (app_with(headers=[("Connection", "close")]), "hop-by-hop header 'Connection'"),
        (app_with(headers=[("Transfer-Encoding", "chunked")]), "hop-by-hop header"),
        (app_with(headers=[("X-A", "caf\u00e9\u20ac")]), "latin-1 str without control characters"),
        (app_with(headers=[("X-A", "a\r\nX-Injected: 1")]), "without control characters"),
        (app_with(headers=[("Bad Name", "a")]), "not a valid token"),
        (app_with(headers=(("X-A", "a"),)), "headers must be a list"),
        (app_with(headers=[("Content-Length", "ten")]), "Content-Length 'ten' is not a number"),
        (app_with(headers=[("Content-Length", "1"), ("Content-Length", "2")]), "several different Content-Length"),
        (app_with(body=["text"]), "yielded str, not bytes"),
        (app_with(body=b"bytes"), "returned bytes instead of an iterable of bytes"),
        (app_with(body=None), "returned None"),
        (app_with(twice=True), "called a second time without exc_info"),
        (app_with(write="text"), "write\\(\\) takes bytes, got str"),
        (app_with(headers=[("Content-Length", "3")], body=[b"abcd"]), "more than its Content-Length 3"),
        (app_with(headers=[("Content-Length", "5")], body=[b"abc"]), "fewer than its Content-Length 5"),
        (lambda e, s: [b"x"], "before calling start_response"),
    ],
)
def test_application_breaches(app, message):
    with pytest.raises(WSGIViolation, match=f"WSGI 1.1 application: .*{message}"):
        server(method="GET").run(validator(app))


def test_head_and_304_are_not_short():
    for method, status in (("HEAD", "200 OK"), ("GET", "304 Not Modified")):
        server(method=method).run(validator(app_with(status, [("Content-Length", "100")], [])))


def test_application_closing_the_input():
    def app(environ, start_response):
        environ["wsgi.input"].close()
        return []

    with pytest.raises(WSGIViolation, match=r"called wsgi\.input\.close"):
        server().run(validator(app))


def test_read_variants_of_wsgi11_are_allowed():
    def app(environ, start_response):
        stream = environ["wsgi.input"]
        parts = [stream.read(2), stream.readline(), stream.read(None), stream.read(-1), stream.read()]
        start_response("200 OK", [])
        return [b"|".join(parts)]

    assert server(b"ab\ncdef", content_length="7").run(validator(app)) == b"ab|\n|cdef||"


def test_file_wrapper_over_a_closed_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    before = open_fds()

    def app(environ, start_response):
        f = open(path, "rb")  # noqa: SIM115
        f.close()
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](f)

    with pytest.raises(WSGIViolation, match="file_wrapper over a closed file"):
        server(method="GET").run(validator(app))
    assert open_fds() == before


def test_file_wrapper_over_a_text_file(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("text")

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](open(path))

    with pytest.raises(WSGIViolation, match="over a text file; open it in binary mode"):
        server(method="GET").run(validator(app))


def test_file_wrapper_reaches_the_server_unwrapped(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    gateway = server(method="GET")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "100")])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    result = validator(app)(gateway.environ, gateway.start_response)
    assert type(result) is FileWrapper  # so the server's isinstance() test and fast path still apply
    result.close()
