"""Start the servers we did not write, for real, each serving ``tests.wsgi11.apps:application``.

Every server runs in a subprocess on 127.0.0.1 and a free port, and is ready
when ``GET /ready`` answers (polled with a deadline, never a sleep). How each
one is configured, and why:

- **gunicorn**: one worker process, the ``gthread`` worker with 8 threads
  (the conformance kit runs checks in parallel; the default ``sync`` worker
  would serialise them). No body limit: gunicorn has none.
- **waitress**: 8 threads, ``max_request_body_size`` = ``LIMIT`` (the
  conformance runs; ``body_limit`` changes it for the Flask and Django tests).
- **wsgiref**: the standard library's server, one thread per connection
  (tests/wsgi11/wsgiref_server.py).
- **mod_wsgi**: Debian's ``apache2`` and ``libapache2-mod-wsgi-py3``, in
  *embedded* mode, run as ``apache2 -X`` (one process, in the foreground)
  from a configuration generated in a temporary directory: ``mpm_event``,
  ``WSGIChunkedRequest On`` (without it mod_wsgi answers chunked requests
  with 411 before the application runs), ``WSGIPassApacheRequest On`` (the
  middleware closes the connection after a short response through it:
  propylon/wsgi11/apache.py), ``LimitRequestBody`` = ``LIMIT``
  except under the middleware's mounts, where the middleware enforces the
  limit. The application runs on Debian's system Python (mod_wsgi is built
  against it), with the repository's ``python/`` directory, the repository
  itself and this virtualenv's site-packages (for Flask and Django; the same
  Python minor version is required) on ``WSGIPythonPath``. Apache refuses to
  serve as root, so as root its process switches to ``www-data``; when that
  user cannot read the repository, the needed sources are copied into the
  temporary directory first. What the Apache hosts share is the
  :class:`Apache` base class; mod_wsgi's daemon mode and CGI under
  ``mod_cgid`` build on it in tests/wsgi11/apache_hosts.py.

Propylon itself is started with :class:`tests.support.ServerProcess`.
"""

from __future__ import annotations

import http.client
import importlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

from tests.support import CLIENT_TIMEOUT, READY_TIMEOUT, REPO, STOP_TIMEOUT
from tests.wsgi11.apps import LIMIT

APP = "tests.wsgi11.apps:application"
APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
MOD_WSGI = Path("/usr/lib/apache2/modules/mod_wsgi.so")
MODULES = Path("/usr/lib/apache2/modules")
SYSTEM_PYTHON = Path("/usr/bin/python3")
#: Distributions Flask and Django need, copied when www-data cannot read the virtualenv.
FRAMEWORK_PACKAGES = ("flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker",
                      "django", "asgiref", "sqlparse")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ExternalServer:
    """A server we did not write, serving ``APP`` on 127.0.0.1."""

    name = "server"

    def __init__(self, body_limit: int = LIMIT) -> None:
        #: The server's own request body limit, where it has one (waitress, Apache).
        self.body_limit = body_limit
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._output: list[str] = []
        self._lock = threading.Lock()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"wsgi11-{self.name}-"))
        # Apache's worker (www-data) must reach this directory.
        self.tmp.chmod(0o755)
        self._start()

    # -- to be defined by each server ------------------------------------------------

    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def software(self) -> str:
        return ""

    @staticmethod
    def unavailable() -> str | None:
        """Why this server cannot be run here (a reason to skip its tests), or None."""
        return None

    def application_pid(self) -> int:
        """The process that runs the application."""
        return self.pid

    def extra_output(self) -> str:
        return ""

    # -- lifecycle -------------------------------------------------------------------

    def _start(self) -> None:
        for _ in range(3):  # another process may take the free port between the check and the bind
            self.port = free_port()
            self._output.clear()
            self.proc = subprocess.Popen(self.command(self.port), cwd=REPO, env=self.env(),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT)
            threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()
            if self._wait_ready():
                return
            self._stop_process()
            if "in use" not in self.output():
                break
        raise AssertionError(f"{self.name} did not become ready on port {self.port}; output:\n{self.output()}")

    def _drain(self, pipe) -> None:
        for raw in iter(pipe.readline, b""):
            with self._lock:
                self._output.append(raw.decode("utf-8", "replace").rstrip("\n"))
        pipe.close()

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
                conn.request("GET", "/ready")
                response = conn.getresponse()
                ok = response.status == 200 and response.read() == b"ready"
                conn.close()
                if ok:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def output(self) -> str:
        with self._lock:
            text = "\n".join(self._output)
        extra = self.extra_output()
        return text + ("\n" + extra if extra else "")

    def url(self, mount: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mount}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> int | None:
        return self._stop_process()

    def _stop_process(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Gunicorn(ExternalServer):
    name = "gunicorn"

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                "--worker-class", "gthread", "--threads", "8", "--graceful-timeout", "5",
                "--log-level", "warning", APP]

    def software(self) -> str:
        return f"gunicorn {metadata.version('gunicorn')} (1 worker, gthread, 8 threads)"


