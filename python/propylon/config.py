"""Server configuration: the one place where settings and their defaults live.

:class:`Config` crosses into Rust once, as a whole, when the server starts
(``propylon._core.serve(config, app)``); the CLI only overrides the fields the
user gave, so no default is ever written twice. Each field is checked when the
object is built and a bad value raises :class:`ConfigError` with a message fit
for the command line.

This module also parses the two kinds of option text that are not plain
numbers: bind addresses (:func:`parse_bind`) and byte sizes (:func:`parse_size`).
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field

__all__ = [
    "Bind",
    "Config",
    "ConfigError",
    "LOG_LEVELS",
    "parse_bind",
    "parse_size",
]

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

#: Accepted ``client_cert`` values: never ask, ask but accept none, require one.
CLIENT_CERT_MODES = ("none", "optional", "required")

#: Accepted ``log_level`` values, most to least severe (the ``logging`` names).
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

#: Port used when a bind address names a host but no port (gunicorn's default).
DEFAULT_PORT = 8000


class ConfigError(ValueError):
    """A setting has a value the server cannot use; the message says which and why."""


@dataclass(frozen=True)
class Bind:
    """One address to listen on: TCP (``host`` and ``port``) or a Unix socket (``path``).

    ``host`` is an IP address or a name to resolve, IPv6 without brackets
    (``"::1"``). Port 0 asks the system for any free port.
    """

    host: str | None = None
    port: int | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        if self.path is not None:
            if self.host is not None or self.port is not None:
                raise ConfigError("a bind address is a Unix socket path or a host and port, not both")
            if not self.path:
                raise ConfigError("empty Unix socket path; use unix:/path/to/socket")
            return
        if not self.host:
            raise ConfigError("a TCP bind address needs a host, e.g. 127.0.0.1:8000")
        if self.port is None or not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be between 0 and 65535, got {self.port}")

    def __str__(self) -> str:
        """The address in :func:`parse_bind` syntax (``unix:/p``, ``h:1``, ``[::1]:1``)."""
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if self.host is not None and ":" in self.host else self.host
        return f"{host}:{self.port}"


def _default_binds() -> list[Bind]:
    return [Bind("127.0.0.1", DEFAULT_PORT)]


@dataclass(frozen=True, kw_only=True)
class Config:
    """Everything the server needs besides the application. Defaults are the documented defaults."""

    #: Addresses to listen on (``--bind``, repeatable).
    binds: list[Bind] = field(default_factory=_default_binds)
    #: Python worker threads running WSGI applications.
    threads: int = 8
    #: Requests that may wait for a free thread; beyond that the server answers 503.
    queue_size: int = 256
    #: Seconds a request may wait in that queue; then the server answers 503.
    queue_timeout: float = 30.0
    #: Limit on the request body, raw and decoded: 413 / ``RequestBodyTooLarge``.
    max_body_size: int = 1 * GIB
    #: Decode request bodies sent with ``Content-Encoding`` gzip, deflate, br or zstd.
    decompress: bool = False
    #: WSGI 1.0 compatibility: buffer every body and always give the exact ``CONTENT_LENGTH``.
    buffer_body: bool = False
    #: With ``buffer_body``, bodies larger than this spill from memory to a temporary file.
    buffer_memory_limit: int = 1 * MIB
    #: Limit on the size of a request head; larger heads get 431.
    max_header_size: int = 64 * KIB
    #: Limit on the number of request header fields; more get 431.
    max_headers: int = 100
    #: Seconds an idle keep-alive connection stays open.
    keep_alive_timeout: float = 5.0
    #: Seconds a client has to send a complete request head (slowloris).
    header_timeout: float = 10.0
    #: Seconds a ``wsgi.input`` read may wait for data before raising ``ClientDisconnected``.
    body_timeout: float = 60.0
    #: Seconds a response may wait for a client that takes no data (a full TCP
    #: buffer, or an HTTP/2 window left at zero) before its connection is closed.
    send_timeout: float = 60.0
    #: Seconds to let in-flight requests finish after SIGINT/SIGTERM.
    graceful_timeout: float = 30.0
    #: Log one line per request on ``propylon.access``.
    access_log: bool = False
    #: Level of the ``propylon`` loggers, one of :data:`LOG_LEVELS`.
    log_level: str = "info"
    #: URL prefix the application is mounted at: ``SCRIPT_NAME``, stripped from ``PATH_INFO``.
    root_path: str = ""
    #: TCP congestion control of the TCP listeners (Linux ``TCP_CONGESTION``, e.g.
    #: ``"cubic"``), inherited by every connection they accept; None: the system's.
    tcp_congestion: str | None = None

    # TLS. With ``certfile``, every address in ``binds`` speaks TLS (ALPN h2 and
    # http/1.1); ``insecure_binds`` are cleartext listeners beside them (Hypercorn's
    # ``--insecure-bind``).
    #: Cleartext addresses to listen on as well (``--insecure-bind``, repeatable).
    insecure_binds: list[Bind] = field(default_factory=list)
    #: PEM certificate chain; turns TLS on for ``binds``.
    certfile: str | None = None
    #: PEM private key (RSA, ECDSA or Ed25519; PKCS#8, PKCS#1 or SEC1; or encrypted PKCS#8).
    keyfile: str | None = None
    #: Password of an encrypted ``keyfile``.
    keyfile_password: str | None = None
    #: PEM CA bundle that client certificates must chain to.
    ca_certs: str | None = None
    #: Ask for client certificates: one of :data:`CLIENT_CERT_MODES`.
    client_cert: str = "none"

    # HTTP/2 (RFC 9113 §6.5.2); CLI flags are the same names with ``--h2-`` prefixes.
    #: Streams a client may have open at once on one connection.
    h2_max_concurrent_streams: int = 100
    #: Flow-control window of each stream: request body bytes the server buffers per stream.
    h2_initial_stream_window_size: int = 1 * MIB
    #: Flow-control window of each connection: request body bytes buffered per connection.
    h2_initial_connection_window_size: int = 2 * MIB
    #: Largest frame payload the server accepts (16 KiB to 16 MiB - 1).
    h2_max_frame_size: int = 16 * KIB
    #: Largest decoded request header list; larger requests are refused.
    h2_max_header_list_size: int = 64 * KIB
    #: Seconds between keep-alive PINGs on an HTTP/2 connection; 0 (the
    #: default, as in hyper, Go, nginx and Granian) sends none.
    h2_keep_alive_interval: float = 0.0
    #: Seconds to wait for a PING's acknowledgement before closing the connection.
    h2_keep_alive_timeout: float = 20.0

    def __post_init__(self) -> None:
        if not self.binds:
            raise ConfigError("binds must name at least one address")
        for bind in self.binds:
            if not isinstance(bind, Bind):
                raise ConfigError(f"binds must hold Bind objects, got {bind!r}")
        _at_least("threads", self.threads, 1)
        _at_least("queue_size", self.queue_size, 0)
        _at_least("max_body_size", self.max_body_size, 0)
        _at_least("buffer_memory_limit", self.buffer_memory_limit, 0)
        _at_least("max_header_size", self.max_header_size, 1)
        _at_least("max_headers", self.max_headers, 1)
        for name in (
            "queue_timeout",
            "keep_alive_timeout",
            "header_timeout",
            "body_timeout",
            "send_timeout",
        ):
            _seconds(name, getattr(self, name), allow_zero=False)
        _seconds("graceful_timeout", self.graceful_timeout, allow_zero=True)
        if self.log_level not in LOG_LEVELS:
            levels = ", ".join(LOG_LEVELS)
            raise ConfigError(f"log_level must be one of {levels}; got {self.log_level!r}")
        self._check_tls()
        self._check_http2()
        if self.tcp_congestion is not None and not _CONGESTION_NAME.fullmatch(self.tcp_congestion):
            raise ConfigError(
                "tcp_congestion must be the name of a TCP congestion control, 1 to 15 letters, "
                f"digits, '_' or '-' (e.g. cubic; see sysctl net.ipv4.tcp_allowed_congestion_control), "
                f"got {self.tcp_congestion!r}"
            )
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ConfigError(
                "root_path must be empty or start with '/' and not end with '/' (e.g. /api), "
                f"got {self.root_path!r}"
            )


    def _check_tls(self) -> None:
        for bind in self.insecure_binds:
            if not isinstance(bind, Bind):
                raise ConfigError(f"insecure_binds must hold Bind objects, got {bind!r}")
        if self.client_cert not in CLIENT_CERT_MODES:
            raise ConfigError(f"client_cert must be one of {', '.join(CLIENT_CERT_MODES)}; got {self.client_cert!r}")
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("TLS needs both certfile and keyfile (--certfile and --keyfile)")
        if self.certfile is None:
            for name in ("keyfile_password", "ca_certs"):
                if getattr(self, name) is not None:
                    raise ConfigError(f"{name} needs TLS: give --certfile and --keyfile too")
            if self.client_cert != "none":
                raise ConfigError("client_cert needs TLS: give --certfile and --keyfile too")
        if self.client_cert != "none" and self.ca_certs is None:
            raise ConfigError(f"client_cert {self.client_cert} needs ca_certs (--ca-certs) to verify them against")

    def _check_http2(self) -> None:
        _at_least("h2_max_concurrent_streams", self.h2_max_concurrent_streams, 1)
        # RFC 9113 §6.5.2 bounds the windows and the frame size.
        for name in ("h2_initial_stream_window_size", "h2_initial_connection_window_size"):
            value = getattr(self, name)
            if not 1 <= value <= 2**31 - 1:
                raise ConfigError(f"{name} must be between 1 and 2147483647 bytes (RFC 9113 §6.9.2), got {value}")
        if not 16 * KIB <= self.h2_max_frame_size <= 16 * MIB - 1:
            raise ConfigError(
                f"h2_max_frame_size must be between 16384 and 16777215 (RFC 9113 §6.5.2), got {self.h2_max_frame_size}"
            )
        _at_least("h2_max_header_list_size", self.h2_max_header_list_size, 1)
        _seconds("h2_keep_alive_interval", self.h2_keep_alive_interval, allow_zero=True)
        _seconds("h2_keep_alive_timeout", self.h2_keep_alive_timeout, allow_zero=False)


# Linux's TCP_CA_NAME_MAX is 16 bytes with the terminating NUL.
_CONGESTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,15}", re.ASCII)


def _at_least(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")


def _seconds(name: str, value: float, *, allow_zero: bool) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ConfigError(f"{name} must be a number of seconds, {bound}; got {value}")


def parse_bind(text: str) -> Bind:
    """Parse a ``--bind`` address.

    Accepted forms, following gunicorn's ``--bind``:

    - ``HOST:PORT`` -- ``127.0.0.1:8000``, ``localhost:8000``, ``0.0.0.0:0``;
    - ``[IPV6]:PORT`` -- ``[::1]:8000``; IPv6 addresses need the brackets;
    - ``unix:PATH`` -- ``unix:/run/app.sock``; like gunicorn, ``unix://PATH`` is
      the same (so ``unix:///run/app.sock`` is absolute, ``unix://app.sock``
      relative);
    - ``HOST`` or ``[IPV6]`` alone -- port 8000, as in gunicorn;
    - ``:PORT`` -- all IPv4 interfaces (``0.0.0.0``), as in gunicorn.

    A bare number such as ``8000`` is rejected: gunicorn reads it as a host
    named "8000", which is never what was meant. Ports range over 0-65535;
    0 asks the system for any free port.

    Raises :class:`ConfigError` naming the problem.
    """
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        return Bind(path=path[2:] if path.startswith("//") else path)
    if not text:
        raise ConfigError("empty bind address; use HOST:PORT, [IPV6]:PORT or unix:PATH")
    if text.isdigit():
        raise ConfigError(
            f"bind address {text!r} has no host; "
            f"use 127.0.0.1:{text} (this machine) or :{text} (all interfaces)"
        )
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"bad bind address {text!r}; IPv6 addresses are written [::1]:8000")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"bad bind address {text!r}: {host!r} is not an IPv6 address") from None
        port_text = rest[1:] if rest else None
    elif text.count(":") > 1:
        raise ConfigError(f"bad bind address {text!r}; put IPv6 addresses in brackets, e.g. [::1]:8000")
    else:
        host, colon, after = text.partition(":")
        host = host or "0.0.0.0"
        port_text = after if colon else None
    return Bind(host, DEFAULT_PORT if port_text is None else _port(port_text, text))


def _port(port_text: str, text: str) -> int:
    if not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(
            f"bad bind address {text!r}: the port must be a number from 0 to 65535, got {port_text!r}"
        )
    return int(port_text)


_SIZE = re.compile(r"\s*(\d+)\s*([kmg](?:ib)?)?\s*", re.IGNORECASE | re.ASCII)
_UNITS = {"": 1, "k": KIB, "m": MIB, "g": GIB}


def parse_size(text: str) -> int:
    """Parse a byte count: ``"1048576"``, ``"64K"``, ``"10M"``, ``"1GiB"``.

    Suffixes are case-insensitive and always powers of 1024: ``K``/``KiB`` is
    1024, ``M``/``MiB`` 1024**2, ``G``/``GiB`` 1024**3. ``KB``, ``MB`` and ``GB``
    are refused because they commonly mean powers of 1000. Only whole numbers.

    Raises :class:`ConfigError` for anything else.
    """
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ConfigError(
            f"bad size {text!r}; use a number of bytes, optionally with K, M or G "
            "(or KiB, MiB, GiB; powers of 1024), e.g. 10M"
        )
    number, unit = match.groups()
    return int(number) * _UNITS[(unit or "")[:1].lower()]
