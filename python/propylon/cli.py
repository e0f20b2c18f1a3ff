"""The ``propylon`` command: ``propylon [options] MODULE:ATTR`` (also ``python -m propylon``).

Turns options into a :class:`~propylon.config.Config`, sets up logging, loads
the application and hands both to the Rust server. Defaults are not repeated
here: options the user did not give are left out, so ``Config``'s apply.

Errors the user can cause end in one line on stderr, ``propylon: error: ...``,
and exit status 2 (bad options) or 1 (the application cannot be loaded, the
server cannot start).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

from propylon import __version__, _logging
from propylon.config import (
    CLIENT_CERT_MODES,
    GIB,
    KIB,
    LOG_LEVELS,
    MIB,
    Config,
    ConfigError,
    parse_bind,
    parse_size,
)
from propylon.loader import AppLoadError, load_app

__all__ = ["main"]

PROG = "propylon"
EXIT_CONFIG = 2
EXIT_FAILURE = 1

_T = TypeVar("_T")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _checked(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """Make a ConfigError from ``parse`` an argparse error that keeps its message."""

    def convert(text: str) -> _T:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _size_text(size: int) -> str:
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each option's ``dest`` is the :class:`Config` field it sets."""
    defaults = Config()
    parser = _Parser(
        prog=PROG,
        description="Serve a Python web application (WSGI 1.1) over HTTP/1.1 and HTTP/2.",
        argument_default=argparse.SUPPRESS,
        allow_abbrev=False,
    )
    parser.add_argument(
        "app", metavar="MODULE:ATTR",
        help="the application, e.g. hello:app (ATTR defaults to 'application', then 'app')",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--factory", action="store_true",
        help="MODULE:ATTR is a function; call it without arguments to get the application",
    )

    listen = parser.add_argument_group("listening")
    listen.add_argument(
        "-b", "--bind", dest="binds", action="append", type=_checked(parse_bind), metavar="ADDR",
        help="address to listen on: HOST:PORT, [IPV6]:PORT or unix:PATH; port 0 picks a free port; "
        f"repeat for several (default: {', '.join(map(str, defaults.binds))})",
    )

    listen.add_argument(
        "--insecure-bind", dest="insecure_binds", action="append", type=_checked(parse_bind), metavar="ADDR",
        help="with TLS, a cleartext address to listen on as well; repeatable (default: none)",
    )
    listen.add_argument(
        "--tcp-congestion", metavar="NAME",
        help="TCP congestion control of the TCP listeners, e.g. cubic; Linux and FreeBSD "
        "(default: the system's, net.ipv4.tcp_congestion_control)",
    )

    tls = parser.add_argument_group("TLS (every --bind speaks TLS once --certfile is given)")
    tls.add_argument("--certfile", metavar="PEM", help="certificate chain (PEM)")
    tls.add_argument("--keyfile", metavar="PEM", help="private key (PEM; RSA, ECDSA or Ed25519)")
    tls.add_argument("--keyfile-password", metavar="PASSWORD", help="password of an encrypted PKCS#8 key")
    tls.add_argument("--ca-certs", metavar="PEM", help="CA bundle for verifying client certificates")
    tls.add_argument(
        "--client-cert", choices=CLIENT_CERT_MODES, metavar="MODE",
        help=f"ask clients for a certificate: {', '.join(CLIENT_CERT_MODES)} (default: {defaults.client_cert})",
    )

    h2 = parser.add_argument_group("HTTP/2")
    h2.add_argument(
        "--h2-max-concurrent-streams", type=int, metavar="N",
        help=f"streams open at once per connection (default: {defaults.h2_max_concurrent_streams})",
    )
    h2.add_argument(
        "--h2-initial-stream-window-size", type=_checked(parse_size), metavar="BYTES",
        help=f"flow-control window per stream (default: {_size_text(defaults.h2_initial_stream_window_size)})",
    )
    h2.add_argument(
        "--h2-initial-connection-window-size", type=_checked(parse_size), metavar="BYTES",
        help="flow-control window per connection "
        f"(default: {_size_text(defaults.h2_initial_connection_window_size)})",
    )
    h2.add_argument(
        "--h2-max-frame-size", type=_checked(parse_size), metavar="BYTES",
        help=f"largest frame accepted (default: {_size_text(defaults.h2_max_frame_size)})",
    )
    h2.add_argument(
        "--h2-max-header-list-size", type=_checked(parse_size), metavar="BYTES",
        help=f"largest decoded header list (default: {_size_text(defaults.h2_max_header_list_size)})",
    )
    h2.add_argument(
        "--h2-keep-alive-interval", type=float, metavar="S",
        help=f"seconds between keep-alive PINGs, 0 for none (default: {defaults.h2_keep_alive_interval:g})",
    )
    h2.add_argument(
        "--h2-keep-alive-timeout", type=float, metavar="S",
        help=f"close when a PING is not answered within S (default: {defaults.h2_keep_alive_timeout:g})",
    )

    workers = parser.add_argument_group("threads")
    workers.add_argument(
        "--threads", type=int, metavar="N",
        help=f"Python threads running the application (default: {defaults.threads})",
    )
    workers.add_argument(
        "--queue-size", type=int, metavar="N",
        help="requests that may wait for a thread before the server answers 503 "
        f"(default: {defaults.queue_size})",
    )
    workers.add_argument(
        "--queue-timeout", type=float, metavar="S",
        help="seconds a request may wait for a thread before the server answers 503 "
        f"(default: {defaults.queue_timeout:g})",
    )

    body = parser.add_argument_group("request bodies (sizes: bytes, or with K, M, G = powers of 1024)")
    body.add_argument(
        "--max-body-size", type=_checked(parse_size), metavar="BYTES",
        help="largest request body, raw or decoded; larger gets 413 "
        f"(default: {_size_text(defaults.max_body_size)})",
    )
    body.add_argument(
        "--decompress", action="store_true",
        help="decode request bodies sent with Content-Encoding gzip, deflate, br or zstd",
    )
    body.add_argument(
        "--buffer-body", action="store_true",
        help="WSGI 1.0 compatibility: read whole bodies first and always set CONTENT_LENGTH",
    )
    body.add_argument(
        "--buffer-memory-limit", type=_checked(parse_size), metavar="BYTES",
        help="with --buffer-body, larger bodies go to a temporary file "
        f"(default: {_size_text(defaults.buffer_memory_limit)})",
    )

    limits = parser.add_argument_group("limits and timeouts (seconds)")
    limits.add_argument(
        "--max-header-size", type=_checked(parse_size), metavar="BYTES",
        help=f"largest request head; larger gets 431 (default: {_size_text(defaults.max_header_size)})",
    )
    limits.add_argument(
        "--max-headers", type=int, metavar="N",
        help=f"most header fields in a request; more gets 431 (default: {defaults.max_headers})",
    )
    limits.add_argument(
        "--keep-alive-timeout", type=float, metavar="S",
        help=f"close idle keep-alive connections after S (default: {defaults.keep_alive_timeout:g})",
    )
    limits.add_argument(
        "--header-timeout", type=float, metavar="S",
        help=f"time allowed to send a request head (default: {defaults.header_timeout:g})",
    )
    limits.add_argument(
        "--body-timeout", type=float, metavar="S",
        help="a wsgi.input read waiting longer raises ClientDisconnected "
        f"(default: {defaults.body_timeout:g})",
    )
    limits.add_argument(
        "--send-timeout", type=float, metavar="S",
        help="close a connection whose client takes no response data for S "
        f"(default: {defaults.send_timeout:g})",
    )
    limits.add_argument(
        "--graceful-timeout", type=float, metavar="S",
        help="on SIGINT/SIGTERM, time given to requests in flight "
        f"(default: {defaults.graceful_timeout:g})",
    )

    misc = parser.add_argument_group("logging and mounting")
    misc.add_argument(
        "--log-level", type=str.lower, choices=LOG_LEVELS, metavar="LEVEL",
        help=f"one of {', '.join(LOG_LEVELS)} (default: {defaults.log_level})",
    )
    misc.add_argument("--access-log", action="store_true", help="log one line per request")
    misc.add_argument(
        "--root-path", metavar="PATH",
        help="URL prefix the application is mounted at; becomes SCRIPT_NAME (default: none)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status.

    argparse exits by itself (SystemExit) for ``--help``, ``--version`` and bad options.
    """
    options = vars(build_parser().parse_args(argv))
    spec: str = options.pop("app")
    factory: bool = options.pop("factory", False)
    try:
        config = Config(**options)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    _logging.configure(config.log_level, config.access_log)

    try:
        app = load_app(spec, factory)
    except AppLoadError as exc:
        if exc.__cause__ is None:
            return _fail(str(exc), EXIT_FAILURE)
        logging.getLogger("propylon.error").debug("loading %s failed", spec, exc_info=exc.__cause__)
        hint = "" if config.log_level == "debug" else " (--log-level debug shows the traceback)"
        return _fail(f"{exc}{hint}", EXIT_FAILURE)

    try:
        from propylon import _core
    except ImportError as exc:
        return _fail(f"propylon's compiled module is missing ({exc}); reinstall propylon", EXIT_FAILURE)
    try:
        clean = _core.serve(config, app)
    except OSError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        # The server handled SIGINT itself (and drained); Python's own handler
        # also noted it and raises here on the way out. Not an error.
        clean = True
    if not clean:
        # Application code is still running past --graceful-timeout on worker
        # threads; waiting for it would defeat the timeout.
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status
