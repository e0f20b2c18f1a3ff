"""Server configuration: each option declared once, and the checks on its value.

Each field of :class:`Config` is the one declaration of an option: its name,
its type and default (the field's), its kind of value (a :class:`Kind`: how
text and TOML values are read, which values are allowed, how the default is
shown), its help line and its group in ``--help``. :data:`OPTIONS` lists them
in that order. Everything else is derived from it: the command line
(:mod:`propylon.cli`), the config file and the environment variables
(:mod:`propylon.sources`), the option table in ``docs/guide/configuration.md``
(``scripts/options_table.py``).

:class:`Config` crosses into Rust once, as a whole, when the server starts
(``propylon._core.serve(config, plan)``). Each field is checked when the object
is built and a bad value raises :class:`ConfigError` with a message fit for the
command line.

This module also parses the two kinds of option text that are not plain
numbers: bind addresses (:func:`parse_bind`) and byte sizes (:func:`parse_size`).
It does not know where a value came from (command line, environment, file):
callers pass a label naming it, which starts every message.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeGuard, TypeVar, get_args

__all__ = [
    "ENV_PREFIX",
    "LOG_LEVELS",
    "OPTIONS",
    "Address",
    "Bind",
    "Binds",
    "Choice",
    "Config",
    "ConfigError",
    "Count",
    "Kind",
    "Networks",
    "Option",
    "Seconds",
    "Size",
    "Switch",
    "Text",
    "parse_bind",
    "parse_size",
]

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

ClientCertMode = Literal["none", "optional", "required"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]

#: Accepted ``client_cert`` values: never ask, ask but accept none, require one.
CLIENT_CERT_MODES: tuple[ClientCertMode, ...] = get_args(ClientCertMode)

#: Accepted ``log_level`` values, most to least severe (the ``logging`` names).
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)

#: Prefix of the environment variables that set options (``PROPYLON_THREADS``).
ENV_PREFIX = "PROPYLON_"

#: Port used when a bind address names a host but no port (gunicorn's default).
DEFAULT_PORT = 8000

# Largest number of seconds a timeout may be: about 31 years, far beyond any
# useful timeout and far below what a deadline (now + timeout) can hold.
MAX_SECONDS = 1e9

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)
_Word = TypeVar("_Word", bound=str)


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


# ---------------------------------------------------------------- kinds of value


def _describe(value: object) -> str:
    """A TOML value as a message names it: ``the string '4'``, ``an array``."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the float {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"the date or time {value}"


# What the Rust side holds: counts in u32 (or usize), sizes in u64 (or usize).
_U32_MAX = 2**32 - 1
_I64_MAX = 2**63 - 1


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


class Kind(ABC, Generic[_T_co]):
    """A kind of option value: how it is read from text (the command line, an
    environment variable) and from a TOML value, which values are allowed, and
    how a value is written in ``--help`` and the docs.

    ``label`` names the option as the user wrote it (``--threads``,
    ``PROPYLON_THREADS``, ``propylon.toml:3: threads``, or the ``Config`` field);
    every message starts with it.
    """

    #: Placeholder for the value in ``--help``.
    metavar = "VALUE"
    #: What the value is, in the docs' option table.
    summary = "value"
    #: Given several times on the command line, the values add up (``--bind``).
    repeatable = False

    @abstractmethod
    def from_text(self, label: str, texts: Sequence[str]) -> _T_co:
        """The value of command-line or environment text. ``texts`` holds one
        text, or several for a repeatable option (one address each)."""

    @abstractmethod
    def from_toml(self, label: str, value: object) -> _T_co:
        """The value of a TOML value (already typed: int, float, str, list...)."""

    @abstractmethod
    def check(self, label: str, value: object) -> None:
        """Raise :class:`ConfigError` unless ``value`` is allowed."""

    def show(self, value: object) -> str:
        """``value`` as the user would write it."""
        return str(value)


class Count(Kind[int]):
    """A whole number from ``minimum`` to ``maximum``."""

    metavar = "N"
    summary = "integer"

    def __init__(self, minimum: int, maximum: int | None = None) -> None:
        self.minimum, self.maximum = minimum, maximum

    def from_text(self, label: str, texts: Sequence[str]) -> int:
        text = texts[-1].strip()
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise ConfigError(f"{label} must be a whole number, got {texts[-1]!r}")
        value = int(text)
        self.check(label, value)
        return value

    def from_toml(self, label: str, value: object) -> int:
        if _is_int(value):
            self.check(label, value)
            return value
        raise ConfigError(f"{label} must be an integer, not {_describe(value)}")

    def check(self, label: str, value: object) -> None:
        if not _is_int(value):
            raise ConfigError(f"{label} must be an integer, got {value!r}")
        _in_range(label, value, self.minimum, self.maximum, _U32_MAX)


