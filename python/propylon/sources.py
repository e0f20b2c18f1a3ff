"""Where option values come from besides the command line: a TOML config file
and ``PROPYLON_*`` environment variables; and the order in which they win.

Each source gives a mapping from :class:`~propylon.config.Config` field to
value, holding only what that source sets; :func:`merge` puts them together,
CLI over environment over file (:data:`PRECEDENCE`), and whatever none sets
keeps ``Config``'s default. Names and kinds of value come from
:data:`propylon.config.OPTIONS`; nothing here names an option.

- The file (:func:`read_file`): every option as a top-level key under its flag's
  name (``keep-alive-timeout = 5``; ``keep_alive_timeout`` is accepted too), of
  the TOML type its kind reads (a number of seconds, an array of addresses...).
  Unknown keys and wrong types are refused with the file and line. The
  ``[app]`` table holds the application's configuration, not options
  (:func:`read_app_file`, :mod:`propylon.appconfig`).
- The environment (:func:`read_environ`, :func:`unknown_variables`):
  ``PROPYLON_<NAME>``, the flag's name in upper case with ``_`` for ``-``
  (:attr:`Option.env <propylon.config.Option.env>`), read like command-line text; a repeatable
  option takes several values separated by commas or white space. An empty
  variable counts as unset. ``PROPYLON_CONFIG`` names the config file. Other
  ``PROPYLON_*`` variables are reported as warnings, not refused (as click-based
  servers such as Granian and Uvicorn ignore unknown variables of their
  prefix): a variable meant for something else must not stop a server.
  ``PROPYLON_APP_*`` variables are the application's (:mod:`propylon.appconfig`).

This module reads and checks values; it does not build the ``Config`` (the CLI
does, so cross-option checks such as TLS file pairs run once, on the result).
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from propylon.appconfig import APP_ENV_PREFIX, GivenValue
from propylon.config import ENV_PREFIX, OPTIONS, ConfigError
from propylon.declarations import normalize_key

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "APP_TABLE",
    "CONFIG_ENV",
    "PRECEDENCE",
    "merge",
    "read_app_file",
    "read_environ",
    "read_file",
    "unknown_variables",
]

#: The environment variable naming the config file (``--config`` wins over it).
CONFIG_ENV = "PROPYLON_CONFIG"
#: The table of the config file that holds the application's configuration.
APP_TABLE = "app"
#: The sources, strongest first; below them all, ``Config``'s defaults.
PRECEDENCE = ("command line", "environment", "config file")

_BY_ENV = {option.env: option for option in OPTIONS}
_BY_KEY = {option.name: option for option in OPTIONS} | {
    option.name.replace("-", "_"): option for option in OPTIONS
}


def merge(cli: Mapping[str, Any], environ: Mapping[str, Any], file: Mapping[str, Any]) -> dict[str, Any]:
    """Field values from the three sources: each field from the strongest
    source that sets it (:data:`PRECEDENCE`); a list given by a stronger source
    replaces the weaker one's, it does not add to it."""
    return {**file, **environ, **cli}


def _closest(name: str, names: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(names), n=1)
    return close[0] if close else None


# --------------------------------------------------------------- environment


