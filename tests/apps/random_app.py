"""Random responses for differential tests (``tests.apps.random_app:app``).

``?status=S&how=list|generator|write`` answers status S (``204``, ``304``)
with an 11-byte body and ``Content-Length: 11``, given the way ``how`` says:
responses that must go out without their body.

``?surplus=N&how=one|many|list`` answers ``Content-Length: N`` and yields one
byte more: in one chunk from a generator, one byte per chunk, or as a list.

``?seed=N`` picks one response, the same for the same N: a status (valid,
unusual or invalid), header fields (valid ones, lengths that are right,
wrong or repeated, hop-by-hop fields and invalid ones), a body given as
a list, a generator or through ``write()``, and in three cases out of ten a
fault of the application's (``FAULTS``: an exception before or after
``start_response``, while iterating or in ``close()``, a ``str`` chunk,
``exc_info`` before and after the head went out). Deliberately not wrapped in
``wsgiref.validate``: what the application may get wrong is the point. No
seed: ``hello``.
"""

from __future__ import annotations

import random
import sys
from urllib.parse import parse_qs

STATUSES = [
    "200 OK", "201 Created", "204 No Content", "206 Partial Content", "301 Moved Permanently",
    "304 Not Modified", "404 Not Found", "418 I'm a teapot", "500 Oops", "599 Custom Reason",
    "200 Fine Thanks", "299 X",
]
# The server refuses these (500).
BAD_STATUSES = ["20 X", "2000 X", "abc OK", "200", "200\r\nX-Injected: 1 OK"]
BAD_FIELDS = [("Transfer-Encoding", "chunked"), ("Connection", "close"), ("X-Bad", "a\r\nb"), ("Bad Name", "x"),
              ("X-Wide", "\u20ac")]  # hop-by-hop fields, invalid ones, and one that is not latin-1


def random_headers(rng: random.Random, length: int) -> list[tuple[str, str]]:
    headers = []
    for _ in range(rng.randint(0, 6)):
        pick = rng.randrange(10)
        if pick == 0:
            headers.append(("Content-Type", "text/plain"))
        elif pick == 1:
            headers.append(("Content-Length", str(length)))
        elif pick == 2:
            headers.append(("Content-Length", str(length + rng.choice([-1, 1, 3]))))
        elif pick in (3, 4):
            headers.append(("Set-Cookie", f"c{rng.randrange(100)}=1; Path=/"))
        elif pick == 5:
            headers.append(("Date", "Mon, 01 Jan 2001 00:00:00 GMT"))
        elif pick == 6:
            headers.append(("X-Latin", "caf\u00e9"))
        else:
            name = "X-" + "".join(rng.choice("abcXYZ-09") for _ in range(rng.randint(1, 10)))
            value = "".join(rng.choice("abc XYZ09!#$%&'()*+,-./:;<=>?@[]^_`{|}~\t") for _ in range(rng.randint(0, 30)))
            headers.append((name, value))
    if rng.random() < 0.1:
        headers.insert(rng.randint(0, len(headers)), rng.choice(BAD_FIELDS))
    return headers


def bodiless(status: str, how: str, start_response):
    write = start_response(f"{status} Whatever", [("Content-Length", "11"), ("X-How", how)])
    if how == "write":
        write(b"hello ")
        return [b"world"]
    if how == "generator":
        return (chunk for chunk in [b"hello ", b"world"])
    return [b"hello world"]


def app(environ, start_response):
    params = parse_qs(environ.get("QUERY_STRING", ""))
    if "surplus" in params:
        # Content-Length N and N + 1 bytes, given as the `how` says.
        n = int(params["surplus"][0])
        start_response("200 OK", [("Content-Length", str(n))])
        chunks = [b"x" * n + b"!"] if params["how"][0] == "one" else [b"x"] * n + [b"!"]
        return (chunk for chunk in chunks) if params["how"][0] != "list" else chunks
    if "status" in params:
        return bodiless(params["status"][0], params["how"][0], start_response)
    seed = params.get("seed")
    if not seed:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"hello"]
    rng = random.Random(int(seed[0]))
    chunks = [bytes([rng.randrange(97, 123)]) * rng.choice([0, 1, 7, 100, 3000]) for _ in range(rng.randint(0, 4))]
    length = sum(map(len, chunks))
    status = rng.choice(BAD_STATUSES if rng.random() < 0.1 else STATUSES)
    headers = random_headers(rng, length)
    kind = rng.randrange(3)
    fault = rng.choice(FAULTS) if rng.random() < 0.3 else None
    at = rng.randint(0, len(chunks))
    if fault == "raise-before":
        raise RuntimeError("the application failed before start_response")
    if fault == "exc-info-early":
        start_response(status, headers)
        try:
            raise ValueError("changed its mind")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Length", "4")], sys.exc_info())
        return [b"oops"]
    if kind == 0:
        start_response(status, headers)
        if fault == "raise-after-start":
            raise RuntimeError("the application failed after start_response")
        return Body(chunks, fault, at)
    if kind == 1:
        start_response(status, headers)
        return (chunk for chunk in Body(chunks, fault, at))
    write = start_response(status, headers)
    for chunk in chunks[:-1]:
        write(chunk)
    if fault == "exc-info-late":
        try:
            raise ValueError("too late to change its mind")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())  # raises: the head is out
    return Body(chunks[-1:], fault, at)


FAULTS = ["raise-before", "raise-after-start", "raise-in-iter", "non-bytes", "close-raises", "exc-info-early",
          "exc-info-late"]


class Body:
    """The response chunks, failing as ``fault`` says at chunk ``at``."""

    def __init__(self, chunks, fault, at):
        self.chunks, self.fault, self.at = chunks, fault, at

    def __iter__(self):
        for i, chunk in enumerate(self.chunks):
            if i == self.at and self.fault == "raise-in-iter":
                raise RuntimeError("the application failed while iterating")
            if i == self.at and self.fault == "non-bytes":
                yield chunk.decode()
            yield chunk

    def close(self):
        if self.fault == "close-raises":
            raise RuntimeError("close() failed")