def _in_range(label: str, value: int, minimum: int, maximum: int | None, limit: int, unit: str = "") -> None:
    """Check ``minimum <= value <= maximum``; without ``maximum``, ``limit`` (what
    the Rust side can hold) bounds the value and only the minimum is worth saying."""
    if minimum <= value <= (limit if maximum is None else maximum):
        return
    if maximum is not None:
        raise ConfigError(f"{label} must be between {minimum} and {maximum}{unit}, got {value}")
    if value < minimum:
        raise ConfigError(f"{label} must be at least {minimum}{unit}, got {value}")
    raise ConfigError(f"{label} must be at most {limit}{unit}, got {value}")


class Size(Kind[int]):
    """A number of bytes, from ``minimum`` to ``maximum``: an integer, or text
    with a K, M or G suffix (:func:`parse_size`)."""

    metavar = "BYTES"
    summary = "bytes"

    def __init__(self, minimum: int, maximum: int | None = None, source: str = "") -> None:
        self.minimum, self.maximum = minimum, maximum
        #: Where the bounds come from, e.g. "RFC 9113 §6.5.2", said when refusing a value.
        self.source = source

    def from_text(self, label: str, texts: Sequence[str]) -> int:
        try:
            value = parse_size(texts[-1])
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc}") from None
        self.check(label, value)
        return value

    def from_toml(self, label: str, value: object) -> int:
        if isinstance(value, str):
            return self.from_text(label, [value])
        if _is_int(value):
            self.check(label, value)
            return value
        raise ConfigError(f"{label} must be an integer or a string such as \"10M\", not {_describe(value)}")

    def check(self, label: str, value: object) -> None:
        if not _is_int(value):
            raise ConfigError(f"{label} must be an integer number of bytes, got {value!r}")
        unit = f" bytes ({self.source})" if self.source else ""
        _in_range(label, value, self.minimum, self.maximum, _I64_MAX, unit)

    def show(self, value: object) -> str:
        assert isinstance(value, int)
        for unit, factor in (("G", GIB), ("M", MIB), ("K", KIB)):
            if value and value % factor == 0:
                return f"{value // factor}{unit}"
        return str(value)


class Seconds(Kind[float]):
    """A number of seconds, decimals allowed; zero only with ``allow_zero``."""

    metavar = "S"
    summary = "seconds"

    def __init__(self, *, allow_zero: bool) -> None:
        self.allow_zero = allow_zero

    def from_text(self, label: str, texts: Sequence[str]) -> float:
        try:
            value = float(texts[-1])
        except ValueError:
            raise ConfigError(f"{label} must be a number of seconds, got {texts[-1]!r}") from None
        self.check(label, value)
        return value

    def from_toml(self, label: str, value: object) -> float:
        if _is_int(value) or isinstance(value, float):
            self.check(label, value)
            return float(value)
        raise ConfigError(f"{label} must be a number of seconds, not {_describe(value)}")

    def check(self, label: str, value: object) -> None:
        if not (_is_int(value) or isinstance(value, float)):
            raise ConfigError(f"{label} must be a number of seconds, got {value!r}")
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not self.allow_zero):
            bound = "zero or more" if self.allow_zero else "more than zero"
            raise ConfigError(f"{label} must be a number of seconds, {bound}; got {value}")
        if seconds > MAX_SECONDS:
            raise ConfigError(f"{label} must be at most {MAX_SECONDS:.0f} seconds; got {value}")

    def show(self, value: object) -> str:
        assert isinstance(value, (int, float))
        return f"{value:g}"


#: Text accepted for a switch in an environment variable (case-insensitive).
SWITCH_WORDS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


