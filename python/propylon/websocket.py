"""The WebSocket API's rules that do not depend on how a server runs it
(``docs/spec/websocket.md``): shared by every server of the API, the compiled
server's bridge and :mod:`propylon.adapters` alike.

- :class:`WebSocketClosed`, the exception a connection object raises once the
  connection is closed;
- :func:`handler_style` tells the three handler styles apart
  (:class:`HandlerStyle`), :func:`resolve_handlers` finds and classifies the
  handler of each declared prefix once, at start;
- :func:`check_subprotocol`, :func:`check_reject_status`,
  :func:`check_close` and :func:`outgoing_message` check what an
  application passes to ``accept``, ``reject``, ``close`` and ``send``,
  raising the exceptions the API names;
- :func:`is_normal_close`: the close codes that end iteration quietly;
- :class:`ConnectionState`: where a connection object is, as the API's
  methods see it;
- :class:`WebSocket` and :class:`AsyncWebSocket`: the connection object's
  interface, for type checkers.

This module does no I/O, runs no handler and holds no connection: framing,
handshakes and queues belong to the server that uses it.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "ABNORMAL_CLOSE",
    "INTERNAL_ERROR_CLOSE",
    "MAX_CLOSE_REASON_BYTES",
    "NORMAL_CLOSE",
    "NORMAL_CLOSE_CODES",
    "NO_STATUS_CLOSE",
    "AsyncWebSocket",
    "ConnectionState",
    "HandlerStyle",
    "ResolvedHandler",
    "WebSocket",
    "WebSocketClosed",
    "check_close",
    "check_reject_status",
    "check_subprotocol",
    "handler_style",
    "is_normal_close",
    "outgoing_message",
    "resolve_handlers",
]

#: Close codes (RFC 6455 §7.4.1).
NORMAL_CLOSE = 1000
GOING_AWAY_CLOSE = 1001
#: Reported, never sent: the close frame had no code (RFC 6455 §7.1.5).
NO_STATUS_CLOSE = 1005
#: Reported, never sent: the connection ended without a close frame (RFC 6455 §7.1.5).
ABNORMAL_CLOSE = 1006
#: The server met a condition it could not handle: the handler raised.
INTERNAL_ERROR_CLOSE = 1011
#: The codes at which iteration over a connection ends instead of raising.
NORMAL_CLOSE_CODES = frozenset({NORMAL_CLOSE, GOING_AWAY_CLOSE, NO_STATUS_CLOSE})
#: A close frame's payload is at most 125 bytes (a control frame, RFC 6455
#: §5.5), two of them the code: the reason has the other 123.
MAX_CLOSE_REASON_BYTES = 123


class WebSocketClosed(Exception):
    """The WebSocket connection is closed: raised by ``receive``, ``send`` and
    iteration (at a close that is not normal) once it is.

    ``code`` is the close code (1005 when the close frame had none, 1006 when
    the connection ended without a close frame); ``reason`` the close reason,
    ``""`` when there was none.

    >>> error = WebSocketClosed(4001, "kicked")
    >>> error.code, error.reason, str(error)
    (4001, 'kicked', 'WebSocket closed with code 4001: kicked')
    >>> str(WebSocketClosed(1006))
    'WebSocket closed with code 1006'
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        text = f"WebSocket closed with code {self.code}"
        return f"{text}: {self.reason}" if self.reason else text


class HandlerStyle(enum.Enum):
    """How a handler runs: ``ASYNC`` on the worker's event loop, ``EVENT`` as
    short jobs per event in the thread pool, ``BLOCKING`` on a thread of its
    own for the connection's life."""

    ASYNC = "async"
    EVENT = "event"
    BLOCKING = "blocking"


