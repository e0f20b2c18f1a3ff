"""Applications that break PEP 3333 on purpose (``tests.apps.error_app:app``).

Not wrapped in wsgiref.validate: the validator would reject these mistakes
itself (with its own AssertionError), and the point is to see what *the server*
does with them. Each failure message contains ``boom <route>`` so a test can
find it in the server's log.

``/ok`` answers ``hello`` so a test can check the server still serves.

The ``/secret-*`` routes put the ``secret`` query parameter into what goes
wrong (an exception message, a bad header, a bad status) so a test can check
that it reaches the log and never the client.
"""

from __future__ import annotations

import sys
from urllib.parse import parse_qs

TEXT = [("Content-Type", "text/plain")]


def _raise_before_start(environ, start_response):
    raise RuntimeError("boom raise-before-start")


def _raise_after_start(environ, start_response):
    start_response("200 OK", TEXT)
    raise RuntimeError("boom raise-after-start")


def _raise_after_first_chunk(environ, start_response):
    start_response("200 OK", TEXT)

    def body():
        yield b"first chunk "
        raise RuntimeError("boom raise-after-first-chunk")

    return body()


def _non_iterable(environ, start_response):
    start_response("200 OK", TEXT)
    return 42


def _start_twice(environ, start_response):
    start_response("200 OK", TEXT)
    start_response("200 OK", TEXT)  # no exc_info: the server must refuse (PEP 3333)
    return [b"should not be sent"]


def _yield_str(environ, start_response):
    start_response("200 OK", TEXT)
    return ["boom yield-str: a str, not bytes"]


def _status(status):
    def app(environ, start_response):
        start_response(status, TEXT)
        return [b"should not be sent"]

    return app


def _header(name, value):
    def app(environ, start_response):
        start_response("200 OK", TEXT + [(name, value)])
        return [b"should not be sent"]

    return app


def _hop_by_hop(environ, start_response):
    name = parse_qs(environ["QUERY_STRING"])["name"][0]
    start_response("200 OK", TEXT + [(name, "close" if name.lower() == "connection" else "x")])
    return [b"should not be sent"]


def _exc_info_after_send(environ, start_response):
    write = start_response("200 OK", TEXT)
    write(b"partial ")
    try:
        raise ValueError("boom exc-info-after-send")
    except ValueError:
        # Headers are out: start_response must re-raise (PEP 3333).
        start_response("500 Internal Server Error", TEXT, sys.exc_info())
    return [b"should not be sent"]


def _secret(environ):
    return parse_qs(environ["QUERY_STRING"])["secret"][0]


def _secret_raise(environ, start_response):
    raise RuntimeError(f"boom secret-raise: the database password is {_secret(environ)}")


def _secret_raise_after_start(environ, start_response):
    start_response("200 OK", TEXT)
    raise KeyError(f"boom secret-raise-after-start {_secret(environ)}")


def _secret_in_iterable(environ, start_response):
    start_response("200 OK", TEXT)

    def body():
        raise ValueError(f"boom secret-in-iterable {_secret(environ)}")
        yield b"never"  # a generator: the error comes when the server iterates

    return body()


def _secret_bad_header(environ, start_response):
    start_response("200 OK", TEXT + [("X-Token", f"{_secret(environ)}\r\nX-Injected: 1")])
    return [b"should not be sent"]


def _secret_bad_status(environ, start_response):
    start_response(f"2000 {_secret(environ)}", TEXT)
    return [b"should not be sent"]


def _latin1_header(environ, start_response):
    start_response("200 OK", TEXT + [("X-Name", "caf\u00e9 \u00ff")])
    return [b"latin-1"]


def _ok(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "5")])
    return [b"hello"]


ROUTES = {
    "/": _ok,
    "/ok": _ok,
    "/raise-before-start": _raise_before_start,
    "/raise-after-start": _raise_after_start,
    "/raise-after-first-chunk": _raise_after_first_chunk,
    "/non-iterable": _non_iterable,
    "/start-twice": _start_twice,
    "/yield-str": _yield_str,
    "/status-no-reason": _status("200"),
    "/status-no-code": _status("OK"),
    "/status-four-digits": _status("2000 X"),
    "/header-newline": _header("X-Bad", "a\nb"),
    "/header-not-latin1": _header("X-Bad", "caf\u20ac"),
    "/header-bad-name": _header("Bad Name", "x"),
    "/header-surrogate": _header("X-Bad", "a\udc80b"),
    "/header-name-bytes": _header(b"X-Bad", "x"),
    "/header-value-int": _header("X-Bad", 5),
    "/header-latin1": _latin1_header,
    "/hop-by-hop": _hop_by_hop,
    "/exc-info-after-send": _exc_info_after_send,
    "/secret-raise": _secret_raise,
    "/secret-raise-after-start": _secret_raise_after_start,
    "/secret-in-iterable": _secret_in_iterable,
    "/secret-bad-header": _secret_bad_header,
    "/secret-bad-status": _secret_bad_status,
}


def app(environ, start_response):
    return ROUTES[environ["PATH_INFO"]](environ, start_response)