class Switch(Kind[bool]):
    """On or off: ``--name`` / ``--no-name``; ``true``/``false`` in the file;
    one of :data:`SWITCH_WORDS` in the environment."""

    metavar = ""
    summary = "on/off"

    def from_text(self, label: str, texts: Sequence[str]) -> bool:
        value = SWITCH_WORDS.get(texts[-1].strip().lower())
        if value is None:
            raise ConfigError(f"{label} must be 1, true, yes or on, or 0, false, no or off; got {texts[-1]!r}")
        return value

    def from_toml(self, label: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{label} must be true or false, not {_describe(value)}")
        return value

    def check(self, label: str, value: object) -> None:
        if not isinstance(value, bool):
            raise ConfigError(f"{label} must be True or False, got {value!r}")

    def show(self, value: object) -> str:
        return "on" if value else "off"


class Text(Kind[str]):
    """Free text, a path or a name; with ``pattern``, only text it matches
    whole, and ``rule`` says what that is ("must be ...")."""

    def __init__(
        self, metavar: str, summary: str = "text", pattern: re.Pattern[str] | None = None, rule: str = ""
    ) -> None:
        self.metavar, self.summary, self.pattern, self.rule = metavar, summary, pattern, rule

    def from_text(self, label: str, texts: Sequence[str]) -> str:
        self.check(label, texts[-1])
        return texts[-1]

    def from_toml(self, label: str, value: object) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{label} must be a string, not {_describe(value)}")
        self.check(label, value)
        return value

    def check(self, label: str, value: object) -> None:
        if not isinstance(value, str):
            raise ConfigError(f"{label} must be a string, got {value!r}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise ConfigError(f"{label} {self.rule}, got {value!r}")

    def show(self, value: object) -> str:
        return "none" if value is None else repr(value) if value == "" else str(value)


class Choice(Kind[_Word]):
    """One of a fixed set of lower-case words (a ``Literal`` type's values);
    text is read case-insensitively."""

    def __init__(self, metavar: str, values: tuple[_Word, ...]) -> None:
        self.metavar, self.values = metavar, values
        self.summary = " / ".join(values)

    def from_text(self, label: str, texts: Sequence[str]) -> _Word:
        text = texts[-1].strip().lower()
        for value in self.values:
            if value == text:
                return value
        raise ConfigError(f"{label} must be one of {', '.join(self.values)}; got {texts[-1]!r}")

    def from_toml(self, label: str, value: object) -> _Word:
        if not isinstance(value, str):
            raise ConfigError(f"{label} must be one of {', '.join(self.values)}, not {_describe(value)}")
        return self.from_text(label, [value])

    def check(self, label: str, value: object) -> None:
        if value not in self.values:
            raise ConfigError(f"{label} must be one of {', '.join(self.values)}; got {value!r}")


class Workers(Count):
    """A number of worker processes: a whole number, or ``auto`` (0): one per CPU."""

    metavar = "N|auto"
    summary = "integer or auto"

    def __init__(self) -> None:
        super().__init__(minimum=0)

    def from_text(self, label: str, texts: Sequence[str]) -> int:
        if texts[-1].strip().lower() == "auto":
            return 0
        return super().from_text(label, texts)

    def from_toml(self, label: str, value: object) -> int:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return 0
        return super().from_toml(label, value)

    def show(self, value: object) -> str:
        return "auto" if value == 0 else str(value)


class Paths(Kind[list[str]]):
    """Paths: a repeatable flag, an array of strings in the file."""

    metavar = "DIR"
    summary = "paths"
    repeatable = True

    def from_text(self, label: str, texts: Sequence[str]) -> list[str]:
        paths = list(texts)
        self.check(label, paths)
        return paths

    def from_toml(self, label: str, value: object) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{label} must be an array of paths, not {_describe(value)}")
        return self.from_text(label, value)

    def check(self, label: str, value: object) -> None:
        if not isinstance(value, list) or not all(isinstance(path, str) and path for path in value):
            raise ConfigError(f"{label} must be a list of non-empty paths, got {value!r}")

    def show(self, value: object) -> str:
        assert isinstance(value, list)
        return ", ".join(value) or "none"


class Binds(Kind[list[Bind]]):
    """Addresses to listen on (:func:`parse_bind`): a repeatable flag, an array
    of strings in the file; at least ``minimum`` of them."""

    metavar = "ADDR"
    summary = "addresses"
    repeatable = True

    def __init__(self, minimum: int) -> None:
        self.minimum = minimum

    def from_text(self, label: str, texts: Sequence[str]) -> list[Bind]:
        try:
            binds = [parse_bind(text) for text in texts]
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc}") from None
        self.check(label, binds)
        return binds

    def from_toml(self, label: str, value: object) -> list[Bind]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(
                f"{label} must be an array of addresses such as [\"127.0.0.1:8000\"], not {_describe(value)}"
            )
        return self.from_text(label, value)

    def check(self, label: str, value: object) -> None:
        if not isinstance(value, list) or not all(isinstance(bind, Bind) for bind in value):
            raise ConfigError(f"{label} must be a list of Bind objects, got {value!r}")
        if len(value) < self.minimum:
            raise ConfigError(f"{label} must name at least one address")

    def show(self, value: object) -> str:
        assert isinstance(value, list)
        return ", ".join(map(str, value)) or "none"


class Address(Kind[Bind]):
    """One address to listen on (:func:`parse_bind`)."""

    metavar = "ADDR"
    summary = "address"

    def from_text(self, label: str, texts: Sequence[str]) -> Bind:
        try:
            return parse_bind(texts[-1])
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc}") from None

    def from_toml(self, label: str, value: object) -> Bind:
        if not isinstance(value, str):
            raise ConfigError(f"{label} must be an address such as \"127.0.0.1:9100\", not {_describe(value)}")
        return self.from_text(label, [value])

    def check(self, label: str, value: object) -> None:
        if not isinstance(value, Bind):
            raise ConfigError(f"{label} must be a Bind object, got {value!r}")

    def show(self, value: object) -> str:
        return "none" if value is None else str(value)


#: gunicorn's access-log atoms (docs/guide/logging.md): one letter, or a
#: request (``i``) or response (``o``) header name in braces.
_ACCESS_ATOM = re.compile(r"%\((?:[hlutrmUqHsBbfaTDMLp]|\{[!#$%&'*+.^_`|~0-9A-Za-z-]+\}[io])\)s|%%")