def handler_style(handler: object) -> HandlerStyle:
    """The style of ``handler``, in this order: a coroutine function (or an
    object whose ``__call__`` is one) is ``ASYNC``; an object with an
    ``on_message`` attribute is ``EVENT``; any other callable is ``BLOCKING``.
    Anything else raises :class:`TypeError`.

    >>> async def chat(ws): ...
    >>> class Echo:
    ...     def on_message(self, ws, message): ws.send(message)
    >>> def ticker(ws): ...
    >>> [handler_style(h).value for h in (chat, Echo(), ticker)]
    ['async', 'event', 'blocking']
    >>> handler_style("chat")
    Traceback (most recent call last):
    ...
    TypeError: a WebSocket handler is an async function, an object with on_message, or a callable; got a str
    """
    # The method itself, not a test of callability: an instance whose
    # ``__call__`` is ``async def`` is an async handler.
    call = getattr(handler, "__call__", None)  # noqa: B004
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(call):
        return HandlerStyle.ASYNC
    if hasattr(handler, "on_message"):
        return HandlerStyle.EVENT
    if callable(handler):
        return HandlerStyle.BLOCKING
    raise TypeError(
        "a WebSocket handler is an async function, an object with on_message, or a callable; "
        f"got a {type(handler).__name__}"
    )


@dataclass(frozen=True)
class ResolvedHandler:
    """The handler serving one declared prefix, and its style."""

    prefix: str
    handler: Any
    style: HandlerStyle


def resolve_handlers(endpoint: Callable[..., Any], prefixes: Iterable[str]) -> Mapping[str, ResolvedHandler]:
    """The handler of each declared prefix, classified, by prefix: an
    endpoint with ``handler_for(path)`` (:class:`propylon.application.PrefixDispatch`)
    gives one per prefix; any other endpoint is the handler of all of them.
    A prefix the endpoint has no handler for, or a handler of no style, raises
    :class:`TypeError` naming the prefix.

    >>> from propylon.application import PrefixDispatch
    >>> async def chat(ws): ...
    >>> def echo(ws): ...
    >>> handlers = resolve_handlers(PrefixDispatch({"/chat": chat, "/echo": echo}), ["/chat", "/echo"])
    >>> [(h.prefix, h.style.value) for h in handlers.values()]
    [('/chat', 'async'), ('/echo', 'blocking')]
    """
    handler_for = getattr(endpoint, "handler_for", None)
    resolved: dict[str, ResolvedHandler] = {}
    for prefix in prefixes:
        handler = handler_for(prefix) if callable(handler_for) else endpoint
        if handler is None:
            raise TypeError(f"the websocket endpoint has no handler for the prefix {prefix or '/'!r}")
        try:
            style = handler_style(handler)
        except TypeError as exc:
            raise TypeError(f"websocket prefix {prefix or '/'!r}: {exc}") from None
        resolved[prefix] = ResolvedHandler(prefix, handler, style)
    return resolved


