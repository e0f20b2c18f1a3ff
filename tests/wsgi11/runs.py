"""The conformance kit run against every server, once per test session.

``RUNS.get(name)`` starts that server for real, runs the kit against its
probe without the middleware (``/native``) and behind it (``/middleware``,
with ``/buffered`` for the compatibility-mode checks), stops the server and
keeps both runs; later calls return them. The conformance tests and the
table test share these runs, whichever runs first. ``RUNS.save()`` writes
every run so far to ``target/wsgi11/results.json``, from which
``python -m propylon.wsgi11.conformance --table`` renders docs/wsgi11-servers.md.

Propylon runs twice: with ``--buffer-body`` for its compatibility-mode checks
(Appendix B is an option there), and without for the rest.
"""

from __future__ import annotations

import threading
from typing import Any

import propylon
from propylon.wsgi11.conformance import Context, Target, run
from propylon.wsgi11.conformance.report import make_run, save_runs
from tests.support import REPO, ServerProcess, check_stopped_cleanly
from tests.wsgi11.apps import LIMIT
from tests.wsgi11.servers import APP, SERVERS

RESULTS = REPO / "target" / "wsgi11" / "results.json"
TABLE = REPO / "docs" / "wsgi11-servers.md"
TABLE_COMMAND = f"python -m propylon.wsgi11.conformance --table {RESULTS.relative_to(REPO)} --output {TABLE.relative_to(REPO)}"
ORDER = ("propylon", "gunicorn", "waitress", "wsgiref", "mod_wsgi", "mod_wsgi-daemon", "cgi", "uwsgi", "uwsgi-nginx",
         "fastcgi", "scgi")
LABELS = {"propylon": "Propylon", "gunicorn": "gunicorn", "waitress": "waitress", "wsgiref": "wsgiref",
          "mod_wsgi": "mod_wsgi", "mod_wsgi-daemon": "mod_wsgi daemon mode",
          "cgi": "CGI (Apache mod_cgid + wsgiref CGIHandler)", "uwsgi": "uWSGI", "uwsgi-nginx": "uWSGI behind nginx",
          "fastcgi": "flup FastCGI behind nginx", "scgi": "flup SCGI behind nginx"}
#: Propylon's options for these runs: ``--decompress`` so the checks on decoded
#: bodies apply; ``--graceful-timeout 5`` so that a connection still open at
#: the end (the kit leaves some on purpose) cannot hold the stop for 30 s.
PROPYLON_ARGS = ["--max-body-size", str(LIMIT), "--decompress", "--threads", "16", "--graceful-timeout", "5"]
BUFFERED_CHECKS = ("buffered-length", "buffered-truncated")


def _contexts(native: str, middleware: str, buffered_native: str, buffered_middleware: str) -> tuple[Context, Context]:
    return (Context(Target(native), Target(buffered_native), LIMIT),
            Context(Target(middleware), Target(buffered_middleware), LIMIT))


def _run_propylon() -> list[dict[str, Any]]:
    plain = ServerProcess(APP, PROPYLON_ARGS, ["127.0.0.1:0"])
    buffered = ServerProcess(APP, [*PROPYLON_ARGS, "--buffer-body"], ["127.0.0.1:0"])
    try:
        native, middleware = _contexts(f"{plain.url}/native", f"{plain.url}/middleware",
                                       f"{buffered.url}/native", f"{plain.url}/buffered")
        results = run(native), run(middleware)
    finally:
        problems = check_stopped_cleanly(plain, plain.stop()) + check_stopped_cleanly(buffered, buffered.stop())
    assert not problems, "\n".join(problems)
    software = (f"Propylon {propylon.__version__} (this repository), with `--decompress`; "
                "its App. B rows are from `--buffer-body`")
    return [make_run("Propylon", "Propylon", False, results[0], software),
            make_run("Propylon + middleware", "Propylon", True, results[1], software)]


def _run_external(name: str) -> list[dict[str, Any]]:
    server = SERVERS[name]()
    try:
        native, middleware = _contexts(server.url("native"), server.url("middleware"),
                                       server.url("native"), server.url("buffered"))
        results = run(native), run(middleware)
        software = server.software()
    finally:
        server.close()
    label = LABELS[name]
    return [make_run(label, label, False, results[0], software),
            make_run(f"{label} + middleware", label, True, results[1], software)]


class Runs:
    def __init__(self) -> None:
        self._runs: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            if name not in self._runs:
                self._runs[name] = _run_propylon() if name == "propylon" else _run_external(name)
                self.save()
            return self._runs[name]

    def ordered(self) -> list[dict[str, Any]]:
        return [run for name in ORDER if name in self._runs for run in self._runs[name]]

    def save(self) -> None:
        save_runs(RESULTS, self.ordered())


RUNS = Runs()