class AccessLogFormat(Text):
    """An access-log format: text with gunicorn's atoms (``%(h)s``, ``%({name}i)s``).

    The compiled module parses the same format again; this check gives the
    one-line error at start (``%({name}e)s`` is refused: the environ is built
    in Python, after the line's fields are known to the runtime).
    """

    def __init__(self) -> None:
        super().__init__("FORMAT", "text")

    def check(self, label: str, value: object) -> None:
        super().check(label, value)
        assert isinstance(value, str)
        rest = _ACCESS_ATOM.sub("", value)
        if "%" in rest:
            bad = rest[rest.index("%") :][:16]
            hint = (
                "environ variables (%({name}e)s) are not available"
                if re.match(r"%\(\{[^}]*\}e\)s", bad)
                else "the atoms are %(h)s %(l)s %(u)s %(t)s %(r)s %(m)s %(U)s %(q)s %(H)s %(s)s %(B)s %(b)s "
                "%(f)s %(a)s %(T)s %(D)s %(M)s %(L)s %(p)s %({header}i)s %({header}o)s, and %% is a percent sign"
            )
            raise ConfigError(f"{label}: cannot use {bad!r}: {hint}")


class Networks(Kind[str]):
    """A comma-separated list of IP addresses and CIDR networks (``10.0.0.0/8``,
    ``::1``); ``*`` for every address; empty for none. Kept as the text given;
    each item is checked here, and read again by the server."""

    metavar = "IPS"
    summary = "addresses"

    def from_text(self, label: str, texts: Sequence[str]) -> str:
        self.check(label, texts[-1])
        return texts[-1]

    def from_toml(self, label: str, value: object) -> str:
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            value = ",".join(value)
        if not isinstance(value, str):
            raise ConfigError(f"{label} must be a string such as \"127.0.0.1,10.0.0.0/8\", not {_describe(value)}")
        self.check(label, value)
        return value

    def check(self, label: str, value: object) -> None:
        if not isinstance(value, str):
            raise ConfigError(f"{label} must be a string of addresses, got {value!r}")
        for item in (part.strip() for part in value.split(",")):
            if item in ("", "*"):
                continue
            address, slash, prefix = item.partition("/")
            try:
                if "%" in address or (slash and not (prefix.isascii() and prefix.isdigit())):
                    raise ValueError(item)
                ipaddress.ip_network(item)
            except ValueError as exc:
                reason = "has host bits set" if "host bits" in str(exc) else "is not an IP address or network"
                raise ConfigError(
                    f"{label}: {item!r} {reason}; use addresses and networks such as "
                    "127.0.0.1,::1,10.0.0.0/8, or * for every peer"
                ) from None

    def show(self, value: object) -> str:
        return repr(value) if value == "" else str(value)


# ---------------------------------------------------------------------- options


@dataclass(frozen=True)
class _Declaration:
    kind: Kind[Any]
    help: str
    group: str
    name: str | None
    short: str | None
    shown_default: str | None
    aliases: tuple[str, ...] = ()


_DECLARATION = "propylon.option"


def _option(
    default: _T,
    kind: Kind[_T],
    help: str,
    *,
    group: str,
    name: str | None = None,
    short: str | None = None,
    shown_default: str | None = None,
    aliases: tuple[str, ...] = (),
) -> _T:
    """Declare a :class:`Config` field as an option (see :class:`Option`).
    ``aliases`` are further command-line flags for it: the names gunicorn's
    or uvicorn's users type for the same setting."""
    declaration = _Declaration(kind, help, group, name, short, shown_default, aliases)
    return field(default=default, metadata={_DECLARATION: declaration})


def _option_list(
    default: Callable[[], _T], kind: Kind[_T], help: str, *, group: str, name: str, short: str | None = None
) -> _T:
    """:func:`_option` for a list field, whose default is made by a function."""
    declaration = _Declaration(kind, help, group, name, short, None)
    return field(default_factory=default, metadata={_DECLARATION: declaration})


@dataclass(frozen=True)
class Option:
    """One option as users see it, read from its :class:`Config` field.

    ``field`` is the attribute of :class:`Config`; ``name`` is the option's
    name everywhere else: the flag ``--name``, the config-file key ``name``
    (``_`` accepted for ``-``), the environment variable ``PROPYLON_NAME``
    (upper case, ``_`` for ``-``).
    """

    field: str
    name: str
    kind: Kind[Any]
    default: Any
    help: str
    #: Title of its group in ``--help``.
    group: str
    #: A one-letter flag as well (``-b``).
    short: str | None = None
    #: The default as the docs say it, when the value itself says nothing (None).
    shown_default: str | None = None
    #: Further flags for the same option (``--keep-alive``): other servers' names.
    aliases: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.replace("-", "_").upper()

    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        return self.kind.show(self.default)


