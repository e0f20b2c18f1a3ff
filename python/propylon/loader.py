"""Find the application object named on the command line (``MODULE:ATTR``).

Every way this can fail because of what the user typed or wrote raises
:class:`AppLoadError` with one line saying what went wrong and how to fix it;
the CLI prints that line instead of a traceback. This module does not check
what kind of application the object is beyond "callable or with
``__endpoint__``" (:mod:`propylon.declarations` reads it).
"""

from __future__ import annotations

import importlib
import os
import sys

__all__ = ["AppLoadError", "load_app"]

#: Attributes tried, in order, when the spec names only a module (as uvicorn/gunicorn do).
DEFAULT_ATTRS = ("application", "app")


class AppLoadError(Exception):
    """The application could not be loaded; ``str()`` is one line fit for the user.

    When the failure happened inside the user's code (an import that raised, a
    factory that raised), the original exception is the ``__cause__``.
    """


def load_app(spec: str, factory: bool) -> object:
    """Import ``MODULE:ATTR`` and return the object, calling it first if ``factory``.

    ``ATTR`` may be dotted (``pkg.web:api.app``); without it, ``application``
    and then ``app`` are tried. The current directory is put first on
    ``sys.path`` (as gunicorn and uvicorn do), so ``propylon hello:app`` finds
    ``./hello.py``.
    """
    module_name, colon, attr = spec.partition(":")
    if not module_name or (colon and not attr):
        raise AppLoadError(f"bad application {spec!r}; expected MODULE:ATTR, e.g. hello:app")
    if attr and not all(part.isidentifier() for part in attr.split(".")):
        raise AppLoadError(
            f"bad application {spec!r}: {attr!r} is not an attribute name "
            "(to call a function that builds the app, name it and add --factory)"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)

    module = _import(module_name)
    obj = _get_dotted(module, module_name, attr) if attr else _get_default(module, module_name)
    if factory:
        if not callable(obj):
            raise AppLoadError(f"--factory given, but {spec!r} is not callable (type {type(obj).__name__})")
        try:
            obj = obj()
        except Exception as exc:
            raise AppLoadError(f"application factory {spec!r} raised {_describe(exc)}") from exc
    if not callable(obj) and not hasattr(obj, "__endpoint__"):
        raise AppLoadError(
            f"{spec!r} is not a WSGI application: it is not callable (type {type(obj).__name__}), "
            "nor an application object (no __endpoint__); if calling it builds the application, add --factory"
        )
    return obj


def _import(module_name: str) -> object:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # The module itself (or a package on its path) is missing, as opposed to
        # an import inside the module failing.
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise AppLoadError(
                f"no module named {exc.name!r} (looked in the current directory and sys.path; "
                "check the name, the working directory or PYTHONPATH)"
            ) from None
        raise AppLoadError(f"importing {module_name!r} failed: {_describe(exc)}") from exc
    except Exception as exc:
        raise AppLoadError(f"importing {module_name!r} failed: {_describe(exc)}") from exc


def _get_dotted(module: object, module_name: str, attr: str) -> object:
    obj = module
    for depth, part in enumerate(attr.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            owner = ".".join([module_name, *attr.split(".")[:depth]])
            raise AppLoadError(f"{owner!r} has no attribute {part!r}") from None
    return obj


def _get_default(module: object, module_name: str) -> object:
    for name in DEFAULT_ATTRS:
        if hasattr(module, name):
            return getattr(module, name)
    tried = " or ".join(repr(name) for name in DEFAULT_ATTRS)
    raise AppLoadError(
        f"module {module_name!r} has no attribute {tried}; name the application: {module_name}:NAME"
    )


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line (the message's first line)."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
