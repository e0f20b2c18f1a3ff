"""Static files in Python: from a request on a mount to the answer to send.

:func:`answer` decides everything about a static request (which file, which
status, which headers); the adapters only send what it says. It reads the file
system (``stat``, ``realpath``) but no socket, so it serves ASGI and WSGI alike.

The rules:
- only ``GET`` and ``HEAD``; any other method is ``405`` with ``Allow``
  (RFC 9110 §15.5.6);
- never outside the mount's directory: a path segment ``.`` or ``..`` (after
  percent-decoding, so ``%2e%2e`` too), a backslash or a NUL is ``404``; so is
  a name starting with ``.`` unless the mount serves dotfiles, and a path whose
  real location (symbolic links resolved) leaves the directory unless the
  mount follows symbolic links;
- a directory is served by its index file: without a trailing ``/`` it is a
  ``301`` to the same path with one; no index file, no listing: ``404``;
- a strong ``ETag`` (size, modification time, content coding) and
  ``Last-Modified``; ``If-None-Match``, else ``If-Modified-Since``, give ``304``
  (RFC 9110 §13.1.2, §13.1.3, §13.2.2);
- a precompressed sibling (``.br``, ``.zst``, ``.gz``) is sent with
  ``Content-Encoding`` when ``Accept-Encoding`` allows it (RFC 9110 §12.5.3),
  with ``Vary: Accept-Encoding`` whenever a sibling exists;
- one byte range (``Range: bytes=...``) is ``206`` with ``Content-Range``, an
  unsatisfiable one ``416``; ``If-Range`` is honoured (RFC 9110 §14, §13.1.5).
  Several ranges in one request are answered with the whole file, which RFC 9110
  §14.2 allows (a server MAY ignore ``Range``): no ``multipart/byteranges``.

It does not read files, send bytes, or decide which mount a request is on.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field

from propylon.plan import StaticMount

__all__ = ["StaticAnswer", "answer", "plain_text"]

#: Content codings of precompressed siblings, in the order they are preferred.
PRECOMPRESSED = (("br", ".br"), ("zstd", ".zst"), ("gzip", ".gz"))
ALLOW = "GET, HEAD"


@dataclass(frozen=True)
class StaticAnswer:
    """A response: ``status``, ``headers``, and either the ``length`` bytes of
    ``file`` from ``offset`` or the small ``body`` (nothing for ``HEAD``)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    file: str | None = None
    offset: int = 0
    length: int = 0
    body: bytes = b""