# Groups of options in ``--help``, in the order they come.
LISTENING = "listening"
PROXIES = "proxies (X-Forwarded-*, Forwarded, PROXY protocol)"
TLS = "TLS (every --bind speaks TLS once --certfile is given)"
HTTP2 = "HTTP/2 (RFC 9113 §6.5.2)"
HINTS = "early hints and push (RFC 8297, RFC 9113 §8.4)"
WEBSOCKETS = "WebSockets (RFC 6455, RFC 8441; docs/guide/websocket.md)"
THREADS = "threads and the request queue"
WORKERS = "worker processes (docs/guide/workers.md)"
BODIES = "request bodies (sizes: bytes, or with K, M, G = powers of 1024)"
LIMITS = "limits and timeouts (seconds)"
LOGGING = "logging and mounting"
OBSERVE = "health, metrics and logs"

# Linux's TCP_CA_NAME_MAX is 16 bytes with the terminating NUL.
_CONGESTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,15}", re.ASCII)
_ROOT_PATH = re.compile(r"(/.*[^/])?", re.DOTALL)
_URL_PATH = re.compile(r"/[!$&'()*+,;=:@A-Za-z0-9._~%/-]*")
_URL_PATH_RULE = "must be a URL path starting with '/', without a query (e.g. /healthz)"

#: The access log's default format: gunicorn's default (Apache's "combined"),
#: the bytes as a number, and the duration in seconds.
DEFAULT_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(B)s "%(f)s" "%(a)s" %(L)s'


def _default_binds() -> list[Bind]:
    return [Bind("127.0.0.1", DEFAULT_PORT)]


