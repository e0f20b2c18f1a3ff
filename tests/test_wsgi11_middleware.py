"""``propylon.wsgi11``: the middleware, its input stream, and bad input, without a server.

Each test plays the server's part with a minimal PEP 3333 gateway
(:class:`Gateway`: a ``wsgiref``-style environ, a byte stream for
``wsgi.input``, and a ``start_response`` that records), so every corner the
real servers of tests/test_wsgi11_conformance.py do not reach can be driven
exactly: a server that lies in ``CONTENT_LENGTH``, a server that never calls
``close()``, a file wrapper over a closed file, bodies that are not bytes.

File descriptor leaks are checked by counting this process's open
descriptors (``/proc/self/fd``) before and after.
"""

from __future__ import annotations

import ctypes
import gc
import io
import os
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from propylon.errors import ClientDisconnected, InvalidRequestBody, RequestBodyError, RequestBodyTooLarge
from propylon.filewrapper import FileWrapper
from propylon.wsgi11 import ResponseTooShort, WSGI11Middleware, apache, is_wsgi11, validator
from propylon.wsgi11.input import ChunkedDecoder, TerminatedInput
from tests.support import REPO
from tests.wsgi11.gateway import Gateway, open_fds


def echo(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    data = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(data)))])
    return [data]


# ------------------------------------------------------------------- importing


def test_imports_without_the_compiled_server():
    code = (
        "import sys; sys.modules['propylon._core'] = None\n"
        "import propylon.wsgi11, propylon.wsgi11.conformance, propylon.wsgi11.conformance.report\n"
        "from propylon.wsgi11 import WSGI11Middleware, validator, FileWrapper\n"
        "import propylon\n"
        "assert FileWrapper is propylon.FileWrapper\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert out.stdout.strip() == "ok", out.stderr


def test_is_wsgi11_needs_both_keys():
    assert is_wsgi11({"wsgi.version": (1, 1), "wsgi.input_terminated": True})
    assert not is_wsgi11({"wsgi.version": (1, 1)})  # an older server that only said (1, 1)
    assert not is_wsgi11({"wsgi.version": (1, 0), "wsgi.input_terminated": True})
    assert not is_wsgi11({"wsgi.version": (1, 1), "wsgi.input_terminated": "yes"})
    assert not is_wsgi11({})


# ------------------------------------------------------------------------- input


BODY = b"one\ntwo\n\nfour is long\nfive"


def terminated(body: bytes, length: int | None, **kw: Any) -> TerminatedInput:
    return TerminatedInput(io.BytesIO(body), length=length, terminated=kw.pop("terminated", False),
                           limit=kw.pop("limit", 1 << 20))


@pytest.mark.parametrize("extra", [b"", b"GET /next HTTP/1.1\r\n\r\n"])
def test_input_stops_at_content_length(extra):
    stream = terminated(BODY + extra, len(BODY))
    assert b"".join(iter(lambda: stream.read(3), b"")) == BODY
    assert [stream.read(3), stream.read(), stream.readline(), stream.readlines()] == [b"", b"", b"", []]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (lambda s: [s.read()], [BODY]),
        (lambda s: [s.read(-1)], [BODY]),
        (lambda s: [s.read(None)], [BODY]),
        (lambda s: list(iter(s.readline, b"")), BODY.splitlines(True)),
        (lambda s: list(iter(lambda: s.readline(3), b"")), [b"one", b"\n", b"two", b"\n", b"\n", b"fou", b"r i",
                                                             b"s l", b"ong", b"\n", b"fiv", b"e"]),
        (lambda s: s.readlines(), BODY.splitlines(True)),
        (lambda s: s.readlines(5), [b"one\n", b"two\n"]),
        (lambda s: list(s), BODY.splitlines(True)),
    ],
    ids=["read", "read-1", "read-none", "readline", "readline-size", "readlines", "readlines-hint", "iter"],
)
def test_input_methods(method, expected):
    stream = terminated(BODY + b"next request", len(BODY))
    assert method(stream) == expected


