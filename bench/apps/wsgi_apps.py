"""The WSGI applications every server in the benchmark runs (PEP 3333 only).

One module, one attribute per scenario, so each server gets the same code:

- ``hello``    13-byte ``Hello, world!`` with Content-Length;
- ``bytes64k`` a 64 KiB body from a prebuilt bytes object, one chunk;
- ``echo``     reads the request body (CONTENT_LENGTH bytes, the PEP 3333 way,
               so WSGI 1.0 servers work too) and sends it back;
- ``file``     the file named by ``$BENCH_FILE`` (the bench writes a
               10 MiB file there) through ``environ["wsgi.file_wrapper"]`` when
               the server offers one (Propylon and gunicorn sendfile from it,
               waitress and pyruvate have their own), else a 64 KiB read loop.
               The ``X-Bench-File`` response header says which path was taken,
               and the bench reports it per server.

With ``$BENCH_IMPORTS`` set (the start-up scenarios), importing the module
appends the importing process's id to that file: the bench counts the worker
processes that have loaded the application.

What this module does not do: route, parse, or anything an application would do
for real. It measures the server, not the application.
"""

import os

HELLO = b"Hello, world!"
BYTES_64K = b"x" * 65536
BLOCK_SIZE = 65536
FILE_PATH = os.environ.get("BENCH_FILE", "")

if os.environ.get("BENCH_IMPORTS"):
    # One short O_APPEND write per process: lines from several workers do not mix.
    with open(os.environ["BENCH_IMPORTS"], "a") as imports:
        imports.write(f"{os.getpid()}\n")


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [HELLO]


def bytes64k(environ, start_response):
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BYTES_64K)))],
    )
    return [BYTES_64K]


def echo(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
    )
    return [body]


class ReadLoop:
    """PEP 3333's fallback file iterator, corrected: stops at b"" and closes."""

    def __init__(self, filelike, block_size):
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self):
        while True:
            block = self.filelike.read(self.block_size)
            if not block:
                return
            yield block

    def close(self):
        self.filelike.close()


def file(environ, start_response):
    f = open(FILE_PATH, "rb")  # noqa: SIM115 (the server closes it through the response)
    size = os.fstat(f.fileno()).st_size
    wrapper = environ.get("wsgi.file_wrapper")
    path = "file_wrapper" if wrapper is not None else "read-loop"
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(size)),
            ("X-Bench-File", path),
        ],
    )
    if wrapper is not None:
        return wrapper(f, BLOCK_SIZE)
    return ReadLoop(f, BLOCK_SIZE)