@dataclass(frozen=True, kw_only=True)
class Config:
    """Everything the server needs besides the application; each field is one
    option, declared here once with its default, kind of value and help."""

    # _option and _option_list return a dataclasses.Field, as field() does (RUF009
    # takes them for default values computed once).
    binds: list[Bind] = _option_list(  # noqa: RUF009
        _default_binds, Binds(minimum=1),
        "address to listen on: HOST:PORT, [IPV6]:PORT or unix:PATH; port 0 picks a free port; "
        "repeat for several",
        group=LISTENING, name="bind", short="-b",
    )  # fmt: skip
    insecure_binds: list[Bind] = _option_list(  # noqa: RUF009
        list, Binds(minimum=0),
        "with TLS, a cleartext address to listen on as well (same forms as --bind); repeatable",
        group=LISTENING, name="insecure-bind",
    )  # fmt: skip
    # 2048, gunicorn's default (Linux caps it at net.core.somaxconn).
    backlog: int = _option(
        2048, Count(minimum=1, maximum=65535),
        "connections each listener queues before they are accepted", group=LISTENING,
    )  # fmt: skip
    tcp_congestion: str | None = _option(
        None,
        Text(
            "NAME",
            pattern=_CONGESTION_NAME,
            rule="must be the name of a TCP congestion control, 1 to 15 letters, digits, '_' or '-' "
            "(e.g. cubic; see sysctl net.ipv4.tcp_allowed_congestion_control)",
        ),
        "TCP congestion control of the TCP listeners, inherited by the connections they accept, "
        "e.g. cubic; Linux and FreeBSD",
        group=LISTENING, shown_default="the system's",
    )  # fmt: skip

    # uvicorn's and gunicorn's names and default: the local proxy is trusted.
    forwarded_allow_ips: str = _option(
        "127.0.0.1,::1", Networks(),
        "peers whose Forwarded and X-Forwarded-* fields and PROXY headers are believed: IP "
        "addresses and networks, comma-separated; * for every peer; Unix-socket peers too, unless it is empty",
        group=PROXIES,
    )  # fmt: skip
    proxy_headers: bool = _option(
        True, Switch(),
        "apply a trusted peer's Forwarded or X-Forwarded-For/-Proto/-Host/-Port to the client "
        "address, scheme and host the application sees",
        group=PROXIES,
    )  # fmt: skip
    proxy_protocol: bool = _option(
        False, Switch(),
        "every TCP listener expects a PROXY protocol header (v1 or v2) from a peer in "
        "--forwarded-allow-ips before TLS or HTTP; the header's source is then the client",
        group=PROXIES,
    )  # fmt: skip

    # With ``certfile``, every address in ``binds`` speaks TLS (ALPN h2 and
    # http/1.1); ``insecure_binds`` are cleartext listeners beside them
    # (Hypercorn's ``--insecure-bind``).
    certfile: str | None = _option(
        None, Text("PEM", "path"), "certificate chain (PEM); turns TLS on for every --bind", group=TLS
    )
    keyfile: str | None = _option(
        None, Text("PEM", "path"),
        "private key (PEM): RSA, ECDSA or Ed25519; PKCS#8, PKCS#1, SEC1, or encrypted PKCS#8",
        group=TLS,
    )  # fmt: skip
    keyfile_password: str | None = _option(
        None, Text("PASSWORD"), "password of an encrypted PKCS#8 key", group=TLS
    )
    ca_certs: str | None = _option(
        None, Text("PEM", "path"), "CA bundle that client certificates must chain to", group=TLS
    )
    client_cert: ClientCertMode = _option(  # noqa: RUF009
        "none", Choice("MODE", CLIENT_CERT_MODES),
        "ask clients for a certificate: none, optional or required (the last two need --ca-certs)",
        group=TLS,
    )  # fmt: skip

    h2_max_concurrent_streams: int = _option(
        100, Count(minimum=1), "HTTP/2 streams one connection may have open at once", group=HTTP2
    )
    h2_initial_stream_window_size: int = _option(
        1 * MIB, Size(1, 2**31 - 1, "RFC 9113 §6.9.2"),
        "HTTP/2 flow-control window of each stream: request body bytes buffered per stream",
        group=HTTP2,
    )  # fmt: skip
    h2_initial_connection_window_size: int = _option(
        2 * MIB, Size(1, 2**31 - 1, "RFC 9113 §6.9.2"),
        "HTTP/2 flow-control window of each connection: request body bytes buffered per connection",
        group=HTTP2,
    )  # fmt: skip
    h2_max_frame_size: int = _option(
        16 * KIB, Size(16 * KIB, 16 * MIB - 1, "RFC 9113 §6.5.2"),
        "largest HTTP/2 frame payload the server accepts", group=HTTP2,
    )  # fmt: skip
    h2_max_header_list_size: int = _option(
        64 * KIB, Size(1, 2**32 - 1), "largest decoded request header list on HTTP/2; larger gets 431",
        group=HTTP2,
    )  # fmt: skip
    # 0, as in hyper, Go, nginx and Granian: no PINGs.
    h2_keep_alive_interval: float = _option(
        0.0, Seconds(allow_zero=True), "seconds between keep-alive PINGs on an HTTP/2 connection; 0: none",
        group=HTTP2,
    )  # fmt: skip
    h2_keep_alive_timeout: float = _option(
        20.0, Seconds(allow_zero=False), "close the connection when a keep-alive PING is not answered within this",
        group=HTTP2,
    )  # fmt: skip

    early_hints: bool = _option(
        True, Switch(),
        "send 103 Early Hints: the application's preload links before its pages (GET requests "
        "for HTML) and its own hints (propylon.early_hints); off: no 103 at all",
        group=HINTS,
    )  # fmt: skip

    # Off, as in nginx since 1.25.1 (http2_push removed) and Chrome since 106: push
    # sends what the client may have cached, and was rarely a gain.
    http2_push: bool = _option(
        False, Switch(),
        "HTTP/2 server push of the application's preloads that a static mount serves, to clients "
        "that allow push",
        group=HINTS,
    )  # fmt: skip

    # 16 MiB, as uvicorn's ws_max_size; websockets' own default is 1 MiB.
    websocket_max_message: int = _option(
        16 * MIB, Size(1, 2**31 - 1),
        "largest WebSocket message received (after decompression); larger closes with 1009",
        group=WEBSOCKETS,
    )  # fmt: skip
    # 20 s and 20 s: the defaults of websockets and uvicorn.
    websocket_ping_interval: float = _option(
        20.0, Seconds(allow_zero=True), "seconds between WebSocket pings to each client; 0: none",
        group=WEBSOCKETS,
    )  # fmt: skip
    websocket_ping_timeout: float = _option(
        20.0, Seconds(allow_zero=False), "drop a WebSocket whose client does not answer a ping within this",
        group=WEBSOCKETS,
    )  # fmt: skip
    websocket_close_timeout: float = _option(
        10.0, Seconds(allow_zero=False),
        "how long a WebSocket closed by the application waits for the client's close frame",
        group=WEBSOCKETS,
    )  # fmt: skip
    websocket_send_queue: int = _option(
        1 * MIB, Size(1, 2**31 - 1),
        "bytes of outgoing WebSocket messages queued per connection before send() waits",
        group=WEBSOCKETS,
    )  # fmt: skip
    websocket_threads: int = _option(
        32, Count(minimum=1),
        "WebSockets served by blocking handlers at once (one thread each); beyond that the "
        "handshake is answered 503",
        group=WEBSOCKETS,
    )  # fmt: skip
    websocket_compression: bool = _option(
        True, Switch(), "permessage-deflate (RFC 7692) when the client offers it", group=WEBSOCKETS
    )

    threads: int = _option(8, Count(minimum=1), "Python threads that run the application", group=THREADS)
    queue_size: int = _option(
        256, Count(minimum=0),
        "requests that may wait for a free thread; beyond that the server answers 503; 0: no waiting",
        group=THREADS,
    )  # fmt: skip
    queue_timeout: float = _option(
        30.0, Seconds(allow_zero=False),
        "the longest a request waits for a free application thread; then it is answered 503",
        group=THREADS,
    )  # fmt: skip

    workers: int = _option(
        1, Workers(),
        "worker processes, each with its own threads, serving the same sockets under one "
        "supervisor that replaces any that dies; 0 or auto: one per CPU",
        group=WORKERS, short="-w",
    )  # fmt: skip
    preload: bool = _option(
        False, Switch(),
        "import the application in the supervisor, before the workers are forked: they share "
        "its memory, and SIGHUP restarts them without reloading the code",
        group=WORKERS,
    )  # fmt: skip
    reload: bool = _option(
        False, Switch(),
        "development: restart the workers when a Python file under --reload-dir changes "
        "(needs the watchfiles package: pip install 'propylon[reload]')",
        group=WORKERS,
    )  # fmt: skip
    reload_dirs: list[str] = _option_list(  # noqa: RUF009
        list, Paths(), "a directory --reload watches; repeatable", group=WORKERS, name="reload-dir"
    )
    # 30 s, as gunicorn's --timeout; here the request is logged with the Python
    # stacks and only a worker with every thread stuck is replaced.
    timeout: float = _option(
        30.0, Seconds(allow_zero=True),
        "a request that runs longer in the application is logged with every Python thread's "
        "stack; a worker whose threads are all past it is replaced (the new one first), and one "
        "still importing the application after it is killed; 0: never",
        group=WORKERS,
    )  # fmt: skip
    max_requests: int = _option(
        0, Count(minimum=0),
        "replace a worker once it has started this many requests: a new worker first, then the "
        "old one drains; 0: never",
        group=WORKERS, aliases=("--limit-max-requests",),
    )  # fmt: skip
    max_requests_jitter: int = _option(
        0, Count(minimum=0),
        "add a random 0 to N to each worker's --max-requests, so workers are not all replaced at once",
        group=WORKERS,
    )  # fmt: skip
    max_worker_memory: int = _option(
        0, Size(0),
        "replace a worker whose resident memory passes this (checked every second), as "
        "--max-requests does; 0: never",
        group=WORKERS,
    )  # fmt: skip
    limit_concurrency: int = _option(
        0, Count(minimum=0),
        "connections a worker serves at once; past it, new connections wait in the listen "
        "queue, where another worker may take them; 0: no limit",
        group=WORKERS,
    )  # fmt: skip
    pid: str | None = _option(
        None, Text("FILE", "path"), "write the supervisor's process id to this file", group=WORKERS
    )

    max_body_size: int = _option(
        1 * GIB, Size(0), "largest request body, counted before and after decompression; larger gets 413",
        group=BODIES,
    )  # fmt: skip
    decompress: bool = _option(
        False, Switch(), "decode request bodies sent with Content-Encoding gzip, deflate, br or zstd", group=BODIES
    )
    buffer_body: bool = _option(
        False, Switch(),
        "WSGI 1.0 compatibility: read each request body whole before calling the application, "
        "and set an exact CONTENT_LENGTH",
        group=BODIES,
    )  # fmt: skip
    buffer_memory_limit: int = _option(
        1 * MIB, Size(0), "with --buffer-body, larger bodies go to a temporary file", group=BODIES
    )
    buffer_disk_limit: int = _option(
        1 * GIB, Size(0),
        "with --buffer-body, the most disk all bodies in temporary files hold at once; a body that "
        "needs more than all of it gets 413, one that finds it used by others 503",
        group=BODIES,
    )  # fmt: skip
    preread_body_size: int = _option(
        16 * KIB, Size(0),
        "a request body of at most this many bytes is read whole by the server before the "
        "application is called (no thread waits for a slow client); 0: never",
        group=BODIES,
    )  # fmt: skip
    preread_memory_limit: int = _option(
        64 * MIB, Size(0),
        "the most memory all bodies read before the call (--preread-body-size, --buffer-body) hold at once; "
        "past it, bodies stream to the application (with --buffer-body: go to a temporary file)",
        group=BODIES,
    )  # fmt: skip
    min_body_rate: int = _option(
        240, Count(minimum=0),
        "bytes/s a client must send a request body at, on average, after --min-body-rate-grace; "
        "slower gets 408 (or ClientDisconnected in wsgi.input); 0: no minimum",
        group=LIMITS,
    )  # fmt: skip
    min_body_rate_grace: float = _option(
        5.0, Seconds(allow_zero=True), "how long a request body may be slower than --min-body-rate",
        group=LIMITS,
    )  # fmt: skip

    max_header_size: int = _option(
        64 * KIB, Size(1), "largest request head; larger gets 431 (414 when the request line alone is larger) and the connection is closed", group=LIMITS
    )
    max_headers: int = _option(
        100, Count(minimum=1), "most header fields in one request; more gets 431", group=LIMITS,
        aliases=("--limit-request-fields",),
    )  # fmt: skip
    keep_alive_timeout: float = _option(
        5.0, Seconds(allow_zero=False),
        "close a connection, HTTP/1.1 or HTTP/2, idle (no request in flight) for this long",
        group=LIMITS, aliases=("--keep-alive", "--timeout-keep-alive"),
    )  # fmt: skip
    header_timeout: float = _option(
        10.0, Seconds(allow_zero=False),
        "time a client has to send a complete HTTP/1.1 request head (against slowloris)",
        group=LIMITS,
    )  # fmt: skip
    body_timeout: float = _option(
        60.0, Seconds(allow_zero=False),
        "a wsgi.input read that waits longer than this for the client raises ClientDisconnected",
        group=LIMITS,
    )  # fmt: skip
    send_timeout: float = _option(
        60.0, Seconds(allow_zero=False),
        "close a connection whose client has taken no response data for this long "
        "(a full TCP buffer, an HTTP/2 window left at zero)",
        group=LIMITS,
    )  # fmt: skip
    graceful_timeout: float = _option(
        30.0, Seconds(allow_zero=True), "on SIGINT/SIGTERM, how long requests in flight may take to finish",
        group=LIMITS, aliases=("--timeout-graceful-shutdown",),
    )  # fmt: skip
    # 60 s for each, as Hypercorn's startup_timeout and shutdown_timeout.
    startup_timeout: float = _option(
        60.0, Seconds(allow_zero=False),
        "the longest the application's startup(server) may take; past it, or when it raises, "
        "the server exits with status 1",
        group=LIMITS,
    )  # fmt: skip
    shutdown_timeout: float = _option(
        60.0, Seconds(allow_zero=False),
        "the longest the application's shutdown() may take once requests have drained; "
        "past it the server exits anyway",
        group=LIMITS,
    )  # fmt: skip

    log_level: LogLevel = _option(  # noqa: RUF009
        "info", Choice("LEVEL", LOG_LEVELS), "level of the propylon loggers", group=LOGGING
    )
    access_log: bool = _option(
        False, Switch(), "log one line per response on propylon.access (whatever --log-level says)",
        group=LOGGING,
    )  # fmt: skip
    root_path: str = _option(
        "",
        Text("PATH", pattern=_ROOT_PATH, rule="must be empty or start with '/' and not end with '/' (e.g. /api)"),
        "URL prefix the application is mounted at, e.g. /api; becomes SCRIPT_NAME",
        group=LOGGING,
    )  # fmt: skip

    health_path: str | None = _option(
        None, Text("PATH", "URL path", _URL_PATH, _URL_PATH_RULE),
        "answer this path with 200 while serving and 503 while draining, without Python "
        "(before the application's routes); e.g. /healthz",
        group=OBSERVE,
    )  # fmt: skip
    metrics_path: str | None = _option(
        None, Text("PATH", "URL path", _URL_PATH, _URL_PATH_RULE),
        "serve Prometheus metrics (every worker's, summed) at this path of the server's own addresses; "
        "e.g. /metrics",
        group=OBSERVE,
    )  # fmt: skip
    metrics_bind: Bind | None = _option(  # noqa: RUF009
        None, Address(), "serve the Prometheus metrics at /metrics on this address of their own (plain HTTP)",
        group=OBSERVE,
    )  # fmt: skip
    access_log_format: str = _option(
        DEFAULT_ACCESS_LOG_FORMAT, AccessLogFormat(),
        "access-log line, with gunicorn's atoms (%(h)s, %(r)s, %(s)s, %(D)s, %({header}i)s ...)",
        group=OBSERVE,
    )  # fmt: skip
    access_log_json: bool = _option(
        False, Switch(), "write each access-log line as one JSON object, a key per atom of --access-log-format",
        group=OBSERVE,
    )  # fmt: skip
    access_logfile: str | None = _option(
        None, Text("FILE", "path"),
        "write the access log to this file ('-': stdout) from the server itself, not through Python "
        "logging; turns the access log on",
        group=OBSERVE,
    )  # fmt: skip
    error_logfile: str | None = _option(
        None, Text("FILE", "path"), "where the propylon loggers other than the access log write ('-': stderr)",
        group=OBSERVE, shown_default="-",
    )  # fmt: skip
    log_config: str | None = _option(
        None, Text("FILE", "path"),
        "a logging configuration applied after Propylon's own: a dictConfig in JSON or TOML (.json, .toml), "
        "or an ini file for fileConfig (any other name)",
        group=OBSERVE,
    )  # fmt: skip

    def __post_init__(self) -> None:
        for option in OPTIONS:
            value = getattr(self, option.field)
            if value is not None or option.default is not None:
                option.kind.check(option.field, value)
        self._check_tls()
        if self.reload and self.preload:
            raise ConfigError("--reload and --preload do not go together: a preloaded application is never reloaded")

    def _check_tls(self) -> None:
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


def _options() -> tuple[Option, ...]:
    options = []
    for spec in dataclasses.fields(Config):
        declared: _Declaration = spec.metadata[_DECLARATION]
        default_factory: Callable[[], object] | None = None
        if spec.default_factory is not dataclasses.MISSING:
            default_factory = spec.default_factory
        options.append(
            Option(
                field=spec.name,
                name=declared.name or spec.name.replace("_", "-"),
                kind=declared.kind,
                default=spec.default if default_factory is None else default_factory(),
                help=declared.help,
                group=declared.group,
                short=declared.short,
                shown_default=declared.shown_default,
                aliases=declared.aliases,
            )
        )
    return tuple(options)


#: Every option, in :class:`Config`'s order (the order of ``--help`` and the docs).
OPTIONS = _options()


# ------------------------------------------------------------ text of values


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
        return Bind(path=path.removeprefix("//"))
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
