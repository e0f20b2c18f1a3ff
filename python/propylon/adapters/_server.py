"""The ``server`` object an adapter hands to ``startup(server)``, and the
application's configuration it carries.

The configuration comes from the ``[app]`` table of the TOML file named by
``PROPYLON_CONFIG`` and from ``PROPYLON_APP_<KEY>`` environment variables, the
environment winning, checked against the app's ``__config__``: each key's
default gives its type (a type object, such as ``str``, makes the key required);
``bool``, ``int``, ``float`` and ``str`` are the types there are. Unknown keys,
missing required keys and values of the wrong type raise
:class:`~propylon.adapters._declarations.ApplicationError` with one line.

This module does not read the command line: an adapter runs inside another
server, whose command line is its own.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from propylon.adapters._declarations import ApplicationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["APP_ENV_PREFIX", "Server", "read_app_config"]

#: Environment variables setting one configuration key each: ``PROPYLON_APP_GREETING``.
APP_ENV_PREFIX = "PROPYLON_APP_"
#: The environment variable naming the TOML file whose ``[app]`` table is read.
CONFIG_ENV = "PROPYLON_CONFIG"

_TYPES: tuple[type, ...] = (bool, int, float, str)
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


@dataclass(frozen=True)
class Server:
    """What the application runs on (the ``server`` of ``startup(server)``).

    ``host`` says what the adapter runs in, as far as it can tell: the WSGI
    server's ``SERVER_SOFTWARE`` (``gunicorn/23.0.0``), or ``asgi/3.0`` (ASGI
    does not name the server); ``None`` on Propylon itself.
    """

    name: str
    version: str
    protocols: frozenset[str]
    features: frozenset[str]
    worker: int = 0
    workers: int = 1
    config: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    host: str | None = None


def read_app_config(declared: Mapping[str, object], environ: Mapping[str, str]) -> Mapping[str, object]:
    """The app's configuration: ``declared`` defaults, then the file, then the environment."""
    types = {key: _key_type(key, default) for key, default in declared.items()}
    values = {key: default for key, default in declared.items() if not isinstance(default, type)}
    by_env = {_env_name(key): key for key in declared}

    path = environ.get(CONFIG_ENV)
    if path:
        for key, value in _read_table(path).items():
            if key not in types:
                raise ApplicationError(f"{path}: [app] {key}: unknown key{_known(types)}")
            values[key] = _typed(types[key], value, f"{path}: [app] {key}")
    for name, text in environ.items():
        if not name.startswith(APP_ENV_PREFIX) or not text:
            continue
        if name not in by_env:
            raise ApplicationError(f"{name}: unknown application configuration key{_known(types)}")
        key = by_env[name]
        values[key] = _parse(types[key], text, name)

    missing = [key for key in declared if key not in values]
    if missing:
        raise ApplicationError(
            f"application configuration {missing[0]!r} is required: set {_env_name(missing[0])} "
            f"or {missing[0]} in the [app] table of the file named by {CONFIG_ENV}"
        )
    return MappingProxyType(values)


def _key_type(key: object, default: object) -> type:
    if not isinstance(key, str) or not key.isidentifier():
        raise ApplicationError(f"__config__ key {key!r} must be an identifier")
    kind = default if isinstance(default, type) else type(default)
    if kind not in _TYPES:
        raise ApplicationError(
            f"__config__[{key!r}]: {kind.__name__} is not a configuration type (bool, int, float, str)"
        )
    return kind


def _env_name(key: str) -> str:
    return APP_ENV_PREFIX + key.upper()


def _known(types: Mapping[str, type]) -> str:
    return f" (known: {', '.join(sorted(types))})" if types else " (the application declares no __config__)"


def _read_table(path: str) -> Mapping[str, object]:
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ApplicationError(f"{CONFIG_ENV}={path}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ApplicationError(f"{path}: {exc}") from None
    table = document.get("app", {})
    if not isinstance(table, dict):
        raise ApplicationError(f"{path}: app must be a table ([app])")
    return table


def _typed(kind: type, value: object, where: str) -> object:
    """A TOML value, already typed: checked (an integer is accepted as a float)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not kind:
        raise ApplicationError(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def _parse(kind: type, text: str, where: str) -> object:
    """An environment variable's text as ``kind``."""
    if kind is str:
        return text
    if kind is bool:
        word = text.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ApplicationError(f"{where}={text!r}: expected a boolean (true/false, 1/0, yes/no)")
    try:
        return kind(text.strip())
    except ValueError:
        raise ApplicationError(f"{where}={text!r}: expected {'an integer' if kind is int else 'a number'}") from None
