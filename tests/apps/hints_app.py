"""A WSGI application that sends its own early hints
(``environ["propylon.early_hints"]``), for tests/test_early_hints.py.

==============  ================================================================
``/``           ``page`` (text/html); no hint of its own
``/own``        hints ``</own.css>`` (twice: two 103s), then answers ``own``
``/late``       hints after its first body chunk is out (ignored), ``late``
``/bad``        hints with invalid fields; answers the exception raised
                (``TypeError: ...`` or ``ValueError: ...``); ``kind`` chooses
``/flood``      sends ``n`` hints in a row, then answers ``flood``
==============  ================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

OWN = [("Link", "</own.css>; rel=preload; as=style")]

BAD: dict[str, Any] = {
    "name": [("Bad Name", "x")],
    "value": [("Link", "a\r\nb")],
    "pair": ["Link: </x>"],
    "hop": [("Connection", "close")],
}


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes] | list[bytes]:
    path = environ["PATH_INFO"]
    query = {k: v[-1] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    hints = environ["propylon.early_hints"]
    text = [("Content-Type", "text/plain")]
    if path == "/own":
        hints(OWN)
        hints(OWN)
        start_response("200 OK", text)
        return [b"own"]
    if path == "/late":
        return _late(hints, start_response)
    if path == "/bad":
        try:
            hints(BAD[query.get("kind", "name")])
        except (TypeError, ValueError) as exc:
            start_response("200 OK", text)
            return [f"{type(exc).__name__}: {exc}".encode()]
        start_response("500 Internal Server Error", text)
        return [b"no exception"]
    if path == "/flood":
        for i in range(int(query.get("n", "1000"))):
            hints([("Link", f"</flood{i}.css>; rel=preload; as=style")])
        start_response("200 OK", text)
        return [b"flood"]
    start_response("200 OK", [("Content-Type", "text/html")])
    return [b"page"]


def _late(hints: Callable[[object], None], start_response: Callable[..., Any]) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"la"
    hints(OWN)
    yield b"te"
