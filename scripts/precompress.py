"""Write precompressed siblings (NAME.br, NAME.zst, NAME.gz) of the text assets in a directory.

    python scripts/precompress.py examples/static

A static mount with ``precompressed`` on (the default) sends a sibling instead
of the file to clients that accept its coding (docs/guide/static.md). Only
text assets are compressed (.css .js .mjs .json .svg .html .txt .xml .map);
a sibling that would not be smaller than the file is not written, and one
left from an earlier run is removed. ``--check`` changes nothing and exits 1
when a sibling is missing or does not decode to its file's content (the bytes
of a sibling may differ between compressor versions; its content may not).
Needs ``brotli`` and ``zstandard`` (the test extras).
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Callable
from pathlib import Path

import brotli
import zstandard

TEXT = {".css", ".js", ".mjs", ".json", ".svg", ".html", ".txt", ".xml", ".map"}

CODINGS: dict[str, Callable[[bytes], bytes]] = {
    ".br": lambda data: brotli.compress(data, quality=11),
    ".zst": lambda data: zstandard.ZstdCompressor(level=19).compress(data),
    ".gz": lambda data: gzip.compress(data, compresslevel=9, mtime=0),
}

DECODERS: dict[str, Callable[[bytes], bytes]] = {
    ".br": brotli.decompress,
    ".zst": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
    ".gz": gzip.decompress,
}


def decodes_to(path: Path, content: bytes) -> bool:
    """Whether the sibling at ``path`` holds ``content`` in its coding."""
    try:
        return DECODERS[path.suffix](path.read_bytes()) == content
    except Exception:  # noqa: BLE001 - any decoding failure means stale
        return False


def siblings(directory: Path) -> dict[Path, tuple[bytes, bytes | None]]:
    """Every sibling path under ``directory``: its file's content, and the bytes
    to write (None: no sibling, compression does not pay)."""
    wanted: dict[Path, tuple[bytes, bytes | None]] = {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.suffix not in TEXT:
            continue
        data = path.read_bytes()
        for suffix, compress in CODINGS.items():
            packed = compress(data)
            wanted[path.with_name(path.name + suffix)] = (data, packed if len(packed) < len(data) else None)
    return wanted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a sibling is missing or stale")
    args = parser.parse_args(argv)
    stale = []
    for path, (content, data) in siblings(args.directory).items():
        if (data is None and not path.exists()) or (data is not None and path.exists() and decodes_to(path, content)):
            continue
        stale.append(path)
        if args.check:
            continue
        if data is None:
            path.unlink()
        else:
            path.write_bytes(data)
    for path in stale:
        print(("stale: " if args.check else "wrote: ") + str(path))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
