"""The two distributions, installed as users install them, into fresh virtual environments.

- **propylon**, the abi3 wheel that ``scripts/test.sh`` builds with the
  README's command (``maturin build --release --out target/wheels``), is
  installed into venvs of Python 3.10 and 3.13 (pyenv's) by a pip that may
  not build anything (``--only-binary :all:``) and finds no ``cargo`` on
  ``PATH``; each serves the showcase with the installed ``propylon`` script.
- **propylon-wsgi11**, built here with its documented command (``pip wheel
  --no-deps -w DIR packaging/wsgi11``), is the package's own files and no
  others; installed alone beside gunicorn and waitress, it serves the
  conformance probe behind ``WSGI11Middleware`` on each, and its own
  conformance kit (``python -m propylon.wsgi11.conformance``) finds every
  guarantee given.
- Both installed in one venv: one ``propylon.wsgi11``, so the exception
  classes reached through either are the same objects.

The venvs are made without pip (``venv --without-pip``) and filled by this
environment's pip with ``--python``: a few seconds each. Dependencies (tomli
on 3.10, gunicorn, waitress) come from PyPI as wheels.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from propylon.config import Config
from propylon.wsgi11.middleware import BUFFER_MEMORY_LIMIT, MAX_BODY_SIZE
from tests.support import CLIENT_TIMEOUT, REPO, ServerProcess, check_stopped_cleanly
from tests.wsgi11.servers import ExternalServer

#: Where scripts/test.sh puts the wheel it builds and installs.
WHEELS = REPO / "target" / "wheels"
PACKAGE = REPO / "python" / "propylon"
#: The files of the full package that propylon-wsgi11 ships, as paths inside a wheel.
WSGI11_FILES = sorted(
    [f"propylon/{name}" for name in ("errors.py", "filewrapper.py")]
    + [path.relative_to(PACKAGE.parent).as_posix() for path in (PACKAGE / "wsgi11").rglob("*.py")]
)
#: The request body limit the probe is served with behind the middleware.
LIMIT = 256 * 1024
PROBE_APP = f'''
from propylon.wsgi11 import WSGI11Middleware
from propylon.wsgi11.conformance import ProbeApp

probe = ProbeApp()
MOUNTS = {{
    "middleware": WSGI11Middleware(probe, max_body_size={LIMIT}),
    "buffered": WSGI11Middleware(probe, max_body_size={LIMIT}, buffer_body=True),
}}


def application(environ, start_response):
    name, _, rest = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    if name == "ready":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"ready"]
    mount = MOUNTS.get(name)
    if mount is None:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"no mount\\n"]
    environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/" + name
    environ["PATH_INFO"] = "/" + rest
    return mount(environ, start_response)
'''


def pyenv_python(version: str) -> Path:
    """pyenv's newest interpreter of ``version`` (``3.10``), or skip."""
    roots = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]))
    roots.append(Path("~/.pyenv").expanduser())
    for root in roots:
        found = [path for path in (root / "versions").glob(f"{version}.*/bin/python{version}") if path.is_file()]
        if found:
            return max(found, key=lambda path: tuple(int(n) for n in path.parent.parent.name.split(".")))
    pytest.skip(f"no Python {version} from pyenv (looked in {', '.join(map(str, roots))}/versions)")


def without_cargo() -> dict[str, str]:
    """This environment, with no directory holding ``cargo`` on ``PATH``."""
    path = os.pathsep.join(
        entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry and not (Path(entry) / "cargo").exists()
    )
    assert shutil.which("cargo", path=path) is None
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = path
    return env


def make_venv(python: Path, where: Path) -> Path:
    """A new venv of ``python`` without pip; its interpreter."""
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(where)], check=True, timeout=60)
    return where / "bin" / "python"


