"""Serve a WSGI application with static mounts, for the static-file tests.

``python tests/apps/serve_plan.py MOUNTS APP [propylon options]``: ``MOUNTS``
is a JSON list of :class:`propylon.plan.StaticMount` keyword arguments; the
WSGI application ``APP`` serves every other path. The options are the
``propylon`` command's. The plan goes to ``propylon._core.serve`` as the
command would hand it one; errors end in one line, as the command's do.
"""

from __future__ import annotations

import json
import sys

from propylon import _core, _logging
from propylon.cli import parse_command_line
from propylon.config import Config, ConfigError
from propylon.loader import load_app
from propylon.plan import ServePlan, StaticMount


def main(argv: list[str]) -> int:
    mounts = tuple(StaticMount(**mount) for mount in json.loads(argv[0]))
    try:
        command_line = parse_command_line(argv[1:])
        config = Config(**command_line.values)
    except ConfigError as exc:
        print(f"propylon: error: {exc}", file=sys.stderr)
        return 2
    _logging.configure(config.log_level, config.access_log)
    app = load_app(command_line.app, command_line.factory)
    plan = ServePlan(wsgi=app, routes=(("wsgi", ""),), static=mounts)
    try:
        _core.serve(config, plan)
    except (OSError, ValueError) as exc:
        print(f"propylon: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