class Waitress(ExternalServer):
    name = "waitress"

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", "--threads=8",
                f"--max-request-body-size={self.body_limit}", APP]

    def software(self) -> str:
        return f"waitress {metadata.version('waitress')} (8 threads, max_request_body_size {self.body_limit})"


class Wsgiref(ExternalServer):
    name = "wsgiref"

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", "tests.wsgi11.wsgiref_server", str(port)]

    def software(self) -> str:
        return f"wsgiref from Python {sys.version.split()[0]} (a thread per connection)"


def apache_unavailable() -> str | None:
    """Why Apache with mod_wsgi cannot be run here, or None."""
    if not Path(APACHE).exists():
        return "apache2 is not installed (apt-get install apache2 libapache2-mod-wsgi-py3)"
    if not MOD_WSGI.exists():
        return "mod_wsgi is not installed (apt-get install libapache2-mod-wsgi-py3)"
    return None


def _system_python_minor() -> str:
    out = subprocess.run([str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


class Apache(ExternalServer):
    """Debian's ``apache2`` from a configuration generated in ``self.tmp``, serving ``APP``.

    What every Apache host here shares: ``mpm_event``, the body limit (none
    under the middleware's mounts), the worker user, and the Python path the
    application needs on Debian's system Python. A subclass names its
    modules and the directives that hand requests to Python (``host_config``).
    """

    name = "apache"
    #: Modules besides ``mpm_event`` and ``authz_core``.
    modules: tuple[str, ...] = ()
    #: ``apache2`` options after ``-f``: one process in the foreground.
    flags: tuple[str, ...] = ("-X",)

    def __init__(self, body_limit: int = LIMIT) -> None:
        self.user = "www-data" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        super().__init__(body_limit)

    def host_config(self) -> str:
        raise NotImplementedError

    def command(self, port: int) -> list[str]:
        conf = self.tmp / "httpd.conf"
        conf.write_text(self._config(port))
        return [APACHE, "-f", str(conf), *self.flags]

    def env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}

    def _python_path(self) -> list[str]:
        """The application's Python path, for www-data (sources copied once, when it cannot read them)."""
        if not hasattr(self, "_paths"):
            self._paths = self._find_python_path()
        return self._paths

    def _find_python_path(self) -> list[str]:
        sources = [REPO / "python", REPO]
        site = Path(sysconfig.get_paths()["purelib"])
        same_minor = _system_python_minor() == str(sys.version_info[:2])
        if self._readable(REPO / "tests" / "wsgi11" / "apps.py") and self._readable(REPO / "python" / "propylon" / "__init__.py"):
            paths = [str(p) for p in sources]
        else:
            paths = self._copy_sources()
        if same_minor:
            if self._readable(site / "flask" / "__init__.py"):
                paths.append(str(site))
            else:
                paths.append(self._copy_site_packages(site))
        return paths

    def _readable(self, path: Path) -> bool:
        """Whether Apache's worker can read ``path``: as root it runs as www-data,
        which needs the "other" permission bits on the file and every directory above.
        ``WSGI11_TEST_COPY_SOURCES=1`` forces the copying path (to test it)."""
        if os.environ.get("WSGI11_TEST_COPY_SOURCES"):
            return False
        if self.user != "www-data":
            return True
        for parent in [path, *path.parents]:
            need = stat.S_IROTH if parent == path else stat.S_IXOTH
            if not parent.stat().st_mode & need:
                return False
        return True

    def _copy_sources(self) -> list[str]:
        src = self.tmp / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc")
        shutil.copytree(REPO / "python" / "propylon", src / "python" / "propylon", ignore=ignore)
        for part in ("__init__.py",):
            (src / "repo" / "tests").mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / "tests" / part, src / "repo" / "tests" / part)
        for sub in ("apps", "wsgi11"):
            shutil.copytree(REPO / "tests" / sub, src / "repo" / "tests" / sub, ignore=ignore)
        _world_readable(src)
        return [str(src / "python"), str(src / "repo")]

    def _copy_site_packages(self, site: Path) -> str:
        dest = self.tmp / "site-packages"
        for name in FRAMEWORK_PACKAGES:
            if (site / name).is_dir():
                shutil.copytree(site / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        _world_readable(dest)
        return str(dest)

    def _config(self, port: int) -> str:
        user = f"User {self.user}\nGroup {self.user}\n" if os.geteuid() == 0 else ""
        no_limit = "".join(f"<Location /{m}>\n  LimitRequestBody 0\n</Location>\n"
                           for m in ("middleware", "buffered", "flask", "django"))
        modules = "".join(f"LoadModule {name}_module {MODULES}/mod_{name}.so\n"
                          for name in ("mpm_event", "authz_core", *self.modules))
        return f"""\
# Generated by tests/wsgi11/servers.py for one test run.
ServerRoot {self.tmp}
Listen 127.0.0.1:{port}
PidFile {self.tmp}/httpd.pid
DefaultRuntimeDir {self.tmp}
Mutex file:{self.tmp} default
ErrorLog {self.tmp}/error.log
LogLevel warn
{modules}{user}ServerName 127.0.0.1
DocumentRoot {self.tmp}
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
KeepAliveTimeout 5
LimitRequestBody {self.body_limit}
{no_limit}{self.host_config()}<Directory {self.tmp}>
  Require all granted
</Directory>
"""

    def extra_output(self) -> str:
        log = self.tmp / "error.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def stop(self) -> int | None:
        # mod_cgid's daemon (a child of the Apache process) sometimes outlives
        # `apache2 -X` stopped by SIGTERM: end what is left of this run's processes.
        children = self._own_processes()
        code = super().stop()
        for pid in children:
            if pid in self._own_processes(among=children):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return code

    def _own_processes(self, among: list[int] | None = None) -> list[int]:
        """Children of the Apache process (or the given ones still alive) started from this run's configuration."""
        if among is None:
            try:
                among = [int(p) for p in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()]
            except (OSError, AssertionError):
                return []
        conf = str(self.tmp / "httpd.conf").encode()
        alive = []
        for pid in among:
            try:
                if conf in Path(f"/proc/{pid}/cmdline").read_bytes() and "Z" not in _proc_state(pid):
                    alive.append(pid)
            except OSError:
                pass
        return alive

    @staticmethod
    def system_python_version() -> str:
        return _system_python_minor().strip("()").replace(", ", ".")

    @staticmethod
    def apache_version() -> str:
        version = subprocess.run([APACHE, "-v"], capture_output=True, text=True).stdout.splitlines()
        return version[0].split(":", 1)[-1].strip() if version else "Apache"


class ModWsgi(Apache):
    name = "mod_wsgi"
    modules = ("wsgi",)

    @staticmethod
    def unavailable() -> str | None:
        return apache_unavailable()

    def host_config(self) -> str:
        script = self.tmp / "probe.wsgi"
        script.write_text("from tests.wsgi11.apps import application  # noqa: F401\n")
        script.chmod(0o644)
        return f"""\
WSGIPythonPath {":".join(self._python_path())}
WSGIChunkedRequest On
WSGIPassApacheRequest On
WSGIApplicationGroup %{{GLOBAL}}
{self.process_config()}WSGIScriptAlias / {script}
"""

    def process_config(self) -> str:
        """Where the application runs: in the Apache process itself (embedded mode)."""
        return ""

    def mod_wsgi_version(self) -> str:
        try:
            return subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libapache2-mod-wsgi-py3"],
                                  capture_output=True, text=True).stdout.strip()
        except FileNotFoundError:
            return "?"

    def software(self) -> str:
        return (f"{self.apache_version()}, mod_wsgi {self.mod_wsgi_version()} (Debian packages; embedded mode, "
                f"`apache2 -X`, mpm_event, `WSGIChunkedRequest On`, `WSGIPassApacheRequest On`), "
                f"system Python {self.system_python_version()}")


