"""The application's configuration: the values that reach it as ``server.config``.

Three sources give values, strongest first (as for the server's own options,
:data:`propylon.sources.PRECEDENCE`):

- the command line, ``--app-config KEY=VALUE`` (repeatable; the last of one key wins);
- the environment, ``PROPYLON_APP_<KEY>=VALUE`` (an empty variable counts as unset);
- the ``[app]`` table of the ``--config`` TOML file
  (:func:`propylon.sources.read_app_file`).

Keys compare without regard to case, ``-`` and ``_`` alike
(:func:`~propylon.declarations.normalize_key`). When the application declares
``__config__``, each value is read as its key's type (text from the command
line and the environment; a TOML value must already have that type, an
integer standing for a float too), a key it does not declare is refused, a
required key nobody gives is refused, and keys keep the declared spelling.
Without ``__config__`` every key given reaches the application under its
normalized name, with its value as given: text from the command line and the
environment, TOML values from the file.

A value that cannot be used raises :class:`~propylon.config.ConfigError`,
one line naming where it came from.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from propylon.config import ENV_PREFIX, SWITCH_WORDS, ConfigError, _describe
from propylon.declarations import ConfigKey, normalize_key

__all__ = ["APP_ENV_PREFIX", "GivenValue", "read_app_arguments", "read_app_environ", "resolve"]

#: Prefix of the environment variables that set the application's configuration.
APP_ENV_PREFIX = ENV_PREFIX + "APP_"

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INT = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class GivenValue:
    """One value as a source gives it: the key as written, the value (text
    when ``text``, else a TOML value), and ``label``, naming where it came
    from (``--app-config debug``, ``PROPYLON_APP_DEBUG``, ``app.toml:4: app.debug``)."""

    key: str
    value: object
    label: str
    text: bool


def read_app_arguments(arguments: Sequence[str]) -> list[GivenValue]:
    """The ``--app-config KEY=VALUE`` arguments, in order."""
    values = []
    for argument in arguments:
        key, equals, value = argument.partition("=")
        key = key.strip()
        if not equals or not _KEY.fullmatch(key):
            raise ConfigError(f"--app-config takes KEY=VALUE (e.g. --app-config debug=true), got {argument!r}")
        values.append(GivenValue(key, value, f"--app-config {key}", text=True))
    return values


def read_app_environ(environ: Mapping[str, str]) -> list[GivenValue]:
    """The ``PROPYLON_APP_*`` variables that are set and not empty."""
    values = []
    for name in sorted(environ):
        key = name[len(APP_ENV_PREFIX) :]
        if name.startswith(APP_ENV_PREFIX) and key and environ[name].strip():
            values.append(GivenValue(key, environ[name], name, text=True))
    return values


def resolve(
    cli: Iterable[GivenValue],
    environ: Iterable[GivenValue],
    file: Iterable[GivenValue],
    declared: Mapping[str, ConfigKey] | None,
) -> dict[str, object]:
    """The application's configuration from the three sources, each key from
    the strongest source that gives it, read against ``declared`` (the
    application's ``__config__``, by normalized key; None: none declared)."""
    given: dict[str, GivenValue] = {}
    for source in (file, environ, cli):
        for value in source:
            given[normalize_key(value.key)] = value
    if declared is None:
        return {key: value.value for key, value in given.items()}
    config: dict[str, object] = {}
    for key, value in given.items():
        spec = declared.get(key)
        if spec is None:
            raise ConfigError(_unknown(value, declared))
        config[spec.name] = _read(spec, value)
    for key, spec in declared.items():
        if key in given:
            continue
        if spec.required:
            raise ConfigError(
                f"the application needs configuration key {spec.name!r} ({spec.type.__name__}); "
                f"give it with --app-config {spec.name}=..., {APP_ENV_PREFIX}{normalize_key(spec.name).upper()} "
                "or in the [app] table of the config file"
            )
        config[spec.name] = spec.default
    return config


def _unknown(value: GivenValue, declared: Mapping[str, ConfigKey]) -> str:
    names = [spec.name for spec in declared.values()]
    close = difflib.get_close_matches(normalize_key(value.key), list(declared), n=1)
    hint = f" (did you mean {declared[close[0]].name!r}?)" if close else ""
    known = f"; it has {', '.join(names)}" if names else "; it declares none"
    return f"{value.label}: the application has no configuration key {value.key!r}{hint}{known}"


def _read(spec: ConfigKey, value: GivenValue) -> object:
    """``value`` as ``spec``'s type, or ConfigError."""
    if value.text:
        assert isinstance(value.value, str)
        return _from_text(spec.type, value.label, value.value)
    raw = value.value
    if spec.type is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if type(raw) is not spec.type:
        raise ConfigError(f"{value.label} must be {_TYPE_NAMES[spec.type]}, not {_describe(raw)}")
    return raw


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _from_text(kind: type, label: str, text: str) -> object:
    if kind is bool:
        flag = SWITCH_WORDS.get(text.strip().lower())
        if flag is None:
            raise ConfigError(f"{label} must be true or false (or 1/0, yes/no, on/off), got {text!r}")
        return flag
    if kind is int:
        if not _INT.fullmatch(text.strip()):
            raise ConfigError(f"{label} must be a whole number, got {text!r}")
        return int(text)
    if kind is float:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ConfigError(f"{label} must be a number, got {text!r}")
        return number
    return text