def read_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """Field values set by ``PROPYLON_*`` variables (others are left to
    :func:`unknown_variables`).

    Raises :class:`ConfigError` for a value that cannot be used, naming the variable.
    """
    values: dict[str, Any] = {}
    for name in sorted(environ):
        option = _BY_ENV.get(name)
        text = environ[name]
        if option is None or not text.strip():
            continue
        texts = [item for item in re.split(r"[\s,]+", text) if item] if option.kind.repeatable else [text]
        values[option.field] = option.kind.from_text(name, texts)
    return values


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``PROPYLON_*`` variable that names no option."""
    warnings = []
    # Names are compared without the prefix, which every one shares.
    known = [name[len(ENV_PREFIX) :] for name in [*_BY_ENV, CONFIG_ENV]]
    for name in sorted(environ):
        if name.startswith(APP_ENV_PREFIX):
            continue
        if name.startswith(ENV_PREFIX) and name != CONFIG_ENV and name not in _BY_ENV:
            close = _closest(name[len(ENV_PREFIX) :], known)
            hint = f" (did you mean {ENV_PREFIX}{close}?)" if close else ""
            warnings.append(f"ignoring environment variable {name}: no option by that name{hint}")
    return warnings


# ------------------------------------------------------------------------ file


def read_file(path: str) -> dict[str, Any]:
    """Field values set by the TOML file at ``path`` (its ``[app]`` table aside).

    Raises :class:`ConfigError` for a file that cannot be read or parsed, an
    unknown key, an option given twice (``a-b`` and ``a_b``) or a value that
    cannot be used; the message starts with ``PATH:LINE:`` where there is one.
    """
    table, text = _load(path)
    lines = _key_lines(text)
    values: dict[str, Any] = {}
    keys: dict[str, str] = {}
    for key, value in table.items():
        where = f"{path}:{lines[key]}: " if key in lines else f"{path}: "
        if key == APP_TABLE:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{APP_TABLE!r} is the table of the application's configuration ([app])")
            continue
        option = _BY_KEY.get(key)
        if option is None:
            close = _closest(key, [option.name for option in OPTIONS])
            hint = f" (did you mean {close!r}?)" if close else ""
            raise ConfigError(f"{where}unknown option {key!r}{hint}")
        if option.field in keys:
            raise ConfigError(f"{where}{key!r} sets the same option as {keys[option.field]!r}; keep one")
        keys[option.field] = key
        values[option.field] = option.kind.from_toml(f"{where}{key}", value)
    return values


def read_app_file(path: str) -> list[GivenValue]:
    """The application's configuration in the ``[app]`` table of the TOML
    file at ``path``, values as TOML typed them.

    Raises :class:`ConfigError` as :func:`read_file` does, and for a key
    given twice (``a-b`` and ``A_B`` name the same key).
    """
    table, text = _load(path)
    app = table.get(APP_TABLE, {})
    if not isinstance(app, dict):
        return []  # read_file refuses it
    lines = _table_key_lines(text, APP_TABLE)
    values: dict[str, GivenValue] = {}
    for key, value in app.items():
        where = f"{path}:{lines[key]}: " if key in lines else f"{path}: "
        normal = normalize_key(key)
        if normal in values:
            raise ConfigError(f"{where}{APP_TABLE}.{key} is the same key as {values[normal].key!r}; keep one")
        values[normal] = GivenValue(key, value, f"{where}{APP_TABLE}.{key}", text=False)
    return list(values.values())


def _load(path: str) -> tuple[dict[str, Any], str]:
    """The TOML document at ``path`` and its text."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_syntax_error(path, exc)) from None


_AT = re.compile(r"(.*) \(at line (\d+), column (\d+)\)", re.DOTALL)


def _syntax_error(path: str, exc: ValueError) -> str:
    """tomllib's "Invalid value (at line 3, column 9)" as "PATH:3:9: invalid value"."""
    message = str(exc)
    match = _AT.fullmatch(message)
    where = path
    if match is not None:
        message, line, column = match.groups()
        where = f"{path}:{line}:{column}"
    message = message.replace(" (at end of document)", " at the end of the file")
    return f"{where}: {message[:1].lower()}{message[1:]}"


# A top-level key (bare or quoted, before `=` or a dotted part) and a table
# header (`[name]`, `[[name]]`, `[name.sub]`) at the start of a line (TOML 1.0 §Keys, §Table).
_KEY = r"""(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))"""
_KEY_LINE = re.compile(rf"\s*{_KEY}\s*[=.]")
_TABLE_LINE = re.compile(rf"\s*\[\[?\s*{_KEY}\s*(?:\.[^\]]*)?\]\]?\s*(?:#.*)?")


def _key_lines(text: str) -> dict[str, int]:
    """The line (from 1) where each top-level key of a TOML document is defined.

    tomllib gives values, not positions. This reads the lines the parser has
    already accepted: top-level keys come before the first table header, each
    header names a top-level key too, and lines inside multi-line strings are
    skipped.
    """
    lines: dict[str, int] = {}
    in_tables = False
    open_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if open_string is not None:
            if line.count(open_string) % 2 == 1:
                open_string = None
            continue
        key = _TABLE_LINE.fullmatch(line)
        if key is not None:
            in_tables = True
        elif not in_tables:
            key = _KEY_LINE.match(line)
        if key is not None:
            lines.setdefault(next(group for group in key.groups() if group is not None), number)
        for delimiter in ('"""', "'''"):
            if line.count(delimiter) % 2 == 1:
                open_string = delimiter
    return lines


def _table_key_lines(text: str, name: str) -> dict[str, int]:
    """The line (from 1) of each key written in the ``[name]`` table, from its
    header to the next header. Keys written ``name.key = ...`` at the top
    level are not found: messages about them name the file only."""
    header = re.compile(rf"\s*\[\s*{re.escape(name)}\s*\]\s*(?:#.*)?")
    lines: dict[str, int] = {}
    inside = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _TABLE_LINE.fullmatch(line) is not None:
            inside = header.fullmatch(line) is not None
            continue
        key = _KEY_LINE.match(line) if inside else None
        if key is not None:
            lines.setdefault(next(group for group in key.groups() if group is not None), number)
    return lines
