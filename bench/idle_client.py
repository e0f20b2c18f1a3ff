"""Open many keep-alive connections to a server and hold them idle.

Usage: python idle_client.py HOST PORT COUNT [--in-flight N] [--deadline S] [--stall S]

Theory of operation: one thread, non-blocking sockets, epoll (``selectors``).
At most ``--in-flight`` connections are between "connect started" and "response
read" at any time (64 by default: below every server's listen backlog, so no
SYN is dropped and retried a second later). Each connection sends one
``GET / HTTP/1.1`` and reads one whole response (Content-Length body), then
stays open and idle (or is closed, when the server answered
``Connection: close``). When every connection is idle or closed, or the
deadline has passed, or no connection has finished for ``--stall`` seconds
(the server stopped accepting), the client prints one JSON line on stdout::

    {"event": "ready", "target": 10000, "responded": 10000, "status_200": 10000,
     "closed_by_server": 0, "failed": 0, "seconds": 1.9}

and waits for a line on stdin. On ``check`` it counts the connections the
server has not closed since (a readable socket that gives b"" or an error is
closed) and prints ``{"event": "held", "held": N}``; on ``close`` or end of
input it closes everything and exits 0.

What it does not do: measure latency or throughput, pipeline, or speak HTTP/2.
The bench samples the server's memory between "ready" and "check".
"""

import argparse
import errno
import json
import resource
import selectors
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: propylon-bench-idle\r\n\r\n"


class Connection:
    """One client connection: connecting -> sending -> reading -> idle | closed."""

    __slots__ = ("buffer", "sock", "state", "status")

    def __init__(self, sock):
        self.sock = sock
        self.state = "connecting"
        self.buffer = b""
        self.status = 0


def parse_response(buffer):
    """Return (status, complete, keep_alive) for a buffered HTTP/1.1 response."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return 0, False, True
    head = buffer[:head_end].decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        return -1, True, False
    length = 0
    keep_alive = True  # RFC 9112 §9.3: HTTP/1.1 persists unless "close"
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and "close" in value.lower():
            keep_alive = False
    return status, len(buffer) - head_end - 4 >= length, keep_alive


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(needed, hard), max(needed, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def open_all(host, port, count, in_flight, deadline, stall):
    sel = selectors.DefaultSelector()
    conns = []
    pending = 0  # connections not yet idle or closed
    stats = {"responded": 0, "status_200": 0, "closed_by_server": 0, "failed": 0}
    started = 0
    end = time.monotonic() + deadline

    def finish(conn, outcome):
        nonlocal pending, progress
        pending -= 1
        progress = time.monotonic()
        if outcome == "idle":
            conn.state = "idle"
            sel.unregister(conn.sock)
        else:
            conn.state = "closed"
            stats[outcome] += 1
            sel.unregister(conn.sock)
            conn.sock.close()

    progress = time.monotonic()  # last time a connection finished
    while (started < count or pending) and time.monotonic() < end:
        if pending and time.monotonic() - progress > stall:
            stats["stalled"] = True  # the server stopped answering: no use waiting for the deadline
            break
        while started < count and pending < in_flight:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            err = sock.connect_ex((host, port))
            started += 1
            conn = Connection(sock)
            conns.append(conn)
            if err not in (0, errno.EINPROGRESS):
                conn.state = "closed"
                stats["failed"] += 1
                sock.close()
                continue
            pending += 1
            sel.register(sock, selectors.EVENT_WRITE, conn)
        for key, _ in sel.select(timeout=0.5):
            conn = key.data
            if conn.state == "connecting":
                if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    finish(conn, "failed")
                    continue
                conn.state = "sending"
            if conn.state == "sending":
                try:
                    conn.sock.send(REQUEST)  # 80 bytes: fits any empty send buffer
                except OSError:
                    finish(conn, "failed")
                    continue
                conn.state = "reading"
                sel.modify(conn.sock, selectors.EVENT_READ, conn)
                continue
            try:
                data = conn.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                finish(conn, "failed")
                continue
            if not data:
                finish(conn, "failed" if conn.status == 0 else "closed_by_server")
                continue
            conn.buffer += data
            status, complete, keep_alive = parse_response(conn.buffer)
            if complete:
                conn.status = status
                stats["responded"] += 1
                stats["status_200"] += status == 200
                conn.buffer = b""
                # A server that answers "Connection: close" will not hold the
                # connection: close our side too, as any client would (gunicorn's
                # sync worker lingers until the client closes).
                finish(conn, "idle" if keep_alive else "closed_by_server")
    sel.close()
    return conns, stats


def count_held(conns):
    """Connections still open: not readable, or readable with data (not EOF)."""
    sel = selectors.DefaultSelector()
    idle = [c for c in conns if c.state == "idle"]
    for conn in idle:
        sel.register(conn.sock, selectors.EVENT_READ, conn)
    closed = 0
    for key, _ in sel.select(timeout=0):
        conn = key.data
        try:
            data = conn.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            closed += 1
    sel.close()
    return len(idle) - closed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds to open them all")
    parser.add_argument("--stall", type=float, default=5.0, help="give up when no connection finished for this long")
    args = parser.parse_args()
    raise_fd_limit(args.count + 1024)

    started = time.monotonic()
    conns, stats = open_all(args.host, args.port, args.count, args.in_flight, args.deadline, args.stall)
    ready = {"event": "ready", "target": args.count, **stats}
    ready["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        if line.strip() == "check":
            print(json.dumps({"event": "held", "held": count_held(conns)}), flush=True)
        elif line.strip() == "close":
            break
    for conn in conns:
        if conn.state != "closed":
            conn.sock.close()


if __name__ == "__main__":
    main()
