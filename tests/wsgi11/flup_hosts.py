"""flup's FastCGI and SCGI servers behind Debian's nginx, for the conformance run.

How flup is deployed: ``flup.server.fcgi.WSGIServer`` or
``flup.server.scgi.WSGIServer`` (both threaded: a thread per connection
from nginx, which opens one per request) on a Unix socket, nginx in front
with ``fastcgi_pass`` or ``scgi_pass`` and Debian's ``fastcgi_params`` or
``scgi_params`` (tests/wsgi11/fronted.py starts both). Run as
``python -m tests.wsgi11.flup_hosts fastcgi|scgi SOCKET``, this module is
the gateway process.

The mounts of tests/wsgi11/apps.py are picked by ``PATH_INFO``, so the
whole path must arrive there, decoded as CGI wants it (RFC 3875 §4.1.5):

- FastCGI: ``fastcgi_split_path_info ^()(/.*)$`` makes Debian's
  ``SCRIPT_NAME $fastcgi_script_name`` empty and ``$fastcgi_path_info`` the
  decoded path, passed as ``PATH_INFO`` (Debian's file passes none);
- SCGI: ``scgi_params`` passes neither; ``PATH_INFO`` is ``$uri`` (decoded)
  and flup sets an absent ``SCRIPT_NAME`` to ``""``.

Without these flup derives ``PATH_INFO`` from ``REQUEST_URI``, still
percent-encoded, minus ``SCRIPT_NAME``.

Request buffering stays nginx's default (on) for both: nginx reads every
body whole, chunked ones included, before it connects to flup, and passes
its length; a client that leaves mid-body never reaches the application.
``fastcgi_request_buffering off`` is the only nginx configuration in which a
body of unknown length reaches a gateway (a chunked body streamed as FastCGI
stdin, ``CONTENT_LENGTH`` empty, its end the empty stdin record). It is not
a column of the conformance table: it changes only what happens to bodies
(the ``chunked`` and ``truncated-*`` checks), so :class:`FlupFastCGIStreaming`
serves tests/test_wsgi11_flup.py, which runs those checks on it, instead of
a third run of every check. ``scgi_request_buffering off`` is left out: SCGI
needs a length, so nginx still buffers chunked bodies, and nginx 1.22 then
passes as ``CONTENT_LENGTH`` only the part of a ``Content-Length`` body it
has already read, which truncates the body without any sign the gateway
could see (nginx's current source passes the request's length).
"""

from __future__ import annotations

import logging
import sys
from importlib import metadata
from pathlib import Path

from tests.wsgi11.fronted import NGINX_PARAMS, BehindNginx, nginx_unavailable
from tests.wsgi11.servers import APP

#: The names of these hosts in ``SERVERS`` (tests/wsgi11/servers.py).
FLUP_HOSTS = ("fastcgi", "scgi")


def flup_unavailable() -> str | None:
    """Why the flup hosts cannot be run here, or None."""
    try:
        metadata.version("flup")
    except metadata.PackageNotFoundError:
        return "flup is not installed (pip install flup; the test extra installs it)"
    return nginx_unavailable()


class FlupBehindNginx(BehindNginx):
    """flup's server for ``protocol`` on the Unix socket, nginx in front."""

    protocol = ""
    #: The flup module whose ``WSGIServer`` serves it.
    module = ""
    #: nginx's directives for each request, besides the ``*_pass`` line.
    directives = ""
    #: ``*_request_buffering``: nginx's default (on), or off.
    request_buffering = True

    @staticmethod
    def unavailable() -> str | None:
        return flup_unavailable()

    def backend_command(self, socket_path: Path) -> list[str]:
        return [sys.executable, "-m", "tests.wsgi11.flup_hosts", self.protocol, str(socket_path)]

    def pass_directives(self, socket_path: Path) -> str:
        buffering = "" if self.request_buffering else f" {self.protocol}_request_buffering off;"
        return f"{self.directives}{buffering} {self.protocol}_pass unix:{socket_path};"

    def software(self) -> str:
        return (f"flup {metadata.version('flup')} (`{self.module}.WSGIServer`, threaded, "
                f"Unix socket) behind {self.nginx_version()} (Debian; `{self.directives.strip()}`, "
                f"request buffering {'on' if self.request_buffering else 'off'}, `client_max_body_size {self.body_limit}`, "
                "0 under the middleware's mounts)")


class FlupFastCGI(FlupBehindNginx):
    name = "fastcgi"
    protocol = "fastcgi"
    module = "flup.server.fcgi"
    directives = (f"include {NGINX_PARAMS / 'fastcgi_params'}; fastcgi_split_path_info ^()(/.*)$; "
                  "fastcgi_param PATH_INFO $fastcgi_path_info;")


class FlupSCGI(FlupBehindNginx):
    name = "scgi"
    protocol = "scgi"
    module = "flup.server.scgi"
    directives = f"include {NGINX_PARAMS / 'scgi_params'}; scgi_param PATH_INFO $uri;"


class FlupFastCGIStreaming(FlupFastCGI):
    """With ``fastcgi_request_buffering off``: bodies streamed to flup as they arrive."""

    name = "fastcgi-streaming"
    request_buffering = False


def serve(protocol: str, socket_path: str) -> None:
    """Serve ``APP`` with flup's threaded server for ``protocol`` until SIGTERM."""
    module, _, name = APP.partition(":")
    app = getattr(__import__(module, fromlist=[name]), name)
    if protocol == "fastcgi":
        from flup.server.fcgi import WSGIServer as FastCGIServer

        FastCGIServer(app, bindAddress=socket_path, multithreaded=True, multiplexed=False).run()
    elif protocol == "scgi":
        from flup.server.scgi import WSGIServer as SCGIServer

        SCGIServer(app, bindAddress=socket_path, multithreaded=True, loggingLevel=logging.WARNING).run()
    else:
        raise SystemExit(f"unknown protocol {protocol!r}: fastcgi or scgi")


if __name__ == "__main__":
    serve(*sys.argv[1:3])
