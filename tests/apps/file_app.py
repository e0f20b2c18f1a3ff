"""``wsgi.file_wrapper`` test application (``tests.apps.file_app:app``), wrapped in wsgiref.validate.

``GET /file?path=P`` answers the file at P through a file wrapper. Options:

- ``kind``: ``plain`` -- ``environ["wsgi.file_wrapper"](open(P, "rb"), blksize)``;
  ``recording`` -- :class:`RecordingFileWrapper`, a subclass whose close()
  records that it ran and whether the file ended up closed;
  ``bytesio`` -- the environ's wrapper over :class:`RecordingBytesIO` holding
  P's bytes (a file-like without ``fileno()``), whose close() is recorded.
- ``seek``: position to ``seek()`` to before wrapping (the server sends from ``tell()``).
- ``cl``: the Content-Length the app declares: absent (default, the server must
  set it for a regular file), a number, or ``more`` (``extra`` bytes more than
  the file has, default 1000).
- ``blksize``: the wrapper's block size.
- ``status``: the response's status line (default ``200 OK``).

Records go to the file named by the ``X-Record-Path`` request header.
``GET /`` answers ``hello``.
"""

from __future__ import annotations

import io
import os
from urllib.parse import parse_qs

import propylon
from tests.apps._validate import validated


def _record(path, text):
    if path:
        with open(path, "a") as f:
            f.write(text + "\n")


class RecordingFileWrapper(propylon.FileWrapper):
    """What middleware would do: subclass the server's wrapper to add a close() action."""

    record_path = None

    def close(self):
        super().close()
        _record(self.record_path, f"wrapper closed, file closed={self.filelike.closed}")


class RecordingBytesIO(io.BytesIO):
    record_path = None

    def close(self):
        _record(self.record_path, "bytesio closed")
        super().close()


def file_response(environ, start_response):
    params = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    path = params["path"]
    kind = params.get("kind", "plain")
    blksize = int(params.get("blksize", "65536"))
    record_path = environ.get("HTTP_X_RECORD_PATH")
    size = os.path.getsize(path)

    if kind == "bytesio":
        with open(path, "rb") as f:
            filelike = RecordingBytesIO(f.read())
        filelike.record_path = record_path
    else:
        filelike = open(path, "rb")  # noqa: SIM115 - the response's file wrapper closes it
    filelike.seek(int(params.get("seek", "0")))

    status = params.get("status", "200 OK")
    # wsgiref.validate: no Content-Type on a 204 or 304.
    headers = [] if status[:3] in ("204", "304") else [("Content-Type", "application/octet-stream")]
    cl = params.get("cl")
    if cl is not None:
        if cl == "more":
            cl = str(size + int(params.get("extra", "1000")))
        headers.append(("Content-Length", cl))
    start_response(status, headers)

    if kind == "recording":
        wrapper = RecordingFileWrapper(filelike, blksize)
        wrapper.record_path = record_path
        return wrapper
    return environ["wsgi.file_wrapper"](filelike, blksize)


def dispatch(environ, start_response):
    if environ["PATH_INFO"] == "/file":
        return file_response(environ, start_response)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


app = validated(dispatch)
