#!/usr/bin/env python3
"""The layering rules of the Rust crate (DESIGN §6), checked on the source text.

Usage: python3 scripts/rust_layers.py [SRC_DIR]   (default: src)

Fails (exit 1, each finding on a line of its own) on:

- an import cycle between files: files whose ``crate::``/``super::``/``self::``
  paths (in ``use`` trees and inline) reach each other, listed as one strongly
  connected set;
- an upward import: ``proto`` naming ``runtime`` or ``py``, ``runtime`` naming
  ``py``;
- a library in the wrong layer: ``tokio``, ``hyper``, ``hyper_util``, ``h2``,
  ``rustls``, ``tokio_rustls`` in ``proto``; ``pyo3`` anywhere but ``py`` and
  ``lib.rs``.

A path is mapped to the file of the longest module prefix it names; a file's
paths to its own descendants are not edges (a parent declares its children).
Paths inside inline modules (``mod tests { use super::*; }``) resolve from the
inline module, as the compiler resolves them. Comments, string and character
literals are not read. This is a reading of the text, not of the compiler's
name resolution: a path through a re-export counts as a path to the file that
re-exports.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

Module = tuple[str, ...]

#: The layers from the bottom up: a file may name its own layer and those below.
LAYERS = ("proto", "runtime", "py")

#: Libraries each layer must not name (DESIGN §6: `proto` is pure rules, no I/O
#: runtime and no interpreter; only `py` touches the interpreter).
FORBIDDEN_CRATES: dict[str, frozenset[str]] = {
    "proto": frozenset({"tokio", "hyper", "hyper_util", "h2", "rustls", "tokio_rustls", "pyo3"}),
    "runtime": frozenset({"pyo3"}),
}
#: Files outside the layers that may name pyo3: the module entry point.
PYO3_ALLOWED_OUTSIDE_PY = frozenset({("lib.rs",)})

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(
    r"""
      (?P<line_comment>//[^\n]*)
    | (?P<block_comment>/\*)
    | (?P<raw_string>b?r(?P<hashes>\#*)")
    | (?P<string>b?"(?:[^"\\]|\\.)*")
    | (?P<char>b?'(?:[^'\\\n]|\\[^\n][^'\n]{0,8})')
    """,
    re.X | re.S,
)


def strip_literals(text: str) -> str:
    """``text`` without comments, string and character literals (newlines kept, so lines stay lines)."""
    out: list[str] = []
    pos = 0
    while (match := _TOKEN.search(text, pos)) is not None:
        out.append(text[pos : match.start()])
        end = match.end()
        if match.group("block_comment"):
            depth, end = 1, match.end()
            while depth and end < len(text):  # block comments nest in Rust
                if text.startswith("/*", end):
                    depth, end = depth + 1, end + 2
                elif text.startswith("*/", end):
                    depth, end = depth - 1, end + 2
                else:
                    end += 1
        elif match.group("raw_string") is not None:
            closing = '"' + match.group("hashes")
            found = text.find(closing, match.end())
            end = len(text) if found < 0 else found + len(closing)
        out.append(" " + "\n" * text.count("\n", match.start(), end))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def module_of(relative: Path) -> Module:
    """The module path of a file: ``runtime/conn/mod.rs`` is ``(runtime, conn)``, ``lib.rs`` is ``()``."""
    parts = list(relative.with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def expand_use_tree(tree: str) -> Iterator[list[str]]:
    """Every path a ``use`` tree names: ``a::{b, c::{d, e as f}}`` gives a::b, a::c::d, a::c::e."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+" + IDENT, "", tree))

    def walk(prefix: list[str], text: str) -> Iterator[list[str]]:
        if "{" not in text:
            parts = [p for p in text.split("::") if p]
            if parts and parts[-1] in ("*", "self"):
                parts.pop()
            yield prefix + parts
            return
        head, _, rest = text.partition("{")
        body = rest[: rest.rfind("}")]
        base = prefix + [p for p in head.split("::") if p]
        depth, start = 0, 0
        for i, ch in enumerate(body + ","):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                item = body[start:i]
                start = i + 1
                if item:
                    yield from walk(base, item)

    yield from walk([], tree)


