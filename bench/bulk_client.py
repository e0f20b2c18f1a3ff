"""Load generator for large responses: keep-alive GETs read with big buffers.

Usage: python bulk_client.py URL [--connections N] [--duration S] [--buffer BYTES] [--copy]

Why not wrk: wrk reads 8 KiB per recv(2). For a 10 MiB body that is 1,280
system calls per response, and on loopback wrk's core saturates long before
the server's does (worse when the server uses sendfile(2), whose page-backed
segments cost the receiver more per call). This client takes up to 4 MiB per
call and, on Linux, does not even copy the body: ``recv(MSG_TRUNC)`` on a TCP
socket discards the bytes in the kernel (tcp(7)), so what the client costs is
the same small amount for every server and the number is the server's.
``--copy`` reads into the buffer instead, as an ordinary client would.

Theory of operation: one thread, non-blocking sockets, epoll. Each of the N
connections sends ``GET`` and reads the response head and exactly
Content-Length body bytes (discarded, or copied into a reused buffer: counted, not kept),
then sends the next request on the same connection; if the server answered
``Connection: close`` or closed it, the connection is reopened. A chunked
response (RFC 9112 §7.1: Granian's static files have no Content-Length) is
read the same way: each chunk-size line is parsed, and the chunk's data
discarded or copied like a Content-Length body. After ``--duration`` seconds
it prints one JSON line: requests completed, body bytes, seconds, latency
percentiles, non-2xx answers and errors.

What it does not do: trailer fields after a chunked body (an error),
pipelining, HTTP/2, or verifying body contents (the bench checks one response
before measuring).
"""

import argparse
import json
import selectors
import socket
import time
from urllib.parse import urlsplit


class Connection:
    __slots__ = (
        "chunked",
        "framing",
        "head",
        "keep_alive",
        "last_chunk",
        "left",
        "length",
        "sent_at",
        "sock",
        "status",
    )

    def __init__(self, sock):
        self.sock = sock
        self.head = b""
        self.length = 0
        # Body bytes still to read (chunked: of the current chunk and its
        # CRLF); None while reading the head.
        self.left = None
        self.keep_alive = True
        self.status = 0
        self.sent_at = 0.0
        self.chunked = False
        self.framing = b""  # chunked: bytes read past the current chunk (size lines, the start of the next chunk)
        self.last_chunk = False  # chunked: the zero-size chunk was read, its final CRLF is next


def advance_chunked(conn) -> bool:
    """Consume conn.framing as far as it goes; True once the whole chunked body is read."""
    while True:
        if conn.left:
            taken = min(conn.left, len(conn.framing))
            conn.framing = conn.framing[taken:]
            conn.left -= taken
            if conn.left:
                return False  # the rest of this chunk comes from the socket
        if conn.last_chunk:
            if len(conn.framing) < 2:
                return False
            if conn.framing[:2] != b"\r\n":
                raise ValueError("trailer fields after a chunked body")
            conn.framing = conn.framing[2:]
            return True
        end = conn.framing.find(b"\r\n")
        if end < 0:
            if len(conn.framing) > 1024:
                raise ValueError("chunk-size line too long")
            return False
        size = int(conn.framing[:end].split(b";", 1)[0], 16)  # chunk extensions ignored
        conn.framing = conn.framing[end + 2 :]
        if size == 0:
            conn.last_chunk = True
        else:
            conn.left = size + 2  # the data and its CRLF
            conn.length += size


def parse_head(head: bytes):
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep_alive, chunked = 0, True, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and "close" in value.lower():
            keep_alive = False
        elif name == "transfer-encoding" and value.strip().lower().endswith("chunked"):
            chunked = True
    return status, length, keep_alive, chunked


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--buffer", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--copy", action="store_true", help="copy body bytes to user space (no MSG_TRUNC)")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds without progress before a connection counts as timed out"
    )
    args = parser.parse_args()
    url = urlsplit(args.url)
    address = (url.hostname, url.port or 80)
    request = (
        f"GET {url.path or '/'} HTTP/1.1\r\nHost: {url.netloc}\r\nUser-Agent: propylon-bench-bulk\r\n\r\n".encode()
    )
    # With MSG_TRUNC the kernel writes nothing here: the pages stay untouched.
    buffer = memoryview(bytearray(args.buffer))
    discard = 0 if args.copy or not hasattr(socket, "MSG_TRUNC") else socket.MSG_TRUNC
    sel = selectors.DefaultSelector()
    stats = {"requests": 0, "bytes": 0, "non_2xx": 0, "errors": 0, "timeouts": 0, "reconnects": 0}
    latencies = []

    def open_connection():
        sock = socket.create_connection(address, timeout=args.timeout)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(sock)
        send(conn)
        sel.register(sock, selectors.EVENT_READ, conn)

    def send(conn):
        conn.head, conn.left, conn.sent_at = b"", None, time.monotonic()
        conn.chunked, conn.framing, conn.last_chunk = False, b"", False
        conn.sock.setblocking(True)
        conn.sock.sendall(request)
        conn.sock.setblocking(False)

    def reopen(conn, counter):
        if counter:
            stats[counter] += 1
        sel.unregister(conn.sock)
        conn.sock.close()
        if time.monotonic() < end:
            open_connection()

    started = time.monotonic()
    end = started + args.duration
    for _ in range(args.connections):
        open_connection()
    while time.monotonic() < end:
        events = sel.select(timeout=0.2)
        now = time.monotonic()
        for key, _ in events:
            conn = key.data
            try:
                done = False
                if conn.left is None:
                    data = conn.sock.recv(65536)
                    if not data:
                        reopen(conn, "errors")
                        continue
                    conn.head += data
                    if b"\r\n\r\n" not in conn.head:
                        continue
                    head, _, rest = conn.head.partition(b"\r\n\r\n")
                    conn.status, conn.length, conn.keep_alive, conn.chunked = parse_head(head)
                    if conn.chunked:
                        conn.length, conn.left, conn.framing = 0, 0, rest
                        done = advance_chunked(conn)
                    else:
                        conn.left = conn.length - len(rest)
                        done = conn.left <= 0
                elif conn.chunked and not conn.left:
                    # Between chunks: a small read for the size line (and
                    # whatever of the next chunk comes with it).
                    data = conn.sock.recv(4096)
                    if not data:
                        reopen(conn, "errors")
                        continue
                    conn.framing += data
                    done = advance_chunked(conn)
                else:
                    n = conn.sock.recv_into(buffer, min(conn.left, len(buffer)), discard)
                    if n == 0:
                        reopen(conn, "errors")
                        continue
                    conn.left -= n
                    done = conn.left <= 0 and not conn.chunked
            except BlockingIOError:
                continue
            except (OSError, ValueError, IndexError):
                reopen(conn, "errors")
                continue
            if done:
                stats["requests"] += 1
                stats["bytes"] += conn.length
                stats["non_2xx"] += not 200 <= conn.status < 300
                latencies.append(now - conn.sent_at)
                if conn.keep_alive:
                    send(conn)
                else:
                    reopen(conn, "reconnects")
        for key in list(sel.get_map().values()):
            conn = key.data
            if now - conn.sent_at > args.timeout:
                reopen(conn, "timeouts")
    elapsed = time.monotonic() - started
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1e3 if latencies else None

    print(json.dumps({**stats, "seconds": elapsed, "latency_p50_ms": pct(50), "latency_p99_ms": pct(99)}))


if __name__ == "__main__":
    main()
