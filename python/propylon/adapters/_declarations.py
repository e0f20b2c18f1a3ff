"""What an application object declares, read once by an adapter.

Reads the duck-typed protocol of the application object (``__endpoint__``,
``__routes__``, ``__static__``, ``__preload__``, ``__config__``, ``startup``,
``shutdown``; a plain callable is ``{"wsgi": app}``) with plain ``getattr``
into a :class:`Declarations`, checked: prefixes normalized as
:class:`~propylon.plan.StaticMount`'s (``""`` or ``/x``), mounts pointing at
existing directories, an endpoint that is callable, ``__preload__`` entries
as complete ``Link`` field values. Every mistake raises
:class:`ApplicationError` with one line saying what is wrong.

It asks ``__endpoint__`` only for the protocols the adapter serves, and does
not read the app's configuration values (:mod:`propylon.adapters._config`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from propylon.plan import StaticMount

__all__ = ["ApplicationError", "Declarations", "link_value", "normalize_prefix", "read_declarations"]

#: ``as=`` of a preload link by file extension (the Fetch standard's destinations);
#: fonts and JSON are fetched in CORS mode, so their links say ``crossorigin``.
PRELOAD_AS = {
    ".css": "style", ".js": "script", ".mjs": "script",
    ".woff2": "font", ".woff": "font", ".ttf": "font", ".otf": "font",
    ".png": "image", ".jpg": "image", ".jpeg": "image", ".gif": "image", ".webp": "image",
    ".avif": "image", ".svg": "image", ".ico": "image", ".json": "fetch",
}


class ApplicationError(ValueError):
    """The application object declares something unusable; ``str()`` is one line."""


@dataclass(frozen=True)
class Declarations:
    """An application object as an adapter serves it.

    ``endpoints`` maps each served protocol the app has to its callable;
    ``routes`` lists ``(protocol, prefix)`` for those endpoints; ``preload``
    holds complete ``Link`` field values.
    """

    endpoints: Mapping[str, Callable[..., Any]]
    routes: tuple[tuple[str, str], ...]
    static: tuple[StaticMount, ...]
    preload: tuple[str, ...]
    config: Mapping[str, object]
    startup: Callable[..., Any] | None
    shutdown: Callable[..., Any] | None


def read_declarations(app: object, protocols: Iterable[str]) -> Declarations:
    """Read ``app`` for an adapter serving ``protocols`` (``{"wsgi"}`` today)."""
    if not hasattr(app, "__endpoint__"):
        if not callable(app):
            raise ApplicationError(
                f"not an application: {type(app).__name__} has no __endpoint__ and is not a WSGI callable"
            )
        return Declarations({"wsgi": app}, (("wsgi", ""),), (), (), {}, None, None)

    endpoints: dict[str, Callable[..., Any]] = {}
    for protocol in sorted(protocols):
        endpoint = app.__endpoint__(protocol)
        if endpoint is None:
            continue
        if not callable(endpoint):
            raise ApplicationError(
                f"__endpoint__({protocol!r}) returned {type(endpoint).__name__}, not a callable or None"
            )
        endpoints[protocol] = endpoint

    declared = _mapping(app, "__routes__")
    routes: list[tuple[str, str]] = []
    for protocol in endpoints:
        prefixes = declared.get(protocol, ("/",))
        if isinstance(prefixes, str):
            raise ApplicationError(f"__routes__[{protocol!r}] is a string; give a list of prefixes: [{prefixes!r}]")
        routes += [(protocol, normalize_prefix(prefix, f"__routes__[{protocol!r}]")) for prefix in prefixes]

    static = tuple(_mount(prefix, value) for prefix, value in _mapping(app, "__static__").items())
    preload = getattr(app, "__preload__", None) or ()
    if isinstance(preload, str) or not all(isinstance(item, str) for item in preload):
        raise ApplicationError("__preload__ must be a sequence of URL paths or Link values (strings)")
    startup, shutdown = getattr(app, "startup", None), getattr(app, "shutdown", None)
    for name, hook in (("startup", startup), ("shutdown", shutdown)):
        if hook is not None and not callable(hook):
            raise ApplicationError(f"{name} is {type(hook).__name__}, not a function")
    return Declarations(endpoints, tuple(routes), static, tuple(map(link_value, preload)),
                        _mapping(app, "__config__"), startup, shutdown)


def normalize_prefix(prefix: object, where: str) -> str:
    """``"/"`` -> ``""``, ``"/api/"`` -> ``"/api"``; a prefix starts with ``/``."""
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ApplicationError(f"{where}: URL prefix {prefix!r} must be a string starting with '/'")
    return prefix.rstrip("/")


def link_value(item: str) -> str:
    """A ``__preload__`` entry as a ``Link`` field value (RFC 8288): a complete
    value (starting with ``<``) as it is, a URL path as ``<path>; rel=preload``
    with ``as=`` from its extension (RFC 8297 hints, the preload destinations)."""
    if item.startswith("<"):
        return item
    if not item.startswith("/") or any(char in item for char in '<>" ,;') or not item.isprintable():
        raise ApplicationError(f"__preload__ entry {item!r} is neither a URL path nor a Link value")
    kind = PRELOAD_AS.get(os.path.splitext(item.split("?", 1)[0])[1].lower())
    value = f"<{item}>; rel=preload"
    if kind is not None:
        value += f"; as={kind}"
        if kind in ("font", "fetch"):
            value += "; crossorigin"
    return value


def _mapping(app: object, name: str) -> Mapping[Any, Any]:
    value = getattr(app, name, None)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ApplicationError(f"{name} must be a mapping, not {type(value).__name__}")
    return value


def _mount(prefix: object, value: object) -> StaticMount:
    where = f"__static__[{prefix!r}]"
    declared = value if hasattr(value, "directory") else None
    directory = declared.directory if declared is not None else value
    if not isinstance(directory, (str, os.PathLike)):
        raise ApplicationError(f"{where}: a directory (str or os.PathLike) or a mount, not {type(value).__name__}")
    path = os.path.abspath(os.fspath(directory))
    if not os.path.isdir(path):
        what = "is not a directory" if os.path.exists(path) else "does not exist"
        raise ApplicationError(f"{where}: {path} {what}")
    return StaticMount(
        prefix=normalize_prefix(prefix, "__static__"),
        directory=path,
        cache_control=getattr(declared, "cache_control", None),
        index=getattr(declared, "index", "index.html"),
        precompressed=bool(getattr(declared, "precompressed", True)),
        follow_symlinks=bool(getattr(declared, "follow_symlinks", False)),
        dotfiles=bool(getattr(declared, "dotfiles", False)),
    )