def pip_install(venv_python: Path, *requirements: str | Path) -> None:
    """Install wheels only (nothing built), with no cargo to build with."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv_python), "--disable-pip-version-check",
         "install", "-q", "--only-binary", ":all:", *map(str, requirements)],
        env=without_cargo(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, f"pip install {requirements}:\n{result.stdout}{result.stderr}"


def run_python(venv_python: Path, code: str) -> str:
    result = subprocess.run([str(venv_python), "-I", "-c", code], env=without_cargo(), capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def abi3_wheel() -> Path:
    wheels = sorted(WHEELS.glob("propylon-*-cp310-abi3-*.whl"), key=lambda path: path.stat().st_mtime)
    if not wheels:
        pytest.skip(f"no abi3 wheel in {WHEELS}: scripts/test.sh builds it (maturin build --release --out target/wheels)")
    return wheels[-1]


@pytest.fixture(scope="module")
def wsgi11_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wsgi11-wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "-q", "--no-deps", "-w", str(out),
         str(REPO / "packaging" / "wsgi11")],
        env=without_cargo(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, f"building propylon-wsgi11:\n{result.stdout}{result.stderr}"
    (wheel,) = out.glob("propylon_wsgi11-*-py3-none-any.whl")
    return wheel


# ------------------------------------------------------------------------------- the abi3 wheel


def test_the_wheel_is_one_wheel_for_every_python_from_3_10(abi3_wheel):
    # cp310-abi3: the stable ABI of Python 3.10 and later; manylinux: any
    # Linux with the glibc it names or newer (maturin checks the symbols).
    assert "-cp310-abi3-manylinux_" in abi3_wheel.name, abi3_wheel.name
    with zipfile.ZipFile(abi3_wheel) as wheel:
        names = wheel.namelist()
    assert "propylon/_core.abi3.so" in names
    assert set(WSGI11_FILES) <= set(names)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("version", ["3.10", "3.13"])
def test_the_wheel_serves_the_showcase_with_no_rust_toolchain(version, abi3_wheel, tmp_path):
    venv_python = make_venv(pyenv_python(version), tmp_path / "venv")
    pip_install(venv_python, abi3_wheel)
    core = run_python(venv_python, "import sys, propylon._core as c; print(sys.version_info[:2], c.__file__)")
    assert core.startswith(f"({version.replace('.', ', ')})") and core.endswith("/propylon/_core.abi3.so"), core
    server = ServerProcess("examples.showcase:app", [], ["127.0.0.1:0"], launcher=(),
                           executable=str(venv_python.parent / "propylon"))  # fmt: skip
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
        conn.request("GET", "/")
        page = conn.getresponse()
        assert page.status == 200
        assert 'href="/static/showcase.css"' in page.read().decode()
        conn.request("GET", "/static/showcase.css", headers={"Accept-Encoding": "identity"})
        css = conn.getresponse()
        assert css.status == 200
        assert css.read() == (REPO / "examples" / "static" / "showcase.css").read_bytes()
        conn.close()
    finally:
        problems = check_stopped_cleanly(server, server.stop())
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------ propylon-wsgi11 alone


def test_the_pure_distribution_is_the_packages_own_files(wsgi11_wheel):
    # Built from the same source: each file byte for byte; and nothing else
    # of Propylon (no propylon/__init__.py: `propylon` is a namespace package
    # when this distribution is installed alone).
    with zipfile.ZipFile(wsgi11_wheel) as wheel:
        files = {name: wheel.read(name) for name in wheel.namelist() if ".dist-info/" not in name}
        metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert sorted(files) == WSGI11_FILES
    for name, data in files.items():
        assert data == (PACKAGE.parent / name).read_bytes(), name
    assert "Requires-Dist" not in metadata.replace("Requires-Dist: h2; extra == 'http2'", "")


def test_the_middleware_defaults_are_propylons():
    # propylon.wsgi11 states them itself (propylon.config is not in the pure distribution).
    assert Config.max_body_size == MAX_BODY_SIZE
    assert Config.buffer_memory_limit == BUFFER_MEMORY_LIMIT


class IsolatedServer(ExternalServer):
    """gunicorn or waitress from another venv, serving ``probe_app:application`` from
    ``app_dir`` and nothing of this repository, configured as tests/wsgi11/servers.py
    configures them (8 threads each; waitress's body limit ``LIMIT``)."""

    def __init__(self, name: str, venv_bin: Path, app_dir: Path) -> None:
        self.name = name
        self.venv_bin = venv_bin
        self.app_dir = app_dir
        super().__init__()

    def command(self, port: int) -> list[str]:
        if self.name == "gunicorn":
            return [str(self.venv_bin / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1",
                    "--worker-class", "gthread", "--threads", "8", "--graceful-timeout", "5",
                    "--log-level", "warning", "probe_app:application"]  # fmt: skip
        return [str(self.venv_bin / "waitress-serve"), f"--listen=127.0.0.1:{port}", "--threads=8",
                f"--max-request-body-size={LIMIT}", "probe_app:application"]  # fmt: skip

    def env(self) -> dict[str, str]:
        return {**without_cargo(), "PYTHONPATH": str(self.app_dir), "PYTHONUNBUFFERED": "1"}


@pytest.mark.timeout(300)
def test_the_pure_distribution_alone_gives_every_guarantee_on_gunicorn_and_waitress(wsgi11_wheel, tmp_path):
    venv_python = make_venv(pyenv_python("3.10"), tmp_path / "venv")
    pip_install(venv_python, wsgi11_wheel, "gunicorn", "waitress")
    # Alone: the server, its configuration and its compiled module are not there.
    missing = run_python(venv_python, "import importlib.util as u; "
                                      "print([u.find_spec(m) for m in ('propylon.config', 'propylon._core')])")  # fmt: skip
    assert missing == "[None, None]"
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "probe_app.py").write_text(PROBE_APP)
    for name in ("gunicorn", "waitress"):
        server = IsolatedServer(name, venv_python.parent, app_dir)
        try:
            report = tmp_path / f"{name}.json"
            kit = subprocess.run(
                [str(venv_python), "-I", "-m", "propylon.wsgi11.conformance", "--url", server.url("middleware"),
                 "--buffered-url", server.url("buffered"), "--max-body-size", "256K", "--json", str(report)],
                env=without_cargo(), cwd=tmp_path, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
        finally:
            server.close()
        assert kit.returncode == 0, f"{name}:\n{kit.stdout}{kit.stderr}\nserver output:\n{server.output()}"
        assert "every applicable requirement is met" in kit.stdout
        (run,) = json.loads(report.read_text())["runs"]
        results = {cid: result["result"] for cid, result in run["results"].items()}
        # Checked, not skipped: the body rules, the compatibility mode, and
        # the server's own file path kept behind the middleware.
        for cid in ("version", "read-size", "truncated-length", "truncated-chunked", "buffered-length",
                    "file-wrapper-fast-path"):  # fmt: skip
            assert results.get(cid) == "pass", (name, cid, results.get(cid), kit.stdout)
        # What does not apply, as in the suite's runs (docs/wsgi11-servers.md): neither
        # server decodes a Content-Encoding or speaks HTTP/2 (nor is h2 installed);
        # waitress reads a body whole before calling the application, so no
        # exception from a truncated or oversized body is there to judge.
        not_applicable = {cid for cid, result in results.items() if result == "n/a"}
        http2 = {cid for cid in results if cid.startswith("http2-")}
        read_first = {"truncated-connection-error", "limit-efbig"} if name == "waitress" else set()
        assert not_applicable == {"decoded-body", "limit-decoded"} | http2 | read_first, (name, not_applicable)


@pytest.mark.timeout(180)
def test_with_both_installed_the_exceptions_are_one_class(abi3_wheel, wsgi11_wheel, tmp_path):
    venv_python = make_venv(pyenv_python("3.13"), tmp_path / "venv")
    pip_install(venv_python, wsgi11_wheel, abi3_wheel)
    same = run_python(
        venv_python,
        "import propylon, propylon.errors, propylon.wsgi11 as w\n"
        "print(all(getattr(propylon, n) is getattr(w, n) is getattr(propylon.errors, n, w.FileWrapper)\n"
        "          for n in ('ClientDisconnected', 'InvalidRequestBody', 'RequestBodyError',\n"
        "                    'RequestBodyTooLarge', 'FileWrapper')), propylon.Application.__module__)",
    )  # fmt: skip
    assert same == "True propylon.application"
