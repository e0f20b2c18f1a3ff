"""Logging for the server, and the ``wsgi.errors`` stream.

Everything the server says goes through the standard :mod:`logging` tree under
``propylon`` (Rust logs reach it through the bridge):

- ``propylon.server`` -- lifecycle: "Listening on ...", "Shutting down", "Stopped";
- ``propylon.error``  -- application errors, with tracebacks (:func:`log_app_error`);
- ``propylon.access`` -- one line per request, only with ``--access-log``;
- ``propylon.wsgi``   -- what applications write to ``environ["wsgi.errors"]``
  (:class:`ErrorStream`).

Records go to stderr, or to ``--error-logfile`` (reopened when logrotate
moves it: :class:`logging.handlers.WatchedFileHandler`); ``--log-config``
applies a :mod:`logging.config` configuration after that, so it can replace
the handlers. With ``--access-logfile`` the server writes access lines itself,
not through ``propylon.access``.

This module does not decide what gets logged; it only routes and formats.
"""

from __future__ import annotations

import json
import logging
import logging.config
import logging.handlers
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from propylon.config import ConfigError

__all__ = ["FORMAT", "ErrorStream", "configure", "log_app_error"]

FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"

# Name given to the one handler configure() installs, so a second call finds and
# replaces it instead of adding another.
_HANDLER_NAME = "propylon.stderr"


def configure(level: str, access_log: bool, error_logfile: str | None = None, log_config: str | None = None) -> None:
    """Send the ``propylon`` loggers to stderr (or ``error_logfile``; ``-`` is
    stderr) in :data:`FORMAT`, then apply ``log_config`` if given (see
    :func:`apply_config`). Raises :class:`ConfigError` naming a file that
    cannot be opened or read.

    ``level`` is a :data:`propylon.config.LOG_LEVELS` name. The access log is
    independent of it: when enabled it logs at INFO even with ``--log-level
    warning``; when disabled its level is WARNING so no access line is even
    formatted. The tree does not propagate to the root logger, so an
    application's own logging setup neither duplicates nor swallows these lines.
    Calling this again replaces the previous setup.
    """
    logger = logging.getLogger("propylon")
    for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(old)
    handler: logging.Handler
    if error_logfile is None or error_logfile == "-":
        handler = logging.StreamHandler(sys.stderr)
    else:
        try:
            handler = logging.handlers.WatchedFileHandler(error_logfile)
        except OSError as exc:
            raise ConfigError(f"error_logfile: cannot open {error_logfile}: {exc.strerror}") from None
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    logging.getLogger("propylon.access").setLevel(logging.INFO if access_log else logging.WARNING)
    if log_config is not None:
        apply_config(log_config)


def apply_config(path: str) -> None:
    """Apply a :mod:`logging.config` configuration from ``path``.

    ``.json`` and ``.toml`` files hold a :func:`logging.config.dictConfig`
    dictionary; any other file is an ini file for
    :func:`logging.config.fileConfig`. Loggers the file does not name keep
    their setup (``disable_existing_loggers`` is false unless the file says
    otherwise). Raises :class:`ConfigError` with the reason.
    """
    suffix = Path(path).suffix.lower()
    try:
        if suffix in (".json", ".toml"):
            text = Path(path).read_text(encoding="utf-8")
            config: Any = json.loads(text) if suffix == ".json" else _toml(text)
            if not isinstance(config, dict):
                raise ConfigError(f"log_config: {path} must hold a table (a dictConfig dictionary)")
            config.setdefault("version", 1)
            config.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(config)
        else:
            if not Path(path).is_file():
                raise ConfigError(f"log_config: {path} is not a file")
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except ConfigError:
        raise
    except (OSError, ValueError, TypeError, AttributeError, ImportError, KeyError, RuntimeError) as exc:
        raise ConfigError(f"log_config: {path}: {exc}") from None


def _toml(text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    return tomllib.loads(text)


def log_app_error(message: str, exc: BaseException) -> None:
    """Log an application failure with its traceback on ``propylon.error``.

    Called by the Rust bridge, e.g. ``log_app_error("error in WSGI application", exc)``.
    """
    logging.getLogger("propylon.error").error("%s", message, exc_info=exc)


class ErrorStream:
    """The text stream given to applications as ``environ["wsgi.errors"]`` (PEP 3333).

    Each complete line written becomes one ERROR record on ``propylon.wsgi``.
    Partial lines are kept per thread -- one instance is shared by all requests
    and requests run on several threads -- until their newline arrives or
    :meth:`flush` is called.
    """

    def __init__(self) -> None:
        self._logger = logging.getLogger("propylon.wsgi")
        self._local = threading.local()

    def write(self, text: str) -> int:
        """Write ``text``; log every line it completes. Returns ``len(text)``."""
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors.write() takes str, not {type(text).__name__}")
        *lines, rest = (self._pending() + text).split("\n")
        self._local.pending = rest
        for line in lines:
            self._logger.error("%s", line.removesuffix("\r"))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each string in ``lines`` (no newlines are added, as with files)."""
        for text in lines:
            self.write(text)

    def flush(self) -> None:
        """Log this thread's unfinished line, if any."""
        rest = self._pending()
        if rest:
            self._local.pending = ""
            self._logger.error("%s", rest)

    def _pending(self) -> str:
        pending: str = getattr(self._local, "pending", "")
        return pending
