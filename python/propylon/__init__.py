"""Propylon: a Python application server written in Rust.

Run an application with ``propylon MODULE:ATTR`` (see ``propylon --help``).
This package holds the Python half: the command line, the configuration and
the public types applications use (:class:`Application`, :class:`Static`,
:class:`ServerInfo`: ``docs/guide/application.md``; :class:`WebSocketClosed`:
``docs/guide/websocket.md``). The server itself is the compiled
``propylon._core`` module, imported only when serving, so everything here works
without it.
"""

from propylon.application import Application, ServerInfo, Static
from propylon.config import Bind, Config
from propylon.errors import (
    ClientDisconnected,
    InvalidRequestBody,
    RequestBodyError,
    RequestBodyTooLarge,
    RequestBodyTooSlow,
)
from propylon.filewrapper import FileWrapper
from propylon.websocket import WebSocketClosed

__version__ = "0.1.0"

__all__ = [
    "Application",
    "Bind",
    "ClientDisconnected",
    "Config",
    "FileWrapper",
    "InvalidRequestBody",
    "RequestBodyError",
    "RequestBodyTooLarge",
    "RequestBodyTooSlow",
    "ServerInfo",
    "Static",
    "WebSocketClosed",
    "__version__",
]