def plain_text(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> StaticAnswer:
    """A short ``text/plain`` answer (errors, redirects)."""
    body = message.encode()
    fields = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    return StaticAnswer(status, fields + (headers or []), body=body)


NOT_FOUND = plain_text(404, "Not Found\n")


def answer(mount: StaticMount, method: str, relative: bytes, location: str, headers: Mapping[str, str]) -> StaticAnswer:
    """The answer to ``method`` on ``relative`` (the percent-decoded URL path
    after the mount's prefix: empty or starting with ``/``).

    ``location`` is the request's path and query as sent, for the trailing-slash
    redirect; ``headers`` has lower-case names, repeated fields joined by ``,``.
    """
    if method not in ("GET", "HEAD"):
        return plain_text(405, "Method Not Allowed\n", [("Allow", ALLOW)])
    parts = [part for part in relative.split(b"/") if part]
    for part in parts:
        if part in (b".", b"..") or b"\\" in part or b"\0" in part:
            return NOT_FOUND
        if part.startswith(b".") and not mount.dotfiles:
            return NOT_FOUND
    path = os.path.join(mount.directory, *(os.fsdecode(part) for part in parts))
    if not _inside(mount, path):
        return NOT_FOUND
    info = _stat(path)
    if info is None:
        return NOT_FOUND
    if stat.S_ISDIR(info.st_mode):
        if mount.index is None:
            return NOT_FOUND
        index = os.path.join(path, mount.index)
        index_info = _stat(index) if _inside(mount, index) else None
        if index_info is None or not stat.S_ISREG(index_info.st_mode):
            return NOT_FOUND
        if not relative.endswith(b"/"):
            target, _, query = location.partition("?")
            return plain_text(301, "Moved Permanently\n", [("Location", target + "/" + ("?" + query if query else ""))])
        path, info = index, index_info
    elif relative.endswith(b"/") or not stat.S_ISREG(info.st_mode):
        return NOT_FOUND
    return _representation(mount, method, path, info, headers)


def _inside(mount: StaticMount, path: str) -> bool:
    """Whether ``path``'s real location is under the mount's directory (always
    true for a mount that follows symbolic links)."""
    if mount.follow_symlinks:
        return True
    root = os.path.realpath(mount.directory)
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def _representation(
    mount: StaticMount, method: str, path: str, info: os.stat_result, headers: Mapping[str, str]
) -> StaticAnswer:
    """The file at ``path`` or its precompressed sibling, with validators and range."""
    content_type = _content_type(path)
    coding = None
    vary = False
    if mount.precompressed:
        accepted = _accepted_codings(headers.get("accept-encoding", ""))
        for name, suffix in PRECOMPRESSED:
            sibling = path + suffix
            sibling_info = _stat(sibling) if _inside(mount, sibling) else None
            if sibling_info is None or not stat.S_ISREG(sibling_info.st_mode):
                continue
            vary = True
            if coding is None and accepted.get(name, accepted.get("*", 0.0)) > 0:
                coding, path, info = name, sibling, sibling_info

    etag = f'"{info.st_size:x}-{info.st_mtime_ns:x}{"-" + coding if coding else ""}"'
    last_modified = email.utils.formatdate(info.st_mtime, usegmt=True)
    validators = [("ETag", etag), ("Last-Modified", last_modified)]
    if mount.cache_control:
        validators.append(("Cache-Control", mount.cache_control))
    if vary:
        validators.append(("Vary", "Accept-Encoding"))
    if _not_modified(headers, etag, info.st_mtime):
        return StaticAnswer(304, validators)

    fields = [("Content-Type", content_type)] + validators + [("Accept-Ranges", "bytes")]
    if coding:
        fields.append(("Content-Encoding", coding))
    size = info.st_size
    status, offset, length = 200, 0, size
    wanted = headers.get("range")
    if wanted is not None and _if_range_holds(headers.get("if-range"), etag, last_modified):
        span = _byte_range(wanted, size)
        if isinstance(span, str):
            return plain_text(416, "Range Not Satisfiable\n", [("Content-Range", f"bytes */{size}")] + validators)
        if span is not None:
            offset, length = span
            status = 206
            fields.append(("Content-Range", f"bytes {offset}-{offset + length - 1}/{size}"))
    fields.append(("Content-Length", str(length)))
    if method == "HEAD":
        return StaticAnswer(status, fields)
    return StaticAnswer(status, fields, file=path, offset=offset, length=length)


def _content_type(path: str) -> str:
    kind, _ = mimetypes.guess_type(path, strict=False)
    if kind is None:
        return "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json", "image/svg+xml"):
        return kind + "; charset=utf-8"
    return kind


def _accepted_codings(field: str) -> dict[str, float]:
    """``Accept-Encoding`` as coding -> qvalue (RFC 9110 §12.5.3); absent codings are 0
    unless ``*`` says otherwise."""
    accepted: dict[str, float] = {}
    for item in field.split(","):
        name, *params = (piece.strip() for piece in item.split(";"))
        if not name:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        accepted[name.lower()] = quality
    return accepted


def _not_modified(headers: Mapping[str, str], etag: str, mtime: float) -> bool:
    """RFC 9110 §13.2.2: ``If-None-Match`` (weak comparison, §13.1.2), and only
    without it ``If-Modified-Since`` (§13.1.3)."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = [tag.strip() for tag in if_none_match.split(",")]
        return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)
    since = headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = email.utils.parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    return int(mtime) <= when.timestamp()


def _if_range_holds(if_range: str | None, etag: str, last_modified: str) -> bool:
    """RFC 9110 §13.1.5: the range applies when ``If-Range`` is absent or names
    the current representation (strong comparison, or the exact date)."""
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith('"'):
        return if_range == etag
    return if_range == last_modified


def _byte_range(field: str, size: int) -> tuple[int, int] | str | None:
    """One ``bytes`` range as ``(offset, length)``; ``"unsatisfiable"``; or
    ``None`` for a field to ignore (another unit, bad syntax, several ranges)."""
    unit, _, spec = field.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), min(suffix, size)
    start = int(first)
    if start >= size:
        return "unsatisfiable"
    end = min(int(last), size - 1) if last else size - 1
    if end < start:
        return None
    return start, end - start + 1
