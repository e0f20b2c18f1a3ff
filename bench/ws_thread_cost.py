"""What WebSocket connections cost Propylon, by handler style: threads and
memory (RSS) of the worker process (Propylon runs a supervisor and one
worker: the worker is the one that serves) with N connections open and idle, and echo
messages/s over them (each connection sends one 32-byte message and waits for
its echo, for a few seconds), measured with the `websockets` client.

    python bench/ws_thread_cost.py [--rows blocking:32,blocking:256,...]

Prints a Markdown table (docs/guide/websocket.md, "What blocking handlers
cost", is this table).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect

APP = '''
import propylon
def blocking(ws):
    for message in ws:
        ws.send(message)
class Events:
    def on_message(self, ws, message):
        ws.send(message)
async def coroutine(ws):
    async for message in ws:
        await ws.send(message)
app = propylon.Application(websocket={"/blocking": blocking, "/event": Events(), "/async": coroutine})
'''


def wait_for_worker(server: subprocess.Popen, port: int, deadline: float = 30.0) -> int:
    """Once an HTTP request is answered (the supervisor binds before its worker
    serves, so a TCP connect alone proves nothing), the serving worker's pid:
    the supervisor's one child."""
    end = time.monotonic() + deadline
    while True:
        if server.poll() is not None:
            raise SystemExit(f"propylon exited with {server.returncode} before it served")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            break
        except (OSError, http.client.HTTPException):  # refused, or reset while the worker starts
            if time.monotonic() > end:
                raise SystemExit(f"propylon did not answer on port {port} in {deadline:.0f} s") from None
            time.sleep(0.05)
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    if len(children) != 1:
        raise SystemExit(f"expected one worker process under the supervisor, found {children}")
    return int(children[0])


def status(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


async def measure(port: int, style: str, n: int, pid: int, seconds: float) -> tuple[int, int, int, float]:
    url = f"ws://127.0.0.1:{port}/{style}"
    before = status(pid)
    conns = []
    for start in range(0, n, 100):
        conns += await asyncio.gather(*(connect(url, compression=None, ping_interval=None)
                                        for _ in range(start, min(n, start + 100))))
    await asyncio.sleep(0.5)
    rss, threads = status(pid)
    count = 0
    deadline = time.monotonic() + seconds

    async def echo(ws) -> None:
        nonlocal count
        while time.monotonic() < deadline:
            await ws.send(b"x" * 32)
            await ws.recv()
            count += 1

    await asyncio.gather(*(echo(ws) for ws in conns))
    rate = count / seconds
    await asyncio.gather(*(ws.close() for ws in conns))
    return rss - before[0], threads, rss, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="blocking:32,blocking:256,blocking:1000,event:1000,async:1000,event:10000,async:10000")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / "propylon-ws-cost"
    workdir.mkdir(exist_ok=True)
    (workdir / "ws_cost_app.py").write_text(APP)
    print("| Style | Open connections | Threads of the worker | RSS of the worker | RSS per connection | Echo messages/s |")
    print("|---|--:|--:|--:|--:|--:|")
    for row in args.rows.split(","):
        style, n = row.split(":")
        port = 8900
        server = subprocess.Popen(
            [sys.executable, "-m", "propylon", "ws_cost_app:app", "--bind", f"127.0.0.1:{port}",
             "--websocket-threads", str(int(n) + 8), "--log-level", "warning"],
            cwd=workdir,
        )
        try:
            worker = wait_for_worker(server, port)
            grew, threads, rss, rate = asyncio.run(measure(port, style, int(n), worker, args.seconds))
            print(f"| {style} | {int(n):,} | {threads} | {rss / 1024:.0f} MiB | {grew / int(n):.0f} KiB | {rate:,.0f} |", flush=True)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
