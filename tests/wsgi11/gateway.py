"""A PEP 3333 gateway in process, for the unit tests of ``propylon.wsgi11``.

:class:`Gateway` plays the server's part for one request: a ``wsgiref``-style
environ, a byte stream for ``wsgi.input``, and a ``start_response`` that
records, so tests can drive the middleware and the validator through cases
no real server produces on demand. :func:`open_fds` counts this process's
open file descriptors, for leak checks.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any
from wsgiref.util import setup_testing_defaults


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Gateway:
    """The server side of one request, in process."""

    def __init__(self, body: bytes = b"", *, content_length: str | None = None, terminated: bool = False,
                 file_wrapper: Any = None, method: str = "POST", **extra: Any) -> None:
        self.environ: dict[str, Any] = {}
        setup_testing_defaults(self.environ)
        self.environ.update(REQUEST_METHOD=method, **extra)
        self.environ["wsgi.input"] = io.BytesIO(body)
        self.environ["wsgi.errors"] = self.errors = io.StringIO()
        self.environ.pop("CONTENT_LENGTH", None)
        if content_length is not None:
            self.environ["CONTENT_LENGTH"] = content_length
        if terminated:
            self.environ["wsgi.input_terminated"] = True
        if file_wrapper is not None:
            self.environ["wsgi.file_wrapper"] = file_wrapper
        else:
            self.environ.pop("wsgi.file_wrapper", None)
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.written: list[bytes] = []
        self.calls = 0

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
        self.calls += 1
        if exc_info is not None and self.written:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status, self.headers = status, headers
        return self.written.append

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def run(self, app: Callable, *, close: bool = True) -> bytes:
        """Call ``app`` and drain its result as a server would; returns the body."""
        result = app(self.environ, self.start_response)
        try:
            for chunk in result:
                self.written.append(chunk)
        finally:
            if close and hasattr(result, "close"):
                result.close()
        return b"".join(self.written)