def test_input_without_length_on_a_server_that_does_not_end_it_is_empty():
    # PEP 3333: no CONTENT_LENGTH means no body; reading the connection would block.
    raw = io.BytesIO(b"bytes of the next request")
    stream = TerminatedInput(raw, length=None, terminated=False, limit=100)
    assert stream.read() == b"" and raw.tell() == 0


def test_server_that_lies_short_in_content_length_is_an_error_not_an_end():
    # CONTENT_LENGTH says 100; the stream ends after 50: a truncated body, never b"".
    stream = terminated(b"x" * 50, 100)
    assert stream.read(50) == b"x" * 50
    with pytest.raises(ClientDisconnected, match="ended after 50 of 100 bytes"):
        stream.read(10)
    with pytest.raises(ClientDisconnected):  # and stays an error
        stream.read()


def test_server_that_lies_long_in_content_length_gives_only_the_declared_bytes():
    stream = terminated(b"x" * 50 + b"y" * 50, 50)
    assert stream.read() == b"x" * 50


def test_server_stream_errors_become_request_body_errors():
    class Broken(io.RawIOBase):
        def read(self, n=-1):
            raise RuntimeError("socket exploded")

    stream = TerminatedInput(Broken(), length=10, terminated=False, limit=100)
    with pytest.raises(RequestBodyError, match="socket exploded") as info:
        stream.read()
    assert isinstance(info.value, OSError)


def test_server_stream_returning_str_is_an_error():
    stream = TerminatedInput(io.StringIO("text"), length=4, terminated=False, limit=100)
    with pytest.raises(RequestBodyError, match="returned str, not bytes"):
        stream.read()


def test_limit_on_a_body_of_unknown_length():
    stream = TerminatedInput(io.BytesIO(b"x" * 1000), length=None, terminated=True, limit=999)
    with pytest.raises(RequestBodyTooLarge):
        stream.read()


@pytest.mark.parametrize(
    ("framed", "expected"),
    [
        (b"3\r\none\r\n4\r\n two\r\n0\r\n\r\nNEXT", b"one two"),
        (b"3;ext=1\r\none\r\n0\r\nTrailer: x\r\n\r\n", b"one"),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
    ],
)
def test_chunked_decoder(framed, expected):
    raw = io.BytesIO(framed)
    stream = TerminatedInput(ChunkedDecoder(raw), length=None, terminated=True, limit=100)
    assert stream.read() == expected
    assert stream.read() == b""
    assert raw.read() in (b"NEXT", b"")  # never past the last chunk


@pytest.mark.parametrize(
    ("framed", "error"),
    [
        (b"zz\r\nxx\r\n0\r\n\r\n", InvalidRequestBody),
        (b"3\r\nonetwo\r\n", InvalidRequestBody),
        (b"5\r\none", ClientDisconnected),
        (b"3\r\none\r\n", ClientDisconnected),
        (b"3" * 5000 + b"\r\n", InvalidRequestBody),
    ],
    ids=["bad-size", "no-crlf", "eof-in-chunk", "eof-before-last-chunk", "long-line"],
)
def test_chunked_decoder_errors(framed, error):
    stream = TerminatedInput(ChunkedDecoder(io.BytesIO(framed)), length=None, terminated=True, limit=1 << 20)
    with pytest.raises(error):
        stream.read()


# -------------------------------------------------------------------- middleware


def test_environ_is_wsgi11():
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [])
        return []

    Gateway(b"", content_length="").run(WSGI11Middleware(app))
    assert seen["wsgi.version"] == (1, 1)
    assert seen["wsgi.input_terminated"] is True
    assert seen["wsgi.file_wrapper"] is FileWrapper
    assert "CONTENT_LENGTH" not in seen  # wsgiref's "" becomes absent (section 3)


