"""Unit tests for the pure-Python half of propylon (no compiled ``_core`` needed).

Covers bind/size parsing and Config checks, FileWrapper, the wsgi.errors stream
and logging setup, application loading, and the CLI's one-line errors.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import propylon
from propylon import _logging, cli, supervisor
from propylon.config import GIB, KIB, MIB, Bind, Config, ConfigError, parse_bind, parse_size
from propylon.filewrapper import FileWrapper
from propylon.loader import AppLoadError, load_app
from propylon.worker import AppSource

# --------------------------------------------------------------------- parse_bind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8000", Bind("127.0.0.1", 8000)),
        ("localhost:0", Bind("localhost", 0)),
        ("0.0.0.0:65535", Bind("0.0.0.0", 65535)),
        ("[::1]:8000", Bind("::1", 8000)),
        ("[::]:0", Bind("::", 0)),
        ("[::1]", Bind("::1", 8000)),
        ("localhost", Bind("localhost", 8000)),
        (":9000", Bind("0.0.0.0", 9000)),
        ("unix:/tmp/p.sock", Bind(path="/tmp/p.sock")),
        ("unix:///tmp/p.sock", Bind(path="/tmp/p.sock")),
        ("unix://rel.sock", Bind(path="rel.sock")),
    ],
)
def test_parse_bind_accepts(text: str, expected: Bind) -> None:
    assert parse_bind(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty bind address"),
        ("8000", "127.0.0.1:8000"),
        ("localhost:65536", "0 to 65535"),
        ("localhost:-1", "0 to 65535"),
        ("localhost:http", "0 to 65535"),
        ("localhost:", "0 to 65535"),
        ("::1:8000", "brackets"),
        ("[::1", "[::1]:8000"),
        ("[::1]8000", "[::1]:8000"),
        ("[nope]:80", "not an IPv6 address"),
        ("unix:", "empty Unix socket path"),
    ],
)
def test_parse_bind_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_bind(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["127.0.0.1:8000", "[::1]:0", "unix:/tmp/x.sock"])
def test_bind_str_round_trips(text: str) -> None:
    assert str(parse_bind(text)) == text


def test_bind_needs_host_and_port_or_path() -> None:
    with pytest.raises(ConfigError):
        Bind("127.0.0.1", 8000, "/tmp/x.sock")
    with pytest.raises(ConfigError):
        Bind()
    with pytest.raises(ConfigError):
        Bind("127.0.0.1", 70000)


# --------------------------------------------------------------------- parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1048576", 1048576),
        ("64K", 64 * KIB),
        ("64k", 64 * KIB),
        ("10M", 10 * MIB),
        ("10MiB", 10 * MIB),
        ("1GiB", GIB),
        ("1g", GIB),
        (" 2 KiB ", 2 * KIB),
    ],
)
def test_parse_size_accepts(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "M", "-1", "1.5M", "10MB", "1T", "1 KiBs", "٣"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="bad size"):
        parse_size(text)


# ------------------------------------------------------------------------- Config


def test_config_defaults() -> None:
    config = Config()
    assert config.binds == [Bind("127.0.0.1", 8000)]
    assert (config.threads, config.queue_size) == (8, 256)
    assert (config.max_body_size, config.buffer_memory_limit, config.max_header_size) == (GIB, MIB, 64 * KIB)
    assert config.max_headers == 100
    assert (config.keep_alive_timeout, config.header_timeout) == (5.0, 10.0)
    assert (config.body_timeout, config.graceful_timeout) == (60.0, 30.0)
    assert (config.decompress, config.buffer_body, config.access_log) == (False, False, False)
    assert (config.log_level, config.root_path) == ("info", "")
    assert config.tcp_congestion is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"binds": []},
        {"threads": 0},
        {"queue_size": -1},
        {"queue_timeout": 0.0},
        {"queue_timeout": float("inf")},
        {"max_headers": 0},
        {"header_timeout": 0.0},
        {"body_timeout": float("nan")},
        {"graceful_timeout": -1.0},
        {"log_level": "verbose"},
        {"root_path": "api"},
        {"root_path": "/api/"},
        {"tcp_congestion": ""},
        {"tcp_congestion": "cubic\x00"},
        {"tcp_congestion": "a" * 16},
        {"tcp_congestion": "cu bic"},
    ],
)
def test_config_rejects(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Config(**kwargs)  # type: ignore[arg-type]


# -------------------------------------------------------------------- FileWrapper


class _Tracked(io.BytesIO):
    close_calls = 0

    def close(self) -> None:
        self.close_calls += 1
        super().close()


def test_filewrapper_reads_blocks_and_stops_at_empty_bytes() -> None:
    wrapper = FileWrapper(io.BytesIO(b"abcdefg"), blksize=3)
    assert iter(wrapper) is wrapper
    assert list(wrapper) == [b"abc", b"def", b"g"]
    assert (wrapper.blksize, wrapper.filelike.read(1)) == (3, b"")


def test_filewrapper_close_closes_once() -> None:
    filelike = _Tracked(b"x")
    wrapper = FileWrapper(filelike)
    wrapper.close()
    wrapper.close()
    assert filelike.closed and filelike.close_calls == 1


def test_filewrapper_without_close() -> None:
    class ReadOnly:
        def read(self, size: int) -> bytes:
            return b""

    wrapper = FileWrapper(ReadOnly())
    assert list(wrapper) == []
    wrapper.close()


def test_filewrapper_rejects_str_blocks() -> None:
    with pytest.raises(TypeError, match="expected bytes; open the file in binary mode"):
        next(FileWrapper(io.StringIO("text")))  # type: ignore[arg-type]


def test_filewrapper_rejects_bad_blksize() -> None:
    with pytest.raises(ValueError):
        FileWrapper(io.BytesIO(), blksize=0)


def test_filewrapper_subclass_adds_close_action() -> None:
    events: list[str] = []

    class Closing(FileWrapper):
        def close(self) -> None:
            events.append("middleware")
            super().close()

    filelike = _Tracked(b"data")
    wrapper = Closing(filelike)
    assert isinstance(wrapper, FileWrapper)
    assert b"".join(wrapper) == b"data"
    wrapper.close()
    assert events == ["middleware"] and filelike.close_calls == 1


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_filewrapper_does_not_leak_fds(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(100_000))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        wrapper = FileWrapper(path.open("rb"), blksize=4096)
        assert sum(len(block) for block in wrapper) == 100_000
        wrapper.close()
    assert len(os.listdir("/proc/self/fd")) == before


# ---------------------------------------------------- ErrorStream and logging setup


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    names = ["propylon", "propylon.access", "propylon.wsgi", "propylon.error"]
    loggers = [logging.getLogger(name) for name in names]
    saved = [(logger, logger.level, list(logger.handlers)) for logger in loggers]
    propagate = logging.getLogger("propylon").propagate
    yield
    for logger, level, handlers in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers
    logging.getLogger("propylon").propagate = propagate


@pytest.fixture
def wsgi_records(restore_logging: None) -> list[logging.LogRecord]:
    handler = _ListHandler()
    logging.getLogger("propylon.wsgi").addHandler(handler)
    return handler.records


def test_error_stream_logs_complete_lines(wsgi_records: list[logging.LogRecord]) -> None:
    errors = _logging.ErrorStream()
    assert errors.write("first ") == 6
    assert wsgi_records == []
    errors.write("line\nsecond\r\nthi")
    errors.writelines(["rd", "\n"])
    print("via print", file=errors)
    assert [r.getMessage() for r in wsgi_records] == ["first line", "second", "third", "via print"]
    assert {(r.name, r.levelno) for r in wsgi_records} == {("propylon.wsgi", logging.ERROR)}


def test_error_stream_flush_logs_partial_line(wsgi_records: list[logging.LogRecord]) -> None:
    errors = _logging.ErrorStream()
    errors.write("no newline")
    errors.flush()
    errors.flush()
    assert [r.getMessage() for r in wsgi_records] == ["no newline"]


def test_error_stream_rejects_bytes(wsgi_records: list[logging.LogRecord]) -> None:
    with pytest.raises(TypeError, match="takes str"):
        _logging.ErrorStream().write(b"x")  # type: ignore[arg-type]


def test_error_stream_keeps_partial_lines_per_thread(wsgi_records: list[logging.LogRecord]) -> None:
    errors = _logging.ErrorStream()
    step = threading.Barrier(2)

    def writer(name: str) -> None:
        errors.write(f"{name}-start ")
        step.wait()  # both threads hold a partial line now
        errors.write(f"{name}-end\n")

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.getMessage() for r in wsgi_records) == ["a-start a-end", "b-start b-end"]


def test_configure_is_idempotent(restore_logging: None) -> None:
    _logging.configure("warning", access_log=True)
    _logging.configure("debug", access_log=False)
    logger = logging.getLogger("propylon")
    ours = [h for h in logger.handlers if h.formatter is not None and h.formatter._fmt == _logging.FORMAT]
    assert len(ours) == 1
    assert not logger.propagate and logger.level == logging.DEBUG
    assert not logging.getLogger("propylon.access").isEnabledFor(logging.INFO)

    _logging.configure("warning", access_log=True)
    assert logging.getLogger("propylon.access").isEnabledFor(logging.INFO)
    assert not logging.getLogger("propylon.server").isEnabledFor(logging.INFO)


def test_log_app_error_has_traceback(restore_logging: None) -> None:
    handler = _ListHandler()
    logging.getLogger("propylon.error").addHandler(handler)
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError as exc:
            _logging.log_app_error("error in WSGI application %s", exc)
    finally:
        logging.getLogger("propylon.error").removeHandler(handler)
    (record,) = handler.records
    assert record.getMessage() == "error in WSGI application %s"
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


# ------------------------------------------------------------------------ load_app


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory; sys.path and sys.modules are restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    return tmp_path


def _module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(source)


def _wsgi_app(environ: object, start_response: object) -> list[bytes]:
    return []


def test_load_app_default_attributes(app_dir: Path) -> None:
    _module(app_dir, "only_app", "def app(environ, start_response): return []\n")
    _module(app_dir, "both", "def application(e, s): return []\napp = None\n")
    assert load_app("only_app", factory=False).__name__ == "app"  # type: ignore[attr-defined]
    assert load_app("both", factory=False).__name__ == "application"  # type: ignore[attr-defined]


def test_load_app_dotted_attribute_and_factory(app_dir: Path) -> None:
    _module(
        app_dir,
        "dotted",
        "class api:\n"
        "    @staticmethod\n"
        "    def handler(environ, start_response): return []\n"
        "def create(): return api.handler\n",
    )
    assert load_app("dotted:api.handler", factory=False).__name__ == "handler"  # type: ignore[attr-defined]
    assert load_app("dotted:create", factory=True).__name__ == "handler"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "factory", "message"),
    [
        ("nosuchmod:app", False, "no module named 'nosuchmod'"),
        ("nosuchpkg.sub:app", False, "no module named 'nosuchpkg'"),
        ("broken:app", False, "'broken' failed: ModuleNotFoundError: No module named 'missing_dep'"),
        ("syntax:app", False, "importing 'syntax' failed: SyntaxError"),
        ("good:nope", False, "'good' has no attribute 'nope'"),
        ("good:holder.nope", False, "'good.holder' has no attribute 'nope'"),
        ("good", False, "has no attribute 'application' or 'app'"),
        ("good:number", False, "not callable (type int)"),
        ("good:number", True, "--factory given"),
        ("good:failing", True, "raised ValueError: no config"),
        ("good:make()", False, "not an attribute name"),
        (":app", False, "expected MODULE:ATTR"),
        ("good:", False, "expected MODULE:ATTR"),
    ],
)
def test_load_app_errors(app_dir: Path, spec: str, factory: bool, message: str) -> None:
    _module(app_dir, "broken", "import missing_dep\n")
    _module(app_dir, "syntax", "def app(:\n")
    _module(
        app_dir,
        "good",
        "number = 3\nclass holder: pass\ndef failing(): raise ValueError('no config')\n",
    )
    with pytest.raises(AppLoadError) as info:
        load_app(spec, factory)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_load_app_keeps_cause_of_user_errors(app_dir: Path) -> None:
    _module(app_dir, "boom", "raise RuntimeError('at import')\n")
    with pytest.raises(AppLoadError, match="RuntimeError: at import") as info:
        load_app("boom:app", factory=False)
    assert isinstance(info.value.__cause__, RuntimeError)


# ------------------------------------------------------------- CLI (in process)


@pytest.fixture
def fake_core(monkeypatch: pytest.MonkeyPatch, restore_logging: None) -> list[tuple[Config, object]]:
    """Replace the supervisor with a function that records what it was given:
    the configuration and the application's spec."""
    calls: list[tuple[Config, object]] = []

    def supervise(source: AppSource, config: Config) -> int:
        calls.append((config, source.spec))
        return 0

    monkeypatch.setattr(cli, "supervise", supervise)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return calls


