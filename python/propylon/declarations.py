"""Reading an application object: what it declares, checked, as plain data.

:func:`read_application` turns what the server was given (a plain WSGI
callable, or an application object: ``docs/spec/application.md``) into
:class:`Declarations`: the :class:`~propylon.plan.ServePlan` the compiled
server reads (endpoints, normalized URL prefixes, static mounts, ``Link``
values to announce), the application's configuration keys, and its
``startup``/``shutdown`` hooks. Everything an application can get wrong here
raises :class:`DeclarationError` with one line naming the declaration.

The rules:

- an object with ``__endpoint__`` is an application object; any other callable
  is a WSGI application served on every path (``{"wsgi": app}``);
- ``__endpoint__`` is asked only for the protocols the server serves
  (``protocols``); it returns a callable or None. Declarations for other
  protocols (``__routes__["websocket"]`` on a server without WebSockets) are
  checked like the rest but route nothing: their paths go to whatever else
  covers them;
- a prefix starts with ``/``, holds only characters of a URL path (RFC 3986
  §3.3) and no ``?``, ``#``, ``//``, ``.`` or ``..`` segment; one trailing
  ``/`` is dropped and ``/`` itself becomes ``""``, the prefix covering
  every path;
- a static mount names an existing, readable directory (made absolute);
- a preload entry is a URL path whose extension says what it is, or a
  complete ``Link`` field value (starting with ``<``).

This module reads and checks; it does not call hooks, read configuration
values (:mod:`propylon.appconfig`) or serve anything. It is shared by every way
of serving an application object (the ``propylon`` command, the adapters).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from propylon.plan import ServePlan, StaticMount, WebSocketRoute
from propylon.websocket import resolve_handlers

__all__ = [
    "PROTOCOLS",
    "SERVED_PROTOCOLS",
    "ConfigKey",
    "DeclarationError",
    "Declarations",
    "describe_exception",
    "link_value",
    "normalize_key",
    "normalize_prefix",
    "read_application",
]

#: The ``__endpoint__`` protocols the specification names, in routing order.
PROTOCOLS = ("websocket", "stream", "wsgi")
#: The protocols Propylon serves today.
SERVED_PROTOCOLS = frozenset({"wsgi", "websocket"})

#: The types a ``__config__`` key may have.
CONFIG_TYPES: tuple[type, ...] = (bool, int, float, str)


class DeclarationError(ValueError):
    """An application object declares something the server cannot use;
    ``str()`` is one line naming the declaration and what is wrong."""


@dataclass(frozen=True)
class ConfigKey:
    """One key of ``__config__``: its name as declared, its type, and its
    default (None when ``required``)."""

    name: str
    type: type
    default: object
    required: bool


@dataclass(frozen=True)
class Declarations:
    """What an application declares, checked.

    ``config`` maps each :func:`normalized <normalize_key>` key of
    ``__config__`` to its :class:`ConfigKey`; None when the application
    declares no ``__config__`` (then every given key reaches it as given).
    ``startup`` and ``shutdown`` are the hooks, None when absent.
    ``endpoints`` maps each served protocol to its endpoint (the plan holds
    the WSGI one as ``plan.wsgi``).
    """

    plan: ServePlan
    config: Mapping[str, ConfigKey] | None = None
    startup: Callable[[Any], object] | None = None
    shutdown: Callable[[], object] | None = None
    endpoints: Mapping[str, Callable[..., Any]] = dataclasses.field(default_factory=dict)


def read_application(app: object, protocols: Collection[str] = SERVED_PROTOCOLS) -> Declarations:
    """Read ``app`` for a server that serves ``protocols``.

    >>> def hello(environ, start_response): ...
    >>> read_application(hello).plan.routes
    (('wsgi', ''),)
    """
    if not hasattr(app, "__endpoint__"):
        if not callable(app):
            raise DeclarationError(
                f"not an application: a {type(app).__name__} is neither callable (WSGI) "
                "nor an application object (__endpoint__)"
            )
        if "wsgi" not in protocols:
            return Declarations(ServePlan(wsgi=None, routes=()))
        return Declarations(ServePlan.for_wsgi(app), endpoints={"wsgi": app})
    endpoint_of = app.__endpoint__
    if not callable(endpoint_of):
        raise DeclarationError(f"__endpoint__ must be a method, not a {type(endpoint_of).__name__}")
    declared_routes = _read_routes(getattr(app, "__routes__", None))
    endpoints: dict[str, Callable[..., Any]] = {}
    for protocol in PROTOCOLS:
        if protocol not in protocols:
            continue
        try:
            endpoint = endpoint_of(protocol)
        except Exception as exc:
            raise DeclarationError(f"__endpoint__({protocol!r}) raised {describe_exception(exc)}") from exc
        if endpoint is None:
            continue
        if not callable(endpoint):
            raise DeclarationError(
                f"__endpoint__({protocol!r}) returned a {type(endpoint).__name__}, not a callable or None"
            )
        endpoints[protocol] = endpoint
    routes = tuple(
        (protocol, prefix)
        for protocol in PROTOCOLS
        if protocol in endpoints and protocol != "websocket"
        for prefix in declared_routes.get(protocol, ("",))
    )
    websocket: tuple[WebSocketRoute, ...] = ()
    if "websocket" in endpoints:
        try:
            handlers = resolve_handlers(endpoints["websocket"], declared_routes.get("websocket", ("",)))
        except TypeError as exc:
            raise DeclarationError(str(exc)) from None
        websocket = tuple(WebSocketRoute(h.prefix, h.handler, h.style.value) for h in handlers.values())
    plan = ServePlan(
        wsgi=endpoints.get("wsgi"),
        routes=routes,
        static=_read_static(getattr(app, "__static__", None)),
        preload=_read_preload(getattr(app, "__preload__", None)),
        websocket=websocket,
    )
    return Declarations(
        plan=plan,
        config=_read_config(getattr(app, "__config__", None)),
        startup=_hook(app, "startup"),
        shutdown=_hook(app, "shutdown"),
        endpoints=endpoints,
    )


# -------------------------------------------------------------------- prefixes

# RFC 3986 §3.3: a path segment's characters (pchar), percent-encoded octets apart.
_SEGMENT = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*")


def normalize_prefix(prefix: object, where: str) -> str:
    """``prefix`` in a plan's form: ``""`` (every path) or ``/a/b`` without
    a trailing ``/``. ``where`` names the declaration in the message.

    >>> normalize_prefix("/static/", "__static__"), normalize_prefix("/", "__routes__")
    ('/static', '')
    """
    if not isinstance(prefix, str):
        raise DeclarationError(f"{where}: a URL prefix is a string such as '/api', not a {type(prefix).__name__}")
    if not prefix.startswith("/"):
        raise DeclarationError(f"{where}: bad URL prefix {prefix!r}: it must start with '/' (e.g. '/{prefix}')")
    normal = prefix[:-1] if prefix.endswith("/") else prefix
    for segment in normal.split("/")[1:]:
        if not segment:
            raise DeclarationError(f"{where}: bad URL prefix {prefix!r}: it has an empty segment ('//')")
        if segment in (".", ".."):
            raise DeclarationError(f"{where}: bad URL prefix {prefix!r}: it has a {segment!r} segment")
        if not _SEGMENT.fullmatch(segment):
            raise DeclarationError(
                f"{where}: bad URL prefix {prefix!r}: only characters of a URL path are allowed "
                "(no '?', '#', spaces or non-ASCII; percent-encode them, RFC 3986 §3.3)"
            )
    return normal


def _read_routes(routes: object) -> dict[str, tuple[str, ...]]:
    if routes is None:
        return {}
    if not isinstance(routes, Mapping):
        raise DeclarationError(
            f"__routes__ must be a mapping of protocol to URL prefixes, not a {type(routes).__name__}"
        )
    result: dict[str, tuple[str, ...]] = {}
    for protocol, prefixes in routes.items():
        if not isinstance(protocol, str):
            raise DeclarationError(f"__routes__: protocol names are strings, not {protocol!r}")
        where = f"__routes__[{protocol!r}]"
        if isinstance(prefixes, str) or not isinstance(prefixes, Sequence | frozenset | set):
            raise DeclarationError(
                f"{where} must be a list of URL prefixes such as ['/api'], not a {type(prefixes).__name__}"
            )
        normal = [normalize_prefix(prefix, where) for prefix in prefixes]
        result[protocol] = tuple(dict.fromkeys(normal))
    return result


# ---------------------------------------------------------------------- static


def _read_static(static: object) -> tuple[StaticMount, ...]:
    if static is None:
        return ()
    if not isinstance(static, Mapping):
        raise DeclarationError(
            f"__static__ must be a mapping of URL prefix to directory, not a {type(static).__name__}"
        )
    mounts: dict[str, StaticMount] = {}
    for prefix, mount in static.items():
        normal = normalize_prefix(prefix, "__static__")
        where = f"static mount {prefix!r}"
        if normal in mounts:
            raise DeclarationError(f"{where}: the prefix {mounts[normal].prefix or '/'!r} is mounted twice")
        mounts[normal] = _read_mount(normal, mount, where)
    return tuple(mounts.values())


#: A mount's settings where the declaration leaves them out: the plan's own
#: defaults (``propylon.Static`` declares the same, tested).
_MOUNT_DEFAULTS: dict[str, Any] = {field.name: field.default for field in dataclasses.fields(StaticMount)}


def _read_mount(prefix: str, mount: object, where: str) -> StaticMount:
    if isinstance(mount, (str, os.PathLike)):
        directory: object = mount
        mount = None
    elif hasattr(mount, "directory"):
        directory = mount.directory
    else:
        raise DeclarationError(
            f"{where}: a mount is a directory (str or os.PathLike) or an object with a 'directory' "
            f"such as propylon.Static, not a {type(mount).__name__}"
        )
    if not isinstance(directory, (str, os.PathLike)):
        raise DeclarationError(f"{where}: the directory must be a str or os.PathLike, not a {type(directory).__name__}")
    path = os.fspath(directory)
    if not isinstance(path, str):
        raise DeclarationError(f"{where}: the directory must be a str path, not bytes")
    path = os.path.abspath(path)
    if not os.path.exists(path):
        raise DeclarationError(f"{where}: directory {path} does not exist")
    if not os.path.isdir(path):
        what = "a file, not" if os.path.isfile(path) else "not"
        raise DeclarationError(f"{where}: {path} is {what} a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise DeclarationError(f"{where}: directory {path} is not readable by this process")

    cache_control = _optional_str(mount, "cache_control", where)
    if cache_control is not None and not _FIELD_VALUE.fullmatch(cache_control):
        raise DeclarationError(f"{where}: cache_control {cache_control!r} is not a valid header field value")
    index = _optional_str(mount, "index", where)
    if index is not None and (index in ("", ".", "..") or "/" in index or "\\" in index or "\0" in index):
        raise DeclarationError(f"{where}: index must be a file name such as 'index.html', not {index!r}")
    return StaticMount(
        prefix=prefix,
        directory=path,
        cache_control=cache_control,
        index=index,
        precompressed=_flag(mount, "precompressed", where),
        follow_symlinks=_flag(mount, "follow_symlinks", where),
        dotfiles=_flag(mount, "dotfiles", where),
    )


def _optional_str(mount: object, name: str, where: str) -> str | None:
    default = _MOUNT_DEFAULTS[name]
    value = getattr(mount, name, default) if mount is not None else default
    if value is not None and not isinstance(value, str):
        raise DeclarationError(f"{where}: {name} must be a string or None, not a {type(value).__name__}")
    return value


def _flag(mount: object, name: str, where: str) -> bool:
    default = _MOUNT_DEFAULTS[name]
    value = getattr(mount, name, default) if mount is not None else default
    if not isinstance(value, bool):
        raise DeclarationError(f"{where}: {name} must be True or False, not {value!r}")
    return value


# --------------------------------------------------------------------- preload

# RFC 9110 §5.5: a field value is visible characters, spaces and tabs (obs-text apart).
_FIELD_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?")
# RFC 3986 §3.3, §3.4: a path and query, as a URI-reference written in a Link (RFC 8288 §3).
_URL_PATH = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*")

# The request destination of each kind of file (the `as` of a preload link,
# https://html.spec.whatwg.org/#match-preload-type). Fonts and fetches are
# requested in CORS mode, so their preloads need `crossorigin` to be used
# (https://html.spec.whatwg.org/#link-type-preload).
_DESTINATIONS = {
    ".css": "style",
    ".js": "script", ".mjs": "script",
    ".woff2": "font", ".woff": "font", ".ttf": "font", ".otf": "font",
    ".png": "image", ".jpg": "image", ".jpeg": "image", ".gif": "image", ".webp": "image",
    ".avif": "image", ".svg": "image", ".ico": "image",
    ".json": "fetch",
    ".vtt": "track",
}  # fmt: skip
_CORS_DESTINATIONS = frozenset({"font", "fetch"})


def link_value(entry: str) -> str:
    """The ``Link`` field value announcing ``entry``: a URL path, whose
    extension gives the ``as``, or a complete value (starting with ``<``),
    kept as it is.

    >>> link_value("/static/app.css")
    '</static/app.css>; rel=preload; as=style'
    >>> link_value("/static/font.woff2")
    '</static/font.woff2>; rel=preload; as=font; crossorigin'
    """
    where = f"__preload__ entry {entry!r}"
    if entry.startswith("<"):
        if ">" not in entry or not _FIELD_VALUE.fullmatch(entry):
            raise DeclarationError(f"{where}: a Link value is '<URL>; rel=preload; as=...' in visible ASCII")
        return entry
    if not _URL_PATH.fullmatch(entry):
        raise DeclarationError(
            f"{where}: a preload is a URL path starting with '/' (percent-encoded, no fragment) "
            "or a complete Link value starting with '<'"
        )
    path = entry.split("?", 1)[0]
    extension = os.path.splitext(path)[1].lower()
    destination = _DESTINATIONS.get(extension)
    if destination is None:
        raise DeclarationError(
            f"{where}: cannot tell what {extension or 'a file without extension'!r} is; "
            f"give the Link value, e.g. '<{entry}>; rel=preload; as=fetch; crossorigin'"
        )
    cors = "; crossorigin" if destination in _CORS_DESTINATIONS else ""
    return f"<{entry}>; rel=preload; as={destination}{cors}"


def _read_preload(preload: object) -> tuple[str, ...]:
    if preload is None:
        return ()
    if isinstance(preload, str) or not isinstance(preload, Sequence):
        raise DeclarationError(f"__preload__ must be a list of URL paths, not a {type(preload).__name__}")
    links = []
    for entry in preload:
        if not isinstance(entry, str):
            raise DeclarationError(f"__preload__ entries are strings, not {type(entry).__name__}")
        links.append(link_value(entry))
    return tuple(dict.fromkeys(links))


# ---------------------------------------------------------------------- config

_CONFIG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def normalize_key(key: str) -> str:
    """Configuration keys compare without regard to case, ``-`` and ``_`` alike.

    >>> normalize_key("Database-URL")
    'database_url'
    """
    return key.lower().replace("-", "_")


def _read_config(declared: object) -> dict[str, ConfigKey] | None:
    if declared is None:
        return None
    if not isinstance(declared, Mapping):
        raise DeclarationError(
            f"__config__ must be a mapping of key to default value or type, not a {type(declared).__name__}"
        )
    keys: dict[str, ConfigKey] = {}
    for name, value in declared.items():
        if not isinstance(name, str) or not _CONFIG_NAME.fullmatch(name):
            raise DeclarationError(
                f"__config__: bad key {name!r}; keys are names of letters, digits, '_' and '-'"
            )
        normal = normalize_key(name)
        if normal in keys:
            raise DeclarationError(f"__config__: {name!r} and {keys[normal].name!r} are the same key")
        if isinstance(value, type):
            if value not in CONFIG_TYPES:
                raise DeclarationError(
                    f"__config__[{name!r}]: the type of a key is bool, int, float or str, not {value.__name__}"
                )
            keys[normal] = ConfigKey(name, value, None, required=True)
        elif isinstance(value, CONFIG_TYPES):
            keys[normal] = ConfigKey(name, type(value), value, required=False)
        else:
            raise DeclarationError(
                f"__config__[{name!r}]: the default must be a bool, int, float or str "
                f"(or one of those types for a required key), not {value!r}"
            )
    return keys


# ----------------------------------------------------------------------- hooks


def _hook(app: object, name: str) -> Callable[..., object] | None:
    hook = getattr(app, name, None)
    if hook is not None and not callable(hook):
        raise DeclarationError(f"{name} must be a function or None, not a {type(hook).__name__}")
    return hook


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line (the message's first line)."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