def test_header_copies_of_content_type_and_length_are_removed():
    # nginx passes every request header to FastCGI, SCGI and uwsgi gateways
    # as HTTP_*, Content-Type and Content-Length included (RFC 3875 §4.1.18).
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [])
        return []

    gateway = Gateway(BODY, content_length=str(len(BODY)), CONTENT_TYPE="text/plain",
                      HTTP_CONTENT_TYPE="text/plain", HTTP_CONTENT_LENGTH=str(len(BODY)))
    gateway.run(WSGI11Middleware(validator(app)))
    assert "HTTP_CONTENT_TYPE" not in seen and "HTTP_CONTENT_LENGTH" not in seen
    assert (seen["CONTENT_TYPE"], seen["CONTENT_LENGTH"]) == ("text/plain", str(len(BODY)))
    gateway = Gateway(b"", HTTP_CONTENT_TYPE="text/plain")
    gateway.environ.pop("CONTENT_TYPE", None)
    gateway.run(WSGI11Middleware(app))
    assert seen["CONTENT_TYPE"] == "text/plain"  # the copy is the only one: kept, under its CGI name


def test_pipelined_bytes_never_reach_the_application():
    gateway = Gateway(BODY + b"GET /next HTTP/1.1\r\n\r\n", content_length=str(len(BODY)))
    assert gateway.run(WSGI11Middleware(echo)) == BODY


def test_raw_chunked_body_is_dechunked():
    gateway = Gateway(b"3\r\none\r\n0\r\n\r\n", HTTP_TRANSFER_ENCODING="chunked")
    assert gateway.run(WSGI11Middleware(echo)) == b"one"


def test_chunked_body_from_a_server_that_dechunks_is_read_as_is():
    gateway = Gateway(b"3\r\none\r\n0\r\n\r\n", terminated=True, HTTP_TRANSFER_ENCODING="chunked")
    assert gateway.run(WSGI11Middleware(echo)) == b"3\r\none\r\n0\r\n\r\n"


def test_declared_body_over_the_limit_is_refused_without_calling_the_application():
    called = []
    gateway = Gateway(b"x" * 11, content_length="11")
    gateway.run(WSGI11Middleware(lambda e, s: called.append(1) or echo(e, s), max_body_size=10))
    assert (gateway.status, called) == ("413 Content Too Large", [])