def references(text: str) -> Iterator[tuple[Module, list[str]]]:
    """``(inline module, path)`` for every path in ``text`` (already stripped of literals).

    The inline module is the path of ``mod name { ... }`` blocks around the
    reference, relative to the file's own module.
    """
    scopes: list[tuple[int, str]] = []  # (brace depth at which the inline module closes, name)
    depth = 0
    events: list[tuple[int, str, str]] = []
    for match in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{|[{}]", text):
        events.append((match.start(), match.group(0), match.group(1) or ""))
    use_matches = list(re.finditer(r"\buse\s+((?:crate|super|self)\b[^;]*);", text))
    uses = [(m.start(), m.group(1)) for m in use_matches]
    inline = [
        (m.start(), m.group(0))
        for m in re.finditer(r"(?<![\w:])(?:(?:crate|super|self)::)+" + IDENT + r"(?:::" + IDENT + r")*", text)
    ]
    use_spans = [(m.start(), m.end()) for m in use_matches]

    def in_use(position: int) -> bool:
        return any(start <= position < end for start, end in use_spans)

    found: list[tuple[int, list[str]]] = [(pos, path) for pos, tree in uses for path in expand_use_tree(tree)]
    found += [(pos, path.split("::")) for pos, path in inline if not in_use(pos)]
    found.sort(key=lambda item: item[0])

    e = 0
    for position, path in found:
        while e < len(events) and events[e][0] < position:
            _, token, name = events[e]
            if name:
                depth += 1
                scopes.append((depth, name))
            elif token == "{":
                depth += 1
            else:
                if scopes and scopes[-1][0] == depth:
                    scopes.pop()
                depth -= 1
            e += 1
        yield tuple(name for _, name in scopes), path


def resolve(files: dict[Module, Path], module: Module, inline: Module, path: list[str]) -> Module | None:
    """The file that ``path``, written in ``inline`` inside ``module``'s file, names (None: outside the crate)."""
    if not path:
        return None
    if path[0] == "crate":
        absolute, rest = [], path[1:]
    elif path[0] in ("super", "self"):
        absolute = list(module + inline)
        rest = list(path)
        while rest and rest[0] in ("super", "self"):
            if rest.pop(0) == "super" and absolute:
                absolute.pop()
    else:
        return None
    full = absolute + rest
    while full:  # the longest prefix that is a file's module
        if tuple(full) in files:
            return tuple(full)
        full.pop()
    return () if () in files else None


def external_crates(text: str) -> set[str]:
    """Names of crates ``text`` uses by path (``tokio::spawn``, ``use hyper::...``, ``extern crate x``)."""
    names = set(re.findall(r"(?<![\w:])(?:::)?(" + IDENT + r")::", text))
    names |= set(re.findall(r"\bextern\s+crate\s+(" + IDENT + r")", text))
    return names - {"crate", "super", "self", "Self"}


def strongly_connected(edges: dict[Module, set[Module]]) -> list[list[Module]]:
    """Tarjan's algorithm, iterative: every strongly connected set of more than one node."""
    index: dict[Module, int] = {}
    low: dict[Module, int] = {}
    stack: list[Module] = []
    on_stack: set[Module] = set()
    found: list[list[Module]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def check(src: Path) -> list[str]:
    """Every finding for the crate under ``src``, one line each; empty when the layering holds."""
    paths = {module_of(f.relative_to(src)): f for f in sorted(src.rglob("*.rs"))}
    texts = {module: strip_literals(f.read_text(encoding="utf-8", errors="replace")) for module, f in paths.items()}
    edges: dict[Module, set[Module]] = {module: set() for module in paths}
    for module, text in texts.items():
        for inline, path in references(text):
            target = resolve(paths, module, inline, path)
            if target is not None and target[: len(module)] != module:
                edges[module].add(target)

    def name(module: Module) -> str:
        return paths[module].relative_to(src).as_posix()

    findings = []
    for component in strongly_connected(edges):
        findings.append(f"import cycle of {len(component)} files: " + ", ".join(name(m) for m in component))
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    for module in sorted(edges):
        for target in sorted(edges[module]):
            here, there = module[:1], target[:1]
            if here and there and here[0] in rank and there[0] in rank and rank[there[0]] > rank[here[0]]:
                findings.append(f"upward import: {name(module)} -> {name(target)} ({here[0]} must not use {there[0]})")
    for module, text in sorted(texts.items()):
        layer = module[0] if module else ""
        relative = tuple(paths[module].relative_to(src).parts)
        used = external_crates(text)
        forbidden = set(FORBIDDEN_CRATES.get(layer, ()))
        if layer not in LAYERS and relative not in PYO3_ALLOWED_OUTSIDE_PY:
            forbidden.add("pyo3")
        for crate_name in sorted(used & forbidden):
            findings.append(f"wrong layer: {name(module)} uses {crate_name}")
    return findings


def main(argv: list[str]) -> int:
    src = Path(argv[1] if len(argv) > 1 else "src")
    if not src.is_dir():
        print(f"rust_layers.py: {src} is not a directory", file=sys.stderr)
        return 2
    findings = check(src)
    for line in findings:
        print(line)
    count = sum(1 for _ in src.rglob("*.rs"))
    print(f"rust layers: {count} files, {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