def test_cli_builds_config_from_flags(fake_core: list[tuple[Config, object]]) -> None:
    argv = [
        "--bind", "127.0.0.1:0", "-b", "unix:/tmp/p.sock", "--threads", "2", "--queue-size", "3",
        "--queue-timeout", "0.5",
        "--max-body-size", "10M", "--decompress", "--buffer-body", "--buffer-memory-limit", "64K",
        "--max-header-size", "8K", "--max-headers", "50", "--keep-alive-timeout", "1.5",
        "--header-timeout", "2", "--body-timeout", "3", "--graceful-timeout", "0",
        "--log-level", "WARNING", "--access-log", "--root-path", "/api",
        "--tcp-congestion", "reno",
        f"{__name__}:_wsgi_app",
    ]  # fmt: skip
    assert cli.main(argv) == 0
    ((config, app),) = fake_core
    assert app == f"{__name__}:_wsgi_app"
    assert config == Config(
        binds=[Bind("127.0.0.1", 0), Bind(path="/tmp/p.sock")],
        threads=2,
        queue_size=3,
        queue_timeout=0.5,
        max_body_size=10 * MIB,
        decompress=True,
        buffer_body=True,
        buffer_memory_limit=64 * KIB,
        max_header_size=8 * KIB,
        max_headers=50,
        keep_alive_timeout=1.5,
        header_timeout=2.0,
        body_timeout=3.0,
        graceful_timeout=0.0,
        log_level="warning",
        access_log=True,
        root_path="/api",
        tcp_congestion="reno",
    )