def test_streamed_body_over_the_limit_propagated_is_413():
    gateway = Gateway(b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n", HTTP_TRANSFER_ENCODING="chunked")
    gateway.run(WSGI11Middleware(echo, max_body_size=5))
    assert gateway.status == "413 Content Too Large"


def test_truncated_body_propagated_is_400_never_a_short_body():
    gateway = Gateway(b"x" * 5, content_length="10")
    body = gateway.run(WSGI11Middleware(echo))
    assert gateway.status == "400 Bad Request" and body == b"Incomplete request body\n"
    assert "ended after 5 of 10 bytes" in gateway.errors.getvalue()


def test_body_error_in_a_generator_before_any_byte_is_still_answered():
    def lazy(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield environ["wsgi.input"].read()

    gateway = Gateway(b"x" * 5, content_length="10")
    gateway.run(WSGI11Middleware(lazy))
    assert gateway.status == "400 Bad Request"


def test_invalid_content_length_from_the_server():
    gateway = Gateway(b"", content_length="-1")
    gateway.run(WSGI11Middleware(echo))
    assert gateway.status == "400 Bad Request"


def test_buffered_mode_sets_exact_content_length_and_cleans_up():
    seen = {}

    def app(environ, start_response):
        seen["length"] = environ.get("CONTENT_LENGTH")
        return echo(environ, start_response)

    before = open_fds()
    framed = b"".join(b"%x\r\n%s\r\n" % (1000, b"z" * 1000) for _ in range(5)) + b"0\r\n\r\n"
    gateway = Gateway(framed, HTTP_TRANSFER_ENCODING="chunked")
    body = gateway.run(WSGI11Middleware(app, buffer_body=True, buffer_memory_limit=100))  # spills to a file
    assert (seen["length"], body) == ("5000", b"z" * 5000)
    gc.collect()
    assert open_fds() == before


def test_buffered_mode_never_calls_the_application_with_a_truncated_body():
    called = []
    gateway = Gateway(b"5\r\nhel", HTTP_TRANSFER_ENCODING="chunked")
    gateway.run(WSGI11Middleware(lambda e, s: called.append(1) or echo(e, s), buffer_body=True))
    assert (gateway.status, called) == ("400 Bad Request", [])


# ---------------------------------------------------------------------- responses


def producing(declared: int | None, chunks: list[Any], via: str = "iter", status: str = "200 OK") -> Callable:
    def app(environ, start_response):
        headers = [("Content-Type", "text/plain")]
        if declared is not None:
            headers.append(("Content-Length", str(declared)))
        write = start_response(status, headers)
        if via == "write":
            for chunk in chunks:
                write(chunk)
            return []
        return iter(chunks)

    return app


@pytest.mark.parametrize("via", ["iter", "write"])
def test_surplus_is_dropped_and_logged(via):
    gateway = Gateway(method="GET")
    body = gateway.run(WSGI11Middleware(producing(5, [b"abc", b"defgh", b"ij"], via)))
    assert body == b"abcde"
    assert "more body bytes than its Content-Length (5)" in gateway.errors.getvalue()


@pytest.mark.parametrize("via", ["iter", "write"])
def test_short_response_fails_at_its_end(via):
    gateway = Gateway(method="GET")
    with pytest.raises(ResponseTooShort, match="produced 3 body bytes but declared Content-Length 5"):
        gateway.run(WSGI11Middleware(producing(5, [b"abc"], via)))
    assert b"".join(gateway.written) == b"abc"


def _capsule() -> object:
    """A capsule like mod_wsgi's ``apache.request_rec`` (it is never dereferenced here)."""
    new = ctypes.pythonapi.PyCapsule_New
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    return new(ctypes.c_void_p(0x1000), None, None)


@pytest.mark.parametrize("extra", [
    {},  # not mod_wsgi
    {"apache.request_rec": "look-alike"},  # mod_wsgi's key, on another server
    {"apache.request_rec": "capsule", "mod_wsgi.version": (4, 9, 4)},  # mod_wsgi's keys, no Apache here
])
def test_short_response_outside_apache_is_the_same_clear_error(extra):
    # propylon.wsgi11.apache closes the connection only inside mod_wsgi with a
    # request_rec (the conformance run in tests/test_wsgi11_conformance.py
    # shows it doing so on Apache); anywhere else it declines, and the short
    # response is the same ResponseTooShort.
    if extra.get("apache.request_rec") == "capsule":
        extra = {**extra, "apache.request_rec": _capsule()}
    gateway = Gateway(method="GET", **extra)
    with pytest.raises(ResponseTooShort):
        gateway.run(WSGI11Middleware(producing(5, [b"abc"], "iter")))
    assert b"".join(gateway.written) == b"abc"
    assert apache.close_connection(gateway.environ) is False


@pytest.mark.parametrize(("method", "status"), [("HEAD", "200 OK"), ("GET", "304 Not Modified"),
                                                 ("GET", "204 No Content")])
def test_responses_without_a_body_are_not_short(method, status):
    gateway = Gateway(method=method)
    assert gateway.run(WSGI11Middleware(producing(100, [], status=status))) == b""


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (["text"], "yielded str, not bytes"),
        ([b"ok", 3], "yielded int, not bytes"),
        (b"bytes", "returned bytes, not an iterable of bytes"),
        ("text", "returned str, not an iterable of bytes"),
    ],
)
def test_non_bytes_bodies_are_clear_errors(result, message):
    def app(environ, start_response):
        start_response("200 OK", [])
        return result

    with pytest.raises(TypeError, match=message):
        Gateway(method="GET").run(WSGI11Middleware(app))


def test_write_of_str_is_a_clear_error():
    with pytest.raises(TypeError, match=r"write\(\) takes bytes, not str"):
        Gateway(method="GET").run(WSGI11Middleware(producing(None, ["text"], via="write")))


def test_body_before_start_response_is_a_clear_error():
    with pytest.raises(AssertionError, match="before calling start_response"):
        Gateway(method="GET").run(WSGI11Middleware(lambda e, s: [b"x"]))


class Recorded:
    def __init__(self, chunks: list[bytes], fail: bool = False) -> None:
        self.chunks, self.fail, self.closed = chunks, fail, 0

    def __iter__(self):
        yield from self.chunks
        if self.fail:
            raise RuntimeError("failed mid-body")

    def close(self) -> None:
        self.closed += 1


