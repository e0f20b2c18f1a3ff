"""Serve ``tests.wsgi11.apps:application`` with the standard library's wsgiref.

``python -m tests.wsgi11.wsgiref_server PORT [--keep-alive]``. wsgiref is the
reference PEP 3333 server; run here with one thread per connection
(``socketserver.ThreadingMixIn``), the usual way to use it for more than one
client at a time. Nothing else is changed: its ``wsgi.input`` is the
connection itself, it speaks HTTP/1.0 to the client and closes after each
response. SIGTERM stops it.

``--keep-alive`` makes it a deliberately *faulty* server for
tests/wsgi11/breakers.py: it serves further requests on the same connection
without discarding a body the application did not read.
"""

from __future__ import annotations

import signal
import socketserver
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tests.wsgi11.apps import application


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass  # no access log: errors still reach stderr


class KeepAliveHandler(QuietHandler):
    """Faulty on purpose: the next request is parsed wherever the last one's reading stopped."""

    def handle(self):
        self.close_connection = False
        while not self.close_connection:
            super().handle()
            self.close_connection = not self.raw_requestline


def main() -> None:
    port = int(sys.argv[1])
    handler = KeepAliveHandler if "--keep-alive" in sys.argv[2:] else QuietHandler
    server = make_server("127.0.0.1", port, application, server_class=ThreadingWSGIServer,
                         handler_class=handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
