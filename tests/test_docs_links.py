"""Every relative link in the README, docs/ and bench/README.md resolves.

A link to a file must name a file or folder of the repository; a link with a
``#fragment`` to a Markdown page (or to a heading of the same page) must name
one of that page's headings, as GitHub makes their anchors. Links to other
sites (``http:``, ``https:``, ``mailto:``) are not followed. Code blocks and
inline code are skipped, so an example written in Markdown is not a link.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: ``[text](target)`` and ``![alt](target)``, with an optional title.
INLINE_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: ``[label]: target`` reference definitions.
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s{0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+).*?\1")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def pages() -> list[Path]:
    return [REPO / "README.md", REPO / "bench" / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """The page's lines outside fenced code blocks, numbered from 1."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        opened = FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1) == fence:
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation gone, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(path):
        heading = HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for number, line in prose_lines(path):
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            found.append((number, definition.group(1)))
            continue
        text = INLINE_CODE.sub("", line)
        found.extend((number, target) for target in INLINE_LINK.findall(text))
    return found


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    problems: list[str] = []
    where = path.relative_to(root)
    for number, target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if root not in linked.parents and linked != root:
            problems.append(f"{where}:{number}: {target}: outside the repository")
            continue
        if not linked.exists():
            problems.append(f"{where}:{number}: {target}: no such file")
            continue
        if fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            problems.append(f"{where}:{number}: {target}: no heading with the anchor #{fragment}")
    return problems


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_check_finds_a_broken_link_and_a_broken_anchor(tmp_path: Path) -> None:
    page = REPO / "docs" / "guide" / "README.md"
    assert "running" in {Path(target).stem for _, target in links(page)}
    assert slug("Applications that need `CONTENT_LENGTH`: `--buffer-body`") == (
        "applications-that-need-content_length---buffer-body"
    )
    assert slug("HTTP/2 and h2c upgrade") == "http2-and-h2c-upgrade"
    (tmp_path / "other.md").write_text("# Other page\n", encoding="utf-8")
    broken = tmp_path / "page.md"
    broken.write_text(
        "# A page\n\n[gone](no-such-page.md), [bad anchor](other.md#no-such-heading), "
        "[fine](#a-page), [fine too](other.md#other-page), `[in code](nowhere.md)`, [away](../x.md)\n\n"
        "```\n[in a block](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    problems = broken_links(broken, root=tmp_path)
    assert len(problems) == 3, problems
    assert "no such file" in problems[0] and "no heading" in problems[1] and "outside" in problems[2]
