"""docs/wsgi11-servers.md is what the conformance runs observed, and every check can fail.

The table is generated (``python -m propylon.wsgi11.conformance --table``)
from the JSON the runs write (target/wsgi11/results.json), and committed. This
test renders it again from this session's runs and compares, so the
published table cannot drift from what the servers do. Only the "Tested
with" list (versions) is left out of the comparison.

A check that no real server fails is proven able to fail against a
deliberately broken one (tests/wsgi11/breakers.py).
"""

from __future__ import annotations

import difflib

import pytest

from propylon.wsgi11.conformance import CHECKS, Context, Target, run
from propylon.wsgi11.conformance.report import load_runs, render_table, without_tested_with
from tests.wsgi11.apps import LIMIT
from tests.wsgi11.breakers import BREAKERS, PARTIAL_BREAKERS, UNBOUNDED, breaker_check
from tests.wsgi11.runs import ORDER, RESULTS, RUNS, TABLE, TABLE_COMMAND
from tests.wsgi11.servers import Wsgiref, unavailable


def _all_runs() -> list[dict]:
    for name in ORDER:
        if name != "propylon" and (reason := unavailable(name)):
            pytest.skip(f"the table covers {name}: {reason}")
    for name in ORDER:
        RUNS.get(name)
    RUNS.save()
    return load_runs([RESULTS])


@pytest.mark.timeout(900)
def test_committed_table_matches_the_run():
    page = render_table(_all_runs(), TABLE_COMMAND)
    committed = TABLE.read_text() if TABLE.exists() else ""
    if without_tested_with(page) != without_tested_with(committed):
        diff = "".join(difflib.unified_diff(committed.splitlines(True), page.splitlines(True),
                                            str(TABLE), "this run"))
        pytest.fail(f"{TABLE} does not match this run; if the change is right, regenerate it with\n"
                    f"    {TABLE_COMMAND}\n\n{diff}", pytrace=False)


def _breaker_context(url: str, name: str) -> Context:
    """The kit pointed at ``/break-NAME``, for the compatibility-mode checks too."""
    target = Target(f"{url}/break-{name}")
    return Context(target, target, LIMIT)


class KeepAliveWsgiref(Wsgiref):
    name = "wsgiref-keep-alive"

    def command(self, port: int) -> list[str]:
        return [*super().command(port), "--keep-alive"]


@pytest.mark.timeout(900)
def test_every_check_can_fail(start_module_server):
    runs = _all_runs()
    failing_somewhere = {cid for r in runs if not r["middleware"] for cid, o in r["results"].items()
                         if o["result"] == "fail"}
    required = [c.id for c in CHECKS if c.group != "info"]
    unproven = [cid for cid in required if cid not in failing_somewhere]
    propylon = start_module_server("tests.wsgi11.apps:application", "--max-body-size", str(LIMIT), "--decompress")
    proven = {}
    for cid in unproven:
        if cid == "unread-body":
            broken = KeepAliveWsgiref()
            try:
                proven[cid] = run(Context(Target(broken.url("native")), None, LIMIT), only=[cid])[cid]
            finally:
                broken.close()
            continue
        assert cid in BREAKERS, f"no real server fails {cid!r} and there is no breaker for it"
        # Alone: a derived check brings the checks it is derived from.
        proven[cid] = run(_breaker_context(propylon.url, cid), only=[cid])[cid]
    unbounded = start_module_server("tests.wsgi11.apps:application")
    for name in PARTIAL_BREAKERS:
        cid = breaker_check(name)
        url = unbounded.url if name in UNBOUNDED else propylon.url
        proven[f"{cid} ({name})"] = run(_breaker_context(url, name), only=[cid])[cid]
    still_passing = {cid: o for cid, o in proven.items() if o.result != "fail"}
    assert not still_passing, f"checks that did not fail against a broken server: {still_passing}"
