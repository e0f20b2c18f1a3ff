"""uWSGI, from PyPI, as two hosts of the conformance run, each serving ``tests.wsgi11.apps:application``.

- **uwsgi**: uWSGI speaking HTTP itself (``--http-socket`` on 127.0.0.1),
  how its documentation runs an application without a front end: one master,
  one worker process with 8 threads (``--master --processes 1 --threads 8``).
- **uwsgi-nginx**: uWSGI on a Unix socket speaking the uwsgi protocol
  (``--uwsgi-socket``), Debian's nginx in front with ``uwsgi_pass`` and
  Debian's ``uwsgi_params`` (tests/wsgi11/fronted.py starts both), how it is
  deployed behind a web server.

Both run the ``uwsgi`` executable of this virtualenv (the ``uwsgi`` package,
built from source at install time with the C compiler and this Python's
headers), with this virtualenv as its Python home (``--home``), and these
options beyond the deployment ones, each for a reason:

- ``--need-app``: exit when the application cannot be imported, instead of
  serving 500s (a launcher then reports the import error at once);
- ``--die-on-term``: stop on SIGTERM (uWSGI 2.0 reloads on it by default),
  with ``--worker-reload-mercy 5`` so that a connection the kit left open
  cannot hold the stop for uWSGI's default 60 s;
- ``--buffer-size 32768``: the request head may be 32 KiB (the default, 4 KiB,
  closes the connection without a response past it), as on the other servers;
- ``--disable-logging``: no line per request in the test output;
- on the ``--http-socket`` host, ``--chunked-input-limit`` 8 MiB: the
  largest chunk of a chunked request body that uWSGI's chunked-input API
  takes (a longer one fails the read); the default, 1 MB, is less than the
  1 MiB chunks of the Flask uploads with their framing.

uWSGI's own body limit (``--limit-post``) is left unset: past it uWSGI closes
the connection without a response rather than answering 413.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.wsgi11.fronted import NGINX_PARAMS, BehindNginx, nginx_unavailable
from tests.wsgi11.servers import APP, ExternalServer

UWSGI = Path(sys.executable).parent / "uwsgi"
#: ``--chunked-input-limit`` of the ``--http-socket`` host: the largest chunk
#: uWSGI's chunked-input API takes (1 MB by default; the uploads of
#: tests/test_wsgi11_frameworks.py send 1 MiB chunks, framing included past it).
CHUNK_LIMIT = 8 * 1024 * 1024
#: The options both hosts share (see the module's docstring).
COMMON = ["--master", "--processes", "1", "--threads", "8", "--need-app", "--die-on-term",
          "--worker-reload-mercy", "5", "--buffer-size", "32768", "--disable-logging"]


def uwsgi_unavailable(name: str = "uwsgi") -> str | None:
    """Why the host ``name`` cannot be run here, or None."""
    if not UWSGI.exists():
        return "uWSGI is not installed (pip install uwsgi; the test extra has it)"
    if name == "uwsgi-nginx":
        return nginx_unavailable()
    return None


def _uwsgi_command(*socket: str) -> list[str]:
    return [str(UWSGI), *socket, *COMMON, "--home", sys.prefix, "--module", APP]


def _uwsgi_version() -> str:
    return subprocess.run([str(UWSGI), "--version"], capture_output=True, text=True).stdout.strip()


class Uwsgi(ExternalServer):
    name = "uwsgi"

    @staticmethod
    def unavailable() -> str | None:
        return uwsgi_unavailable("uwsgi")

    def command(self, port: int) -> list[str]:
        return _uwsgi_command("--http-socket", f"127.0.0.1:{port}", "--chunked-input-limit", str(CHUNK_LIMIT))

    def software(self) -> str:
        return (f"uWSGI {_uwsgi_version()} (`--http-socket`, `--master --processes 1 --threads 8`, "
                f"`--chunked-input-limit {CHUNK_LIMIT}`), "
                f"Python {sys.version.split()[0]}")


class UwsgiNginx(BehindNginx):
    name = "uwsgi-nginx"

    @staticmethod
    def unavailable() -> str | None:
        return uwsgi_unavailable("uwsgi-nginx")

    def backend_command(self, socket_path: Path) -> list[str]:
        return _uwsgi_command("--uwsgi-socket", str(socket_path))

    def pass_directives(self, socket_path: Path) -> str:
        return f"include {NGINX_PARAMS / 'uwsgi_params'}; uwsgi_pass unix:{socket_path};"

    def software(self) -> str:
        return (f"uWSGI {_uwsgi_version()} (`--uwsgi-socket` on a Unix socket, "
                f"`--master --processes 1 --threads 8`) behind {self.nginx_version()} (Debian package; "
                f"`uwsgi_pass`, request buffering on, `client_max_body_size` {self.body_limit}), "
                f"Python {sys.version.split()[0]}")
