"""The ``propylon`` command: ``propylon [options] MODULE:ATTR`` (also ``python -m propylon``).

Gathers option values from the command line, ``PROPYLON_*`` environment
variables and a ``--config`` TOML file (:mod:`propylon.sources`), builds one
:class:`~propylon.config.Config` from them, sets up logging, binds the
listening sockets and hands over to the supervisor (:mod:`propylon.supervisor`),
whose workers load the application, read what it declares and its
configuration, run its hooks and serve (:mod:`propylon.worker`). With
``--preload`` the application is loaded here, once. Every option flag is derived
from :data:`propylon.config.OPTIONS`; no option, default or help text is
written here. Options nobody gave are left out, so ``Config``'s defaults apply.

Errors the user can cause end in one line on stderr, ``propylon: error: ...``,
and exit status 2 (bad options, an unknown option, a bad config file or
variable, a bad value for the application's configuration) or 1 (the
application cannot be loaded, declares something the server cannot use, its
``startup`` fails, the server cannot start). A worker's own failure to start
is printed once, by the supervisor, with the worker's status.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from propylon import __version__, _logging, supervisor, worker
from propylon.appconfig import read_app_arguments, read_app_environ
from propylon.config import OPTIONS, Config, ConfigError, Switch
from propylon.sources import (
    CONFIG_ENV,
    merge,
    read_app_file,
    read_environ,
    read_file,
    unknown_variables,
)
from propylon.worker import EXIT_CONFIG, EXIT_FAILURE, AppSource

__all__ = ["CommandLine", "build_parser", "main", "parse_command_line"]

PROG = "propylon"

_EPILOG = """\
Every option can also be set in a TOML file (--config; key: the option's name
without the dashes, e.g. keep-alive-timeout = 5) or in an environment variable
(PROPYLON_ and the name in upper case with _ for -, e.g.
PROPYLON_KEEP_ALIVE_TIMEOUT=5). The command line wins over the environment,
the environment over the file. The application's own configuration comes the
same ways: --app-config KEY=VALUE, PROPYLON_APP_KEY=VALUE, the file's [app] table.
"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one flag per :data:`~propylon.config.OPTIONS` entry.

    Each option's ``dest`` is its :class:`Config` field, and its value the text
    as given (a list for repeatable options, a bool for switches): values are
    read by the option's kind afterwards, as environment values are.
    """
    parser = _Parser(
        prog=PROG,
        usage="%(prog)s [options] MODULE:ATTR",
        description="Serve a Python web application (WSGI 1.1) over HTTP/1.1 and HTTP/2.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
        allow_abbrev=False,
    )
    parser.add_argument(
        "app", metavar="MODULE:ATTR", nargs="?",
        help="the application, e.g. hello:app (ATTR defaults to 'application', then 'app')",
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--factory", action="store_true",
        help="MODULE:ATTR is a function; call it without arguments to get the application",
    )  # fmt: skip
    parser.add_argument(
        "--config", metavar="FILE",
        help=f"read options from this TOML file (default: ${CONFIG_ENV} if set, else none)",
    )  # fmt: skip
    parser.add_argument(
        "--app-config", metavar="KEY=VALUE", action="append", dest="app_config",
        help="a setting of the application's configuration (server.config); repeatable",
    )  # fmt: skip
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in OPTIONS:
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        flags = [option.flag] if option.short is None else [option.short, option.flag]
        flags += option.aliases
        text = f"{option.help} (default: {option.default_text()})".replace("%", "%%")
        if isinstance(option.kind, Switch):
            action: Any = argparse.BooleanOptionalAction
            groups[option.group].add_argument(*flags, dest=option.field, action=action, help=text)
        else:
            groups[option.group].add_argument(
                *flags, dest=option.field, metavar=option.kind.metavar, help=text,
                action="append" if option.kind.repeatable else "store",
            )  # fmt: skip
    return parser


@dataclass(frozen=True)
class CommandLine:
    """What the command line says: the application, ``--factory``, ``--config``,
    the value of each option it gives, by :class:`Config` field, and the
    ``--app-config`` arguments."""

    app: str
    factory: bool
    config: str | None
    values: dict[str, Any]
    app_config: tuple[str, ...] = ()


def parse_command_line(argv: Sequence[str] | None = None) -> CommandLine:
    """Read the command line. Bad syntax, an unknown option or a missing
    application exit (SystemExit, status 2, one line); a bad option value raises
    :class:`ConfigError` naming the flag."""
    parser = build_parser()
    parsed, leftovers = parser.parse_known_args(argv)
    _check_leftovers(parser, leftovers)
    given = vars(parsed)
    if given.get("app") is None:
        parser.error("the application MODULE:ATTR is required, e.g. propylon hello:app")
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if option.field not in given:
            continue
        raw = given[option.field]
        if isinstance(option.kind, Switch):
            values[option.field] = bool(raw)
        else:
            values[option.field] = option.kind.from_text(option.flag, raw if isinstance(raw, list) else [raw])
    app_config = tuple(given.get("app_config", ()))
    return CommandLine(given["app"], given.get("factory", False), given.get("config"), values, app_config)


def _check_leftovers(parser: argparse.ArgumentParser, leftovers: list[str]) -> None:
    """Refuse what argparse did not recognise, naming it: an unknown option by
    its flag (not the application that happens to follow it), else the first
    extra argument."""
    for arg in leftovers:
        if arg.startswith("-") and arg != "-":
            name = arg.split("=", 1)[0]
            close = [flag for flag in parser._option_string_actions if flag.startswith("--")]
            hint = _closest(name, close)
            parser.error(f"unknown option {name}{hint}")
    if leftovers:
        parser.error(f"unexpected argument {leftovers[0]!r}; give one MODULE:ATTR")


def _closest(name: str, names: list[str]) -> str:
    match = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {match[0]}?)" if match else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status.

    argparse exits by itself (SystemExit) for ``--help``, ``--version`` and bad
    options; so does an unknown option.
    """
    warnings = unknown_variables(os.environ)
    try:
        command_line = parse_command_line(argv)
        config_path = command_line.config or os.environ.get(CONFIG_ENV) or None
        env_values = read_environ(os.environ)
        file_values = read_file(config_path) if config_path is not None else {}
        config = Config(**merge(command_line.values, env_values, file_values))
        source = AppSource(
            command_line.app,
            command_line.factory,
            read_app_arguments(command_line.app_config),
            read_app_environ(os.environ),
            read_app_file(config_path) if config_path is not None else [],
        )
    except ConfigError as exc:
        if warnings:
            _logging.configure("warning", access_log=False)
            _warn(warnings)
        return _fail(str(exc), EXIT_CONFIG)
    try:
        _logging.configure(config.log_level, config.access_log, config.error_logfile, config.log_config)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    _warn(warnings)
    if config.reload and importlib.util.find_spec("watchfiles") is None:
        return _fail("--reload needs the watchfiles package: pip install 'propylon[reload]'", EXIT_CONFIG)
    return supervise(source, config)


def supervise(source: AppSource, config: Config) -> int:
    """Load the application here with ``--preload``, bind, and run the
    supervisor (:mod:`propylon.supervisor`) until it stops."""
    preloaded = None
    if config.preload:
        try:
            preloaded = worker.load(source, config)
        except worker.BootFailed as exc:
            return _fail(str(exc), exc.status)
    try:
        from propylon import _core  # noqa: F401
    except ImportError as exc:
        return _fail(f"propylon's compiled module is missing ({exc}); reinstall propylon", EXIT_FAILURE)
    try:
        listeners = supervisor.bind(config)
    except OSError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    return supervisor.Supervisor(source, config, listeners, preloaded).run()


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        logging.getLogger("propylon.server").warning("%s", warning)


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status
