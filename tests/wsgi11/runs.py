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
from tests.wsgi11.flup_hosts import FLUP_HOSTS
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
#: What the middleware cannot fix, per server (docs/spec/wsgi-1.1.md, section
#: 11), as ``(server, check id): reason``; the table gives the reason with the
#: failure. tests/test_wsgi11_conformance.py fails if one of these starts
#: passing (then remove it) or another check fails. (mod_wsgi's short responses need ``WSGIPassApacheRequest On``, which
#: tests/wsgi11/servers.py sets.)
KNOWN_LIMITS: dict[tuple[str, str], str] = {
    **{(host, "repeated-headers"): "nginx before 1.23.0 (Debian 12 has 1.22.1) passes each repeated request "
       "header field to FastCGI, SCGI and uwsgi gateways as a parameter of its own, and the gateway (flup, "
       "uWSGI) keeps the last, so the others are gone before the middleware runs (nginx 1.23.0 joins them)"
       for host in (*FLUP_HOSTS, "uwsgi-nginx")},
    ("mod_wsgi-daemon", "response-short"):
        "the daemon process does not own the client connection: mod_wsgi passes no request_rec to it "
        "(WSGIPassApacheRequest applies to embedded mode only), and the Apache child ends the response as "
        "complete when the daemon's stream ends, however it ends; the client reads the next response as the rest",
    ("cgi", "response-short"):
        "Apache (2.4.59 and later, CVE-2024-24795) drops a CGI script's Content-Length and frames the response "
        "itself (chunked, or a length it counts), and nothing a script does when it ends (exit status, a signal) "
        "reaches the client: the client gets a complete, shorter response",
    ("cgi", "file-wrapper-short"):
        "as response-short: Apache frames a CGI response by the bytes the script wrote, so a file shorter than "
        "its Content-Length arrives as a complete, shorter response",
}

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
    middleware = make_run(f"{label} + middleware", label, True, results[1], software)
    for cid, outcome in middleware["results"].items():
        if outcome["result"] == "fail" and (name, cid) in KNOWN_LIMITS:
            outcome["limit"] = KNOWN_LIMITS[name, cid]
    return [make_run(label, label, False, results[0], software), middleware]


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