def test_close_is_called_once_even_if_the_server_calls_it_twice():
    result = Recorded([b"ab"])

    def app(environ, start_response):
        start_response("200 OK", [])
        return result

    response = WSGI11Middleware(app)(Gateway(method="GET").environ, Gateway().start_response)
    list(response)
    response.close()
    response.close()
    assert result.closed == 1


def test_close_is_called_when_the_server_forgets():
    result = Recorded([b"ab"])

    def app(environ, start_response):
        start_response("200 OK", [])
        return result

    response = WSGI11Middleware(app)(Gateway(method="GET").environ, Gateway().start_response)
    next(iter(response))
    del response  # a server that drops the response without close()
    gc.collect()
    assert result.closed == 1


def test_close_after_an_error_in_iteration():
    result = Recorded([b"ab"], fail=True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return result

    with pytest.raises(RuntimeError):
        Gateway(method="GET").run(WSGI11Middleware(app))
    assert result.closed == 1


def test_exc_info_replaces_a_held_head():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("oops")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"error"]

    gateway = Gateway(method="GET")
    assert gateway.run(WSGI11Middleware(app)) == b"error"
    assert (gateway.status, gateway.calls) == ("500 Internal Server Error", 1)


def test_second_start_response_without_exc_info_is_an_error():
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return []

    with pytest.raises(AssertionError, match="second time without exc_info"):
        Gateway(method="GET").run(WSGI11Middleware(app))


# ------------------------------------------------------------------ file wrappers


def data_file(tmp_path: Path, size: int = 100_000) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(i % 251 for i in range(size)))
    return path


def file_app(path: Path, *, declared: int | None = None, skip: int = 0, closed: bool = False,
             wrapper_class: Any = None, text: bool = False) -> Callable:
    def app(environ, start_response):
        f = open(path, "r" if text else "rb")  # noqa: SIM115 - closed by the wrapper
        if skip:
            f.read(skip)
        if closed:
            f.close()
        headers = [] if declared is None else [("Content-Length", str(declared))]
        start_response("200 OK", headers)
        return (wrapper_class or environ["wsgi.file_wrapper"])(f, 4096)

    return app


class ShadowingWrapper:
    """A server's file wrapper the way gunicorn and wsgiref write theirs: close() set on the instance."""

    def __init__(self, filelike, blksize=8192):
        self.filelike, self.blksize = filelike, blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return iter(lambda: self.filelike.read(self.blksize), b"")


class Closing(FileWrapper):
    """Middleware-style subclass of the reference wrapper (section 7)."""

    log: ClassVar[list[str]] = []

    def close(self):
        super().close()
        Closing.log.append("closed")


def test_file_wrapper_is_handed_to_the_servers_own_wrapper(tmp_path):
    Closing.log.clear()
    path = data_file(tmp_path)
    before = open_fds()
    gateway = Gateway(method="GET", file_wrapper=ShadowingWrapper)
    app = file_app(path, skip=1000, declared=5000, wrapper_class=Closing)
    result = WSGI11Middleware(app)(gateway.environ, gateway.start_response)
    assert isinstance(result, ShadowingWrapper)  # the server's fast path still applies
    assert gateway.environ["wsgi.file_wrapper"] is ShadowingWrapper  # for servers that look again
    assert os.lseek(result.filelike.fileno(), 0, os.SEEK_CUR) == 1000  # the fd is where tell() is
    assert gateway.header("Content-Length") == "5000"
    assert b"".join(result) == path.read_bytes()[1000:6000]  # reads stop at Content-Length
    result.close()
    result.close()
    assert Closing.log == ["closed"]  # the application's close(), once, when the server is done
    assert open_fds() == before


def test_file_wrapper_without_content_length_gets_one(tmp_path):
    path = data_file(tmp_path)
    gateway = Gateway(method="GET", file_wrapper=ShadowingWrapper)
    result = WSGI11Middleware(file_app(path, skip=10))(gateway.environ, gateway.start_response)
    assert gateway.header("Content-Length") == str(100_000 - 10)
    result.close()