def test_cli_leaves_defaults_to_config(fake_core: list[tuple[Config, object]]) -> None:
    assert cli.main([f"{__name__}:_wsgi_app"]) == 0
    assert fake_core[0][0] == Config()


def test_cli_reports_serve_oserror(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    def refuse(config: Config) -> None:
        raise OSError("cannot bind 127.0.0.1:8000: Address already in use")

    monkeypatch.setattr(supervisor, "bind", refuse)
    assert cli.main([f"{__name__}:_wsgi_app"]) == 1
    assert capsys.readouterr().err == "propylon: error: cannot bind 127.0.0.1:8000: Address already in use\n"


# ------------------------------------------------------------ CLI (subprocess)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m propylon`` with this propylon package importable, in ``cwd``."""
    package_parent = str(Path(propylon.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "propylon", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_cli_version(tmp_path: Path) -> None:
    result = _run(["--version"], tmp_path)
    assert (result.returncode, result.stdout) == (0, f"propylon {propylon.__version__}\n")


@pytest.mark.parametrize(
    ("args", "status", "fragment"),
    [
        (["--bind", "localhost:99999", "hello:app"], 2, "0 to 65535"),
        (["--bind", "8000", "hello:app"], 2, "127.0.0.1:8000"),
        (["--max-body-size", "10MB", "hello:app"], 2, "bad size"),
        (["--threads", "0", "hello:app"], 2, "threads must be at least 1"),
        (["--threads", "many", "hello:app"], 2, "--threads must be a whole number"),
        (["--root-path", "api", "hello:app"], 2, "--root-path must be empty"),
        (["--tcp-congestion", "", "hello:app"], 2, "--tcp-congestion must be the name"),
        (["--no-such-flag", "hello:app"], 2, "unknown option --no-such-flag"),
        ([], 2, "the application MODULE:ATTR is required"),
        (["nosuchmodule:app"], 1, "no module named 'nosuchmodule'"),
        (["broken:app"], 1, "No module named 'missing_dep'"),
        (["hello:nope"], 1, "'hello' has no attribute 'nope'"),
        (["hello:number"], 1, "not a WSGI application"),
        (["hello:number", "--factory"], 1, "--factory given"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], status: int, fragment: str) -> None:
    _module(tmp_path, "hello", "number = 42\ndef app(environ, start_response): return []\n")
    _module(tmp_path, "broken", "import missing_dep\n")
    result = _run(args, tmp_path)
    assert result.returncode == status, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("propylon: error:") and fragment in lines[0]
    assert result.stdout == ""
