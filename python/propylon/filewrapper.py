"""``wsgi.file_wrapper``: the WSGI 1.1 reference ``FileWrapper``.

PEP 3333 ("Optional Platform-Specific File Handling") suggests the fallback
``iter(lambda: filelike.read(blksize), '')``. That never closes the file, and on
Python 3 it never ends either: ``read()`` on a binary file returns ``b""`` at
end of file, and ``b"" != ""``. WSGI 1.1 replaces it with this class, which is
correct on any PEP 3333 server: it stops at ``b""`` and ``close()`` closes the
file.

It is a class, not a factory, so that a server can recognise it with
``isinstance`` -- also through subclasses that middleware uses to add ``close()``
actions. Propylon does exactly that: for a regular file with ``fileno()`` it
sends the file from ``filelike.tell()`` in Rust (at most ``Content-Length``
bytes) without calling ``__next__``; any other file-like object is read through
the iterator protocol below in ``blksize`` blocks. Either way ``close()`` is
called.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["FileWrapper"]


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class FileWrapper:
    """Iterate over a binary file-like object in blocks, and close it.

    ``filelike`` needs ``read(size)`` returning ``bytes``; ``close()`` is
    called if it has one. ``blksize`` is the block size passed to ``read``.
    Both stay public attributes: the server reads them.
    """

    filelike: _Readable
    blksize: int

    def __init__(self, filelike: _Readable, blksize: int = 8192) -> None:
        if blksize < 1:
            raise ValueError(f"blksize must be at least 1, got {blksize}")
        self.filelike = filelike
        self.blksize = blksize
        self._closed = False

    def __iter__(self) -> FileWrapper:
        return self

    def __next__(self) -> bytes:
        block = self.filelike.read(self.blksize)
        if not isinstance(block, bytes):
            raise TypeError(
                f"FileWrapper: {type(self.filelike).__name__}.read() returned "
                f"{type(block).__name__}, expected bytes; open the file in binary mode ('rb')"
            )
        if not block:
            raise StopIteration
        return block

    def close(self) -> None:
        """Close the file (``filelike.close()`` if it exists); later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()
