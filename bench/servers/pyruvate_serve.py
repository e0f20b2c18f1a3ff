"""Start pyruvate, which has no command line, through its Python API.

Usage: python pyruvate_serve.py MODULE:ATTR HOST:PORT WORKERS

``pyruvate.serve(app, addr, num_workers)`` blocks and serves, with pyruvate's
defaults. Those defaults include ``max_reuse_count=0``: keep-alive off, one
connection per request. Turning keep-alive on does not work in the versions
tried (1.5.0, 1.6.0, 1.6.1): with ``max_reuse_count`` > 0 pyruvate answers the
first request with ``Connection: keep-alive``, then drops the connection on the
second request ("Could not handle read event: Incomplete request" in its log),
so the bench runs it as it works and reports that it cannot hold idle
connections.
"""

import importlib
import sys

import pyruvate


def main():
    target, addr, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    module_name, _, attr = target.partition(":")
    app = getattr(importlib.import_module(module_name), attr)
    print(f"pyruvate: serving {target} on {addr} with {workers} workers", file=sys.stderr, flush=True)
    pyruvate.serve(app, addr, workers)


if __name__ == "__main__":
    main()
