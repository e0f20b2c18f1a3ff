"""Results of conformance runs: the JSON format, and the Markdown table made from it.

A *run* is the outcome of every check against one server in one
configuration (``label``, e.g. "gunicorn" or "gunicorn + middleware"). The
JSON file holds a list of runs; :func:`render_table` turns it into the page
published as docs/wsgi11-servers.md, so the table is always made from what a
run observed, never typed by hand.

The page has four parts: the servers and versions tested (the only part that
may change without a change in behaviour), the table, each failure's reason,
and the reason for each "not applicable" and for each pass that a check
qualified (a body refused before the application was called, a connection
closed instead of reused), grouped by check and reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from propylon.wsgi11.conformance.checks import CHECKS, FAIL, NA, PASS, Outcome

__all__ = ["FORMAT", "load_runs", "make_run", "render_table", "save_runs", "without_tested_with"]

FORMAT = "propylon.wsgi11.conformance/1"
SYMBOLS = {PASS: "✓", FAIL: "✗", NA: "–"}
INFO_SYMBOLS = {PASS: "yes", FAIL: "no", NA: "–"}
TESTED_WITH_START = "<!-- tested-with: start -->"
TESTED_WITH_END = "<!-- tested-with: end -->"


def make_run(label: str, server: str, middleware: bool, results: dict[str, Outcome],
             software: str = "") -> dict[str, Any]:
    return {
        "label": label,
        "server": server,
        "middleware": middleware,
        "software": software,
        "results": {cid: outcome.as_dict() for cid, outcome in results.items()},
    }


def save_runs(path: str | Path, runs: list[dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": FORMAT, "runs": runs}, indent=1, sort_keys=True) + "\n")


def load_runs(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} results file")
        runs.extend(data["runs"])
    return runs


def render_table(runs: list[dict[str, Any]], command: str) -> str:
    """The Markdown page for ``runs`` (docs/wsgi11-servers.md)."""
    lines = [
        "# WSGI 1.1 on servers we did not write",
        "",
        "<!-- Generated from a test run; do not edit. Regenerate with:",
        f"     {command} -->",
        "",
        "Which guarantees of [WSGI 1.1](spec/wsgi-1.1.md) each server gives on its",
        "own, and with the `propylon.wsgi11.WSGI11Middleware` in front of the",
        "application, as observed by the conformance kit",
        "(`python -m propylon.wsgi11.conformance`) in the test suite",
        "(`tests/test_wsgi11_conformance.py`), which starts every server for real.",
        "How each server is configured is in `tests/wsgi11/` (`servers.py` and the modules it names).",
        "",
        "✓ passes, ✗ fails, – not applicable (e.g. the server does not speak",
        "HTTP/2, or passes encoded request bodies through undecoded, which section",
        "3 allows); the reasons, and the way some checks were passed, are listed",
        "below the table. Rows marked *info* are not requirements. What the",
        "middleware cannot fix on a host is a limit of its front end, named with",
        "its reason below and in the specification's section on",
        "[gateways](spec/wsgi-1.1.md#11-gateways-that-do-not-own-the-client-connection).",
        "",
        "## Tested with",
        "",
        TESTED_WITH_START,
    ]
    seen = set()
    for run in runs:
        if run["server"] not in seen and run.get("software"):
            seen.add(run["server"])
            lines.append(f"- **{run['server']}**: {run['software']}")
    lines += [TESTED_WITH_END, "", "## Results", ""]
    lines += ["Two columns per server: on its own, then with the middleware in front of",
              "the application (*+ mw*).", ""]
    lines.append("| Check | § | " + " | ".join("+ mw" if run["middleware"] else run["server"] for run in runs) + " |")
    lines.append("|---|---|" + "---|" * len(runs))
    checks = [c for c in CHECKS if any(c.id in run["results"] for run in runs)]
    for c in checks:
        symbols = INFO_SYMBOLS if c.group == "info" else SYMBOLS
        cells = [symbols[run["results"][c.id]["result"]] if c.id in run["results"] else " " for run in runs]
        title = f"`{c.id}`: {c.title}" + (" (*info*)" if c.group == "info" else "")
        lines.append(f"| {title} | {c.section} | " + " | ".join(cells) + " |")
    totals = []
    for run in runs:
        required = [c for c in checks if c.group != "info" and c.id in run["results"]]
        applicable = [c for c in required if run["results"][c.id]["result"] != NA]
        passed = [c for c in applicable if run["results"][c.id]["result"] == PASS]
        totals.append(f"**{len(passed)}/{len(applicable)}**")
    lines.append("| **Passed** (of applicable) | | " + " | ".join(totals) + " |")
    lines += ["", "## Why a check failed", ""]
    for run in runs:
        failures = [(c, run["results"][c.id]) for c in checks
                    if c.id in run["results"] and run["results"][c.id]["result"] == FAIL and c.group != "info"]
        if not failures:
            continue
        lines.append(f"### {run['label']}")
        lines.append("")
        for c, outcome in failures:
            limit = f" (a known limit: {outcome['limit']})" if outcome.get("limit") else ""
            lines.append(f"- `{c.id}`: {outcome['detail']}{limit}")
        lines.append("")
    lines += ["## Not applicable, and passes with a remark", ""]
    # Grouped: the checks with the same outcome, reason and servers on one line.
    remarks: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    for c in checks:
        if c.group == "info":
            continue
        by_reason: dict[tuple[str, str], list[str]] = {}
        for run in runs:
            outcome = run["results"].get(c.id)
            if outcome and outcome["detail"] and outcome["result"] in (NA, PASS):
                by_reason.setdefault((outcome["result"], outcome["detail"]), []).append(run["label"])
        for (result, detail), servers in by_reason.items():
            remarks.setdefault((result, detail, tuple(servers)), []).append(c.id)
    for (result, detail, on), ids in remarks.items():
        named = ", ".join(f"`{cid}`" for cid in ids)
        lines.append(f"- {named} {SYMBOLS[result]} on {', '.join(on)}: {detail}")
    return "\n".join(lines).rstrip() + "\n"


def without_tested_with(text: str) -> str:
    """The page without its "Tested with" list (versions change without behaviour changing)."""
    start, end = text.find(TESTED_WITH_START), text.find(TESTED_WITH_END)
    if start < 0 or end < 0:
        return text
    return text[:start] + text[end:]
