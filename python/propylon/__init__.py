"""Propylon: a Python application server written in Rust.

Run an application with ``propylon MODULE:ATTR`` (see ``propylon --help``).
This package holds the Python half: the command line, the configuration and
the public types applications use. The server itself is the compiled
``propylon._core`` module, imported only when serving, so everything here works
without it.
"""

from propylon.config import Bind, Config
from propylon.errors import (
    ClientDisconnected,
    InvalidRequestBody,
    RequestBodyError,
    RequestBodyTooLarge,
    RequestBodyTooSlow,
)
from propylon.filewrapper import FileWrapper

__version__ = "0.1.0"

__all__ = [
    "Bind",
    "ClientDisconnected",
    "Config",
    "FileWrapper",
    "InvalidRequestBody",
    "RequestBodyError",
    "RequestBodyTooLarge",
    "RequestBodyTooSlow",
    "__version__",
]