def _proc_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _world_readable(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)


class _Defined:
    """A server class from a module of tests/wsgi11 that imports this one
    (the Apache hosts, the gateways behind nginx), imported on first use."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def _class(self) -> type[ExternalServer]:
        cls: type[ExternalServer] = getattr(importlib.import_module(f"tests.wsgi11.{self.module}"), self.name)
        return cls

    def __call__(self, body_limit: int = LIMIT) -> ExternalServer:
        return self._class()(body_limit)

    def unavailable(self) -> str | None:
        return self._class().unavailable()


SERVERS: dict[str, type[ExternalServer] | _Defined] = {
    "gunicorn": Gunicorn,
    "waitress": Waitress,
    "wsgiref": Wsgiref,
    "mod_wsgi": ModWsgi,
    "mod_wsgi-daemon": _Defined("apache_hosts", "ModWsgiDaemon"),
    "cgi": _Defined("apache_hosts", "ApacheCgi"),
    "uwsgi": _Defined("uwsgi_hosts", "Uwsgi"),
    "uwsgi-nginx": _Defined("uwsgi_hosts", "UwsgiNginx"),
    "fastcgi": _Defined("flup_hosts", "FlupFastCGI"),
    "scgi": _Defined("flup_hosts", "FlupSCGI"),
}


def unavailable(name: str) -> str | None:
    """Why server ``name`` cannot be run here (its tests are skipped with it), or None."""
    return SERVERS[name].unavailable()
