#!/usr/bin/env python3
"""Write the option table of docs/guide/options.md from the option declarations.

    python scripts/options_table.py          # rewrite the table in place
    python scripts/options_table.py --check  # exit 1 if the table is not what it would write

The table sits between the two marker comments in the page; everything else in
the page is hand-written. Each row comes from one entry of
``propylon.config.OPTIONS``: the flag and its value placeholder, what the value
is, the default, and the help text.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "python"))

from propylon.config import OPTIONS, Option, Switch  # noqa: E402 (after the path insert: runs from a checkout)

PAGE = REPO / "docs" / "guide" / "options.md"
BEGIN = "<!-- options table: written by scripts/options_table.py from propylon/config.py -->"
END = "<!-- end of options table -->"


def _row(option: Option) -> str:
    if isinstance(option.kind, Switch):
        flag = f"`{option.flag}`, `--no-{option.name}`"
    else:
        flag = f"`{option.flag} {option.kind.metavar}`"
    if option.short is not None:
        flag = f"`{option.short}`, {flag}"
    text = option.help[0].upper() + option.help[1:] + "."
    if option.aliases:
        text += " Also " + ", ".join(f"`{alias}`" for alias in option.aliases) + " (other servers' names)."
    return f"| {flag} | {option.kind.summary} | `{option.default_text()}` | {text} |"


def table() -> str:
    rows = "\n".join(_row(option) for option in OPTIONS)
    return f"| Option | Value | Default | Description |\n|---|---|---|---|\n{rows}\n"


def main(argv: list[str]) -> int:
    page = PAGE.read_text()
    head, begin, rest = page.partition(BEGIN + "\n")
    _, end, tail = rest.partition(END)
    if not begin or not end:
        print(f"{PAGE}: the markers {BEGIN!r} and {END!r} are missing", file=sys.stderr)
        return 1
    written = head + begin + table() + end + tail
    if argv == ["--check"]:
        if written != page:
            print(f"{PAGE}: the option table differs from propylon/config.py; "
                  "run python scripts/options_table.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(written)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
