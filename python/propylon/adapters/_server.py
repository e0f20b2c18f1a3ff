"""The ``server`` object an adapter hands to ``startup(server)``, and the
application's configuration it carries.

The configuration comes from the ``[app]`` table of the TOML file named by
``PROPYLON_CONFIG`` and from ``PROPYLON_APP_<KEY>`` environment variables, the
environment winning, read against the app's ``__config__`` by the same rules
as the ``propylon`` command (:mod:`propylon.appconfig`); a bad value raises
:class:`~propylon.config.ConfigError` with one line.

This module does not read the command line: an adapter runs inside another
server, whose command line is its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import propylon
from propylon.appconfig import read_app_environ, resolve
from propylon.application import ServerInfo
from propylon.declarations import ConfigKey
from propylon.sources import CONFIG_ENV, read_app_file

__all__ = ["read_app_config", "server_info"]


def read_app_config(declared: Mapping[str, ConfigKey] | None, environ: Mapping[str, str]) -> Mapping[str, object]:
    """The app's configuration: ``declared`` defaults, then the file, then the environment."""
    path = environ.get(CONFIG_ENV)
    from_file = read_app_file(path) if path else []
    return MappingProxyType(resolve((), read_app_environ(environ), from_file, declared))


def server_info(
    adapter: str, host: str | None, protocols: frozenset[str], features: frozenset[str], config: Mapping[str, object]
) -> ServerInfo:
    """The ``server`` object of an adapter: ``name`` is the adapter's, with the
    host server it runs in when known (``propylon.adapters.wsgi on gunicorn/23.0.0``)."""
    name = f"propylon.adapters.{adapter}" + (f" on {host}" if host else "")
    return ServerInfo(name=name, version=propylon.__version__, protocols=protocols, features=features,
                      worker=0, workers=1, config=config)  # fmt: skip