class ConnectionState(enum.Enum):
    """Where a connection object is: the handshake not answered yet, accepted
    and open, closed (by either side, after accepting), or the handshake
    rejected (the connection never opened)."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"
    REJECTED = "rejected"


def check_subprotocol(subprotocol: str | None, offered: Iterable[str]) -> None:
    """``accept(subprotocol)`` takes None or one the client offered
    (RFC 6455 §4.2.2: the server selects one of the client's values).

    >>> check_subprotocol("chat.v2", ["chat.v1", "chat.v2"])
    >>> check_subprotocol("chat.v3", ["chat.v1"])
    Traceback (most recent call last):
    ...
    ValueError: subprotocol 'chat.v3' was not offered by the client (offered: ['chat.v1'])
    """
    if subprotocol is None:
        return
    offered = list(offered)
    if subprotocol not in offered:
        raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client (offered: {offered})")


def check_reject_status(status: int) -> None:
    """``reject(status)`` answers with a client or server error, 400 to 599.

    >>> check_reject_status(401)
    >>> check_reject_status(302)
    Traceback (most recent call last):
    ...
    ValueError: a rejected handshake's status is 400-599, got 302
    """
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"a rejected handshake's status is 400-599, got {status!r}")


def check_close(code: int, reason: str) -> None:
    """``close(code, reason)`` sends 1000 or an application code, 3000-4999
    (RFC 6455 §7.4.2: 3000-3999 registered, 4000-4999 private), and a reason
    of at most 123 bytes in UTF-8.

    >>> check_close(4000, "bye")
    >>> check_close(1006, "")
    Traceback (most recent call last):
    ...
    ValueError: a close code is 1000 or 3000-4999, got 1006
    >>> check_close(1000, "é" * 62)
    Traceback (most recent call last):
    ...
    ValueError: a close reason is at most 123 bytes in UTF-8, got 124
    """
    if isinstance(code, bool) or not isinstance(code, int) or not (code == NORMAL_CLOSE or 3000 <= code <= 4999):
        raise ValueError(f"a close code is 1000 or 3000-4999, got {code!r}")
    if not isinstance(reason, str):
        raise TypeError(f"a close reason is a str, got a {type(reason).__name__}")
    size = len(reason.encode("utf-8"))
    if size > MAX_CLOSE_REASON_BYTES:
        raise ValueError(f"a close reason is at most {MAX_CLOSE_REASON_BYTES} bytes in UTF-8, got {size}")


def outgoing_message(data: object) -> str | bytes:
    """What ``send(data)`` sends: a ``str`` as a text message, ``bytes``,
    ``bytearray`` or ``memoryview`` as a binary one (copied to ``bytes``);
    anything else raises :class:`TypeError`.

    >>> outgoing_message("hi"), outgoing_message(bytearray(b"\\x00\\x01"))
    ('hi', b'\\x00\\x01')
    >>> outgoing_message(3)
    Traceback (most recent call last):
    ...
    TypeError: send() takes str (a text message) or bytes (a binary message), got an int
    """
    if isinstance(data, str | bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    article = "an" if type(data).__name__[:1] in "aeiou" else "a"
    raise TypeError(
        f"send() takes str (a text message) or bytes (a binary message), got {article} {type(data).__name__}"
    )


def is_normal_close(code: int) -> bool:
    """Whether a close with ``code`` ends iteration quietly: 1000 (normal),
    1001 (going away) and 1005 (no code given); every other code is an error
    the application sees as :class:`WebSocketClosed`.

    >>> [is_normal_close(code) for code in (1000, 1001, 1005, 1006, 1011, 4000)]
    [True, True, True, False, False, False]
    """
    return code in NORMAL_CLOSE_CODES


class WebSocket(Protocol):
    """The connection object an event or blocking handler receives; every
    method may be called from any thread."""

    path: str
    query_string: bytes
    headers: list[tuple[str, str]]
    subprotocols: list[str]
    extensions: list[str]
    client: tuple[str, int] | None
    scheme: str
    http_version: str

    @property
    def subprotocol(self) -> str | None: ...
    def accept(self, subprotocol: str | None = None, headers: Iterable[tuple[str, str]] = ()) -> None: ...
    def reject(self, status: int = 403, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> None: ...
    def receive(self) -> str | bytes: ...
    def send(self, data: str | bytes | bytearray | memoryview) -> None: ...
    def close(self, code: int = NORMAL_CLOSE, reason: str = "") -> None: ...
    def __iter__(self) -> Iterator[str | bytes]: ...


class AsyncWebSocket(Protocol):
    """The connection object an ``async def`` handler receives: the names of
    :class:`WebSocket`, its methods coroutines on the worker's event loop."""

    path: str
    query_string: bytes
    headers: list[tuple[str, str]]
    subprotocols: list[str]
    extensions: list[str]
    client: tuple[str, int] | None
    scheme: str
    http_version: str

    @property
    def subprotocol(self) -> str | None: ...
    async def accept(self, subprotocol: str | None = None, headers: Iterable[tuple[str, str]] = ()) -> None: ...
    async def reject(self, status: int = 403, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> None: ...
    async def receive(self) -> str | bytes: ...
    async def send(self, data: str | bytes | bytearray | memoryview) -> None: ...
    async def close(self, code: int = NORMAL_CLOSE, reason: str = "") -> None: ...
    def __aiter__(self) -> AsyncIterator[str | bytes]: ...
