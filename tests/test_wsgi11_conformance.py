"""The WSGI 1.1 conformance kit against real servers, with and without ``WSGI11Middleware``.

Each server is started for real (tests/wsgi11/servers.py, and Propylon
itself) and the kit (``propylon.wsgi11.conformance``) runs against the probe
application on its own and behind the middleware (tests/wsgi11/runs.py; the
runs are shared with tests/test_wsgi11_table.py, which checks that the
published table, docs/wsgi11-servers.md, is what these runs observed).

What must hold: Propylon gives every guarantee by itself; every server gives
every guarantee behind the middleware, except the limits the specification
states ("Reference implementation"), listed in ``KNOWN_LIMITS`` with the
reason; and the servers without the middleware do show the failures the
middleware exists to fix.
"""

from __future__ import annotations

import pytest

from propylon.wsgi11.conformance import CHECKS
from tests.wsgi11.runs import KNOWN_LIMITS, ORDER, RUNS
from tests.wsgi11.servers import unavailable

REQUIRED = {c.id for c in CHECKS if c.group != "info"}



def _runs(server: str) -> tuple[dict, dict]:
    if server != "propylon" and (reason := unavailable(server)):
        pytest.skip(reason)
    native, middleware = RUNS.get(server)
    return native, middleware


def _failures(run: dict) -> dict[str, str]:
    return {cid: r["detail"] for cid, r in run["results"].items() if r["result"] == "fail" and cid in REQUIRED}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("server", ORDER)
def test_every_guarantee_behind_the_middleware(server):
    _, middleware = _runs(server)
    expected = {cid for (name, cid) in KNOWN_LIMITS if name == server}
    failures = _failures(middleware)
    assert set(failures) == expected, f"{server} + middleware: {failures} (known limits: {expected})"


@pytest.mark.timeout(300)
def test_propylon_gives_every_guarantee_by_itself():
    native, _ = _runs("propylon")
    assert _failures(native) == {}
    not_run = [cid for cid, r in native["results"].items() if r["result"] == "n/a"]
    assert not_run == [], f"checks not run against Propylon: {not_run}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("server", [s for s in ORDER if s != "propylon"])
def test_servers_we_did_not_write_lack_guarantees_by_themselves(server):
    # The "without middleware" column is not vacuous: every one of them reports
    # wsgi.version (1, 0), and each fails more than that.
    native, _ = _runs(server)
    failures = _failures(native)
    assert "version" in failures, failures
    assert len(failures) >= 2, failures


@pytest.mark.timeout(300)
@pytest.mark.parametrize("server", ["propylon", "gunicorn", "waitress", "mod_wsgi", "mod_wsgi-daemon", "uwsgi",
                                    "uwsgi-nginx"])
def test_middleware_keeps_the_servers_file_path(server):
    # The application returns the middleware's FileWrapper; the server must
    # still send the file its own way (sendfile, waitress's I/O thread), not
    # have it iterated in Python (uWSGI: uwsgi.sendfile(), from tell() up to
    # Content-Length, in place of its own wrapper). (wsgiref has no such path.)
    native, middleware = _runs(server)
    assert native["results"]["file-wrapper-fast-path"]["result"] == "pass"
    assert middleware["results"]["file-wrapper-fast-path"]["result"] == "pass", middleware["results"]["file-wrapper-fast-path"]
