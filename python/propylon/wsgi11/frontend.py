"""What a gateway behind a front end owes it: reading the rest of a body.

A front end such as nginx writes the whole request to the gateway before it
reads the response. A gateway that closes the connection with body bytes
still unread makes that write fail, and nginx then answers ``502`` in place
of the response the application gave (seen with flup's SCGI server when the
middleware answers ``413`` without reading the body, and with uWSGI). So behind a front end the
middleware reads and drops what is left of a body of known length once the
response is done.

Used over SCGI (the protocol puts ``SCGI: 1`` in every request's headers,
so ``environ["SCGI"] == "1"``), where ``wsgi.input`` is the socket, which
nothing ends but the length, and for uWSGI behind a front end
(propylon/wsgi11/uwsgi_server.py says how it is recognised). A FastCGI
server reads its stdin records itself, and a server that owns the client
connection discards an unread body its own way (specification, section 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["CountingInput", "behind_scgi", "drain_rest"]

#: Read size when draining an unread body.
DRAIN_BLOCK = 64 * 1024


def behind_scgi(environ: dict[str, Any]) -> bool:
    """Whether the request came over SCGI (its mandatory ``SCGI: 1`` header)."""
    return environ.get("SCGI") == "1"


class CountingInput:
    """The gateway's ``wsgi.input``, counting the bytes read from it."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.count = 0

    def _counted(self, data: Any) -> Any:
        if isinstance(data, bytes):
            self.count += len(data)
        return data

    def read(self, *args: Any) -> Any:
        return self._counted(self.raw.read(*args))

    def readline(self, *args: Any) -> Any:
        return self._counted(self.raw.readline(*args))

    def readlines(self, *args: Any) -> list[Any]:
        lines = self.raw.readlines(*args)
        for line in lines:
            self._counted(line)
        return list(lines)

    def __iter__(self) -> CountingInput:
        return self

    def __next__(self) -> Any:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def drain_rest(counting: CountingInput, declared: int) -> Callable[[], None]:
    """A clean-up reading the ``declared``-length body's unread rest, never past it."""

    def drain() -> None:
        try:
            while counting.count < declared:
                if not counting.read(min(DRAIN_BLOCK, declared - counting.count)):
                    return
        except (OSError, EOFError):
            pass  # the front end went away: nothing left to protect

    return drain
