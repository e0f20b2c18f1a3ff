"""Logging for the server, and the ``wsgi.errors`` stream.

Everything the server says goes through the standard :mod:`logging` tree under
``propylon`` (Rust logs reach it through the bridge):

- ``propylon.server`` -- lifecycle: "Listening on ...", "Shutting down", "Stopped";
- ``propylon.error``  -- application errors, with tracebacks (:func:`log_app_error`);
- ``propylon.access`` -- one line per request, only with ``--access-log``;
- ``propylon.wsgi``   -- what applications write to ``environ["wsgi.errors"]``
  (:class:`ErrorStream`).

This module does not decide what gets logged; it only routes and formats.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable

__all__ = ["FORMAT", "ErrorStream", "configure", "log_app_error"]

FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"

# Name given to the one handler configure() installs, so a second call finds and
# replaces it instead of adding another.
_HANDLER_NAME = "propylon.stderr"


def configure(level: str, access_log: bool) -> None:
    """Send the ``propylon`` loggers to stderr in :data:`FORMAT`.

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
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    logging.getLogger("propylon.access").setLevel(logging.INFO if access_log else logging.WARNING)


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
