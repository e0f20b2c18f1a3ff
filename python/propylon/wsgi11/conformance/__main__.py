"""``python -m propylon.wsgi11.conformance``: run the kit, or render results as a table."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from propylon.wsgi11.conformance.checks import CHECKS, FAIL, Context, run
from propylon.wsgi11.conformance.client import Target
from propylon.wsgi11.conformance.report import load_runs, make_run, render_table, save_runs

_SIZE = re.compile(r"(\d+)([kmg](?:ib)?)?", re.IGNORECASE | re.ASCII)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _byte_count(text: str) -> int:
    """``--max-body-size``: bytes, or with K, M or G (powers of 1024), as Propylon's option reads it."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"bad size {text!r}; use a number of bytes, optionally with K, M or G, e.g. 10M")
    number, unit = match.groups()
    return int(number) * _UNITS[(unit or "")[:1].lower()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m propylon.wsgi11.conformance",
        description="Check which WSGI 1.1 guarantees a server gives (docs/spec/wsgi-1.1.md). Serve "
                    "propylon.wsgi11.conformance.ProbeApp on the server, then point --url at it.",
    )
    parser.add_argument("--url", help="where the probe application is served: http://HOST:PORT[/PREFIX]")
    parser.add_argument("--buffered-url", help="the probe behind the compatibility mode (Appendix B)")
    parser.add_argument("--max-body-size", help="the request body limit the server is configured with (Appendix A)")
    parser.add_argument("--only", help="comma-separated check ids to run")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--label", help="name of this run in the JSON (default: the URL)")
    parser.add_argument("--table", nargs="+", metavar="FILE", help="render JSON results as Markdown instead")
    parser.add_argument("--output", metavar="FILE", help="with --table: write the page here instead of stdout")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        for c in CHECKS:
            print(f"{c.id:32} {c.section:4} {c.group:9} {c.title}")
        return 0
    if args.table:
        command = "python -m propylon.wsgi11.conformance --table " + " ".join(map(shlex.quote, args.table))
        if args.output:
            command += f" --output {shlex.quote(args.output)}"
        page = render_table(load_runs(args.table), command)
        if args.output:
            Path(args.output).write_text(page)
        else:
            sys.stdout.write(page)
        return 0
    if not args.url:
        parser.error("give --url (or --table, or --list)")
    try:
        limit = _byte_count(args.max_body_size) if args.max_body_size else None
        ctx = Context(Target(args.url), Target(args.buffered_url) if args.buffered_url else None, limit)
    except ValueError as exc:
        parser.error(str(exc))
    only = args.only.split(",") if args.only else None
    results = run(ctx, only)
    by_id = {c.id: c for c in CHECKS}
    for cid, outcome in results.items():
        c = by_id[cid]
        mark = {"pass": "pass", "fail": "FAIL", "n/a": "n/a "}[outcome.result]
        print(f"{mark}  {cid:32} {c.section:4} {c.title}" + (f"\n      -> {outcome.detail}" if outcome.detail else ""))
    failed = [cid for cid, o in results.items() if o.result == FAIL and by_id[cid].group != "info"]
    print(f"\n{len(failed)} requirement(s) not met" if failed else "\nevery applicable requirement is met")
    if args.json:
        save_runs(args.json, [make_run(args.label or args.url, args.label or args.url, False, results)])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