def test_short_file_is_iterated_so_the_short_body_is_an_error(tmp_path):
    path = data_file(tmp_path, 3000)
    before = open_fds()
    gateway = Gateway(method="GET", file_wrapper=ShadowingWrapper)
    with pytest.raises(ResponseTooShort):
        gateway.run(WSGI11Middleware(file_app(path, declared=5000)))
    assert b"".join(gateway.written) == path.read_bytes()
    assert open_fds() == before


def test_file_wrapper_over_a_closed_file_is_a_clear_error(tmp_path):
    path = data_file(tmp_path)
    before = open_fds()
    for server_wrapper in (None, ShadowingWrapper):
        with pytest.raises(ValueError, match="file_wrapper over a closed file"):
            Gateway(method="GET", file_wrapper=server_wrapper).run(WSGI11Middleware(file_app(path, closed=True)))
    assert open_fds() == before


def test_file_wrapper_over_a_text_file_is_a_clear_error(tmp_path):
    path = data_file(tmp_path)
    before = open_fds()
    with pytest.raises((TypeError, UnicodeDecodeError)):
        Gateway(method="GET").run(WSGI11Middleware(file_app(path, text=True)))
    gc.collect()
    assert open_fds() == before


def test_no_fd_leaks_across_many_responses(tmp_path):
    path = data_file(tmp_path)
    before = open_fds()
    for _ in range(50):
        for server_wrapper in (None, ShadowingWrapper):
            Gateway(method="GET", file_wrapper=server_wrapper).run(WSGI11Middleware(file_app(path, declared=500)))
            with pytest.raises(ResponseTooShort):
                Gateway(method="GET", file_wrapper=server_wrapper).run(
                    WSGI11Middleware(file_app(path, declared=200_000)))
            # A server that forgets close(): collected, and the file still closed.
            gateway = Gateway(method="GET", file_wrapper=server_wrapper)
            response = WSGI11Middleware(file_app(path))(gateway.environ, gateway.start_response)
            ref = weakref.ref(response)
            del response
            gc.collect()
            assert ref() is None
    assert open_fds() == before


def test_file_wrapper_on_a_wsgi11_server_is_passed_through(tmp_path):
    path = data_file(tmp_path)
    gateway = Gateway(method="GET", file_wrapper=FileWrapper, terminated=True, **{"wsgi.version": (1, 1)})
    result = WSGI11Middleware(file_app(path))(gateway.environ, gateway.start_response)
    assert type(result) is FileWrapper  # Propylon sends it from Rust
    result.close()


def test_spool_files_leave_nothing_behind():
    before = set(os.listdir(tempfile.gettempdir()))
    framed = b"%x\r\n%s\r\n0\r\n\r\n" % (5000, b"q" * 5000)
    Gateway(framed, HTTP_TRANSFER_ENCODING="chunked").run(
        WSGI11Middleware(echo, buffer_body=True, buffer_memory_limit=10))
    assert not {name for name in set(os.listdir(tempfile.gettempdir())) - before if name.startswith("tmp")}


def test_file_iterated_on_a_server_without_a_file_wrapper_gets_its_content_length(tmp_path):
    # flup has no wsgi.file_wrapper: the middleware iterates the file, and
    # declares its length as a server's file path would (nginx would
    # otherwise send it chunked, and a short file would end cleanly).
    path = data_file(tmp_path)
    gateway = Gateway(method="GET")
    body = gateway.run(WSGI11Middleware(file_app(path, skip=10)))
    assert gateway.header("Content-Length") == str(100_000 - 10)
    assert body == path.read_bytes()[10:]


def test_file_iterated_keeps_a_declared_length_and_adds_none_to_a_304(tmp_path):
    path = data_file(tmp_path, 3000)
    gateway = Gateway(method="GET")
    with pytest.raises(ResponseTooShort):
        gateway.run(WSGI11Middleware(file_app(path, declared=5000)))
    assert gateway.header("Content-Length") == "5000"

    def not_modified(environ, start_response):
        start_response("304 Not Modified", [])
        return environ["wsgi.file_wrapper"](open(path, "rb"), 4096)

    gateway = Gateway(method="GET")
    gateway.run(WSGI11Middleware(not_modified))
    assert gateway.header("Content-Length") is None
