"""Serve a WSGI application with preload links, as an application object's
``preload`` will: ``python tests/apps/serve_preload.py MODULE:ATTR [OPTIONS]``.

Takes the command line of ``python -m propylon`` (options only from it: no
config file, no environment), and hands the server a plan with
:data:`PRELOAD` besides the application, served on every path. The
application is imported through ``PYTHONPATH`` (tests.support.ServerProcess
sets it to the repository).
"""

from __future__ import annotations

import sys

from propylon import _core, _logging
from propylon.cli import parse_command_line
from propylon.config import Config
from propylon.loader import load_app
from propylon.plan import ServePlan

#: The links the server announces before the application's pages.
PRELOAD = (
    "</static/app.css>; rel=preload; as=style",
    "</static/app.js>; rel=preload; as=script",
)


def main(argv: list[str]) -> int:
    command_line = parse_command_line(argv)
    config = Config(**command_line.values)
    _logging.configure(config.log_level, config.access_log)
    app = load_app(command_line.app, command_line.factory)
    plan = ServePlan(wsgi=app, routes=(("wsgi", ""),), preload=PRELOAD)
    _core.serve(config, plan)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
