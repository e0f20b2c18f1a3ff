"""Options declared once, and where their values come from: the command line,
``PROPYLON_*`` environment variables and a ``--config`` TOML file, with the
precedence CLI > environment > file > defaults.

Unit tests read each source in process (``propylon.config``, ``propylon.sources``,
``propylon.cli`` with a stand-in ``_core``); end-to-end tests start the real
``propylon`` command and look at what the server does (``SCRIPT_NAME`` from
``root-path``, the addresses it listens on, its error line).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from propylon import cli
from propylon.config import MIB, OPTIONS, Bind, Config, ConfigError, Seconds, Switch
from propylon.plan import ServePlan
from propylon.sources import merge, read_environ, read_file, unknown_variables
from tests.support import REPO, assert_one_error_line, http_request, run_cli

APP = "tests.apps.wsgi_app:app"

# ------------------------------------------------------------ one declaration


def test_every_config_field_is_one_option() -> None:
    fields = [spec.name for spec in dataclasses.fields(Config)]
    assert [option.field for option in OPTIONS] == fields
    defaults = Config()
    for option in OPTIONS:
        assert getattr(defaults, option.field) == option.default, option.field
        assert option.help and not option.help.endswith("."), option.field


def test_names_follow_the_field() -> None:
    by_field = {option.field: option for option in OPTIONS}
    option = by_field["keep_alive_timeout"]
    assert (option.flag, option.name, option.env) == (
        "--keep-alive-timeout", "keep-alive-timeout", "PROPYLON_KEEP_ALIVE_TIMEOUT",
    )  # fmt: skip
    # The lists are named for one item each, as gunicorn's --bind.
    assert (by_field["binds"].flag, by_field["binds"].env) == ("--bind", "PROPYLON_BIND")
    assert by_field["insecure_binds"].flag == "--insecure-bind"
    assert by_field["reload_dirs"].flag == "--reload-dir"
    for option in OPTIONS:
        if option.field not in ("binds", "insecure_binds", "reload_dirs"):
            assert option.name == option.field.replace("_", "-")


def test_queue_timeout_is_declared() -> None:
    option = next(option for option in OPTIONS if option.field == "queue_timeout")
    assert (option.flag, option.default, type(option.kind)) == ("--queue-timeout", 30.0, Seconds)
    assert "503" in option.help
    with pytest.raises(ConfigError, match="queue_timeout must be a number of seconds, more than zero"):
        Config(queue_timeout=0)


def test_help_has_every_flag_with_its_default() -> None:
    text = cli.build_parser().format_help()
    for option in OPTIONS:
        assert option.flag in text, option.flag
        if isinstance(option.kind, Switch):
            assert f"--no-{option.name}" in text
    assert "(default: 30)" in text.split("--queue-timeout", 1)[1]


def test_docs_option_table_is_generated_from_the_declarations() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "options_table.py"), "--check"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    doc = (REPO / "docs" / "guide" / "options.md").read_text()
    for option in OPTIONS:
        row = next(line for line in doc.splitlines() if f"`{option.flag}" in line and line.startswith("| `"))
        assert f"| `{option.default_text()}` |" in row, row


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threads": 2**40}, "threads must be at most 4294967295"),
        ({"threads": True}, "threads must be an integer"),
        ({"keep_alive_timeout": 1e12}, "keep_alive_timeout must be at most 1000000000 seconds"),
        ({"h2_max_frame_size": 1000}, "between 16384 and 16777215 bytes (RFC 9113 §6.5.2)"),
        ({"client_cert": "sometimes"}, "client_cert must be one of none, optional, required"),
        ({"access_log": "yes"}, "access_log must be True or False"),
        ({"insecure_binds": ["127.0.0.1:0"]}, "insecure_binds must be a list of Bind objects"),
    ],
)
def test_config_checks_come_from_the_declarations(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config(**kwargs)
    assert message in str(info.value)


# ---------------------------------------------------------------- the file


def _toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "propylon.toml"
    path.write_text(text)
    return str(path)


def test_file_reads_every_kind_of_value(tmp_path: Path) -> None:
    path = _toml(
        tmp_path,
        "# a comment\n"
        'bind = ["127.0.0.1:0", "unix:/tmp/p.sock"]\n'
        "threads = 2\n"
        'max-body-size = "10M"\n'
        "max_headers = 50\n"
        "keep-alive-timeout = 1.5\n"
        "header-timeout = 2\n"
        "decompress = true\n"
        'log-level = "WARNING"\n'
        'root-path = "/api"\n'
        "h2-max-frame-size = 32768\n",
    )
    assert read_file(path) == {
        "binds": [Bind("127.0.0.1", 0), Bind(path="/tmp/p.sock")],
        "threads": 2,
        "max_body_size": 10 * MIB,
        "max_headers": 50,
        "keep_alive_timeout": 1.5,
        "header_timeout": 2.0,
        "decompress": True,
        "log_level": "warning",
        "root_path": "/api",
        "h2_max_frame_size": 32768,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("threads = 2\n\nkeep-alive = 5\n", ":3: unknown option 'keep-alive' (did you mean 'keep-alive-timeout'?)"),
        ('doc = """\nno_such_option = 4\n"""\nno_such_option = 4\n', ":1: unknown option 'doc'"),
        ('bind = [\n  "127.0.0.1:0",\n]\nno_such_option = 4\n', ":4: unknown option 'no_such_option'"),
        ("threads = 2\n[server]\nthreads = 4\n", ":2: unknown option 'server'"),
        ("threads = 2\nh2.max-frame-size = 1\n", ":2: unknown option 'h2'"),
        ('"threads" = 2\n\'wat\' = 1\n', ":2: unknown option 'wat'"),
        ('threads = "4"\n', ":1: threads must be an integer, not the string '4'"),
        ("threads = 0\n", ":1: threads must be at least 1, got 0"),
        ("threads = 1.5\n", ":1: threads must be an integer, not the float 1.5"),
        ("keep-alive-timeout = true\n", ":1: keep-alive-timeout must be a number of seconds, not the boolean true"),
        ('decompress = "yes"\n', ":1: decompress must be true or false, not the string 'yes'"),
        ("bind = 8000\n", ":1: bind must be an array of addresses"),
        ('bind = ["8000"]\n', ":1: bind: bind address '8000' has no host"),
        ('client-cert = "sometimes"\n', ":1: client-cert must be one of none, optional, required"),
        ('max-body-size = "10MB"\n', ":1: max-body-size: bad size '10MB'"),
        ("\n\nthreads = 2\nthreads = 3\n", ":4:12: cannot overwrite a value"),
        ("threads = \n", ":1:11: invalid value"),
        ("threads = 2\nthreads=1", ": cannot overwrite a value at the end of the file"),
        ("keep-alive-timeout = 1\nkeep_alive_timeout = 2\n", ":2: 'keep_alive_timeout' sets the same option as "),
    ],
)
def test_file_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = _toml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        read_file(path)
    assert str(info.value).startswith(path + ":"), str(info.value)
    assert message in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_file_accepts_underscores_and_one_address(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'keep_alive_timeout = 7\ninsecure_bind = "127.0.0.1:0"\n')
    assert read_file(path) == {"keep_alive_timeout": 7.0, "insecure_binds": [Bind("127.0.0.1", 0)]}


def test_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*nope\.toml: No such file"):
        read_file(str(tmp_path / "nope.toml"))
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'root-path = "/caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_file(str(latin))


# --------------------------------------------------------- the environment


def test_environ_reads_options_and_warns_about_unknown_names() -> None:
    environ = {
        "PROPYLON_THREADS": "3",
        "PROPYLON_BIND": " 127.0.0.1:0, unix:/tmp/a.sock  [::1]:0,",
        "PROPYLON_ACCESS_LOG": "Yes",
        "PROPYLON_DECOMPRESS": "0",
        "PROPYLON_MAX_BODY_SIZE": "64K",
        "PROPYLON_ROOT_PATH": "",  # empty: as if unset
        "PROPYLON_CONFIG": "x.toml",  # the file, read by the CLI
        "PROPYLON_THREAD": "4",
        "PROPYLON_BENCH_FILE": "/tmp/x",
        "PATH": "/bin",
    }
    assert read_environ(environ) == {
        "threads": 3,
        "binds": [Bind("127.0.0.1", 0), Bind(path="/tmp/a.sock"), Bind("::1", 0)],
        "access_log": True,
        "decompress": False,
        "max_body_size": 64 * 1024,
    }
    assert unknown_variables(environ) == [
        "ignoring environment variable PROPYLON_BENCH_FILE: no option by that name",
        "ignoring environment variable PROPYLON_THREAD: no option by that name (did you mean PROPYLON_THREADS?)",
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("PROPYLON_THREADS", "many", "PROPYLON_THREADS must be a whole number, got 'many'"),
        ("PROPYLON_THREADS", "0", "PROPYLON_THREADS must be at least 1, got 0"),
        ("PROPYLON_ACCESS_LOG", "maybe", "PROPYLON_ACCESS_LOG must be 1, true, yes or on, or 0, false, no or off"),
        ("PROPYLON_LOG_LEVEL", "loud", "PROPYLON_LOG_LEVEL must be one of critical, error, warning, info, debug"),
        ("PROPYLON_BIND", "127.0.0.1:0,8000", "PROPYLON_BIND: bind address '8000' has no host"),
        ("PROPYLON_KEEP_ALIVE_TIMEOUT", "nan", "PROPYLON_KEEP_ALIVE_TIMEOUT must be a number of seconds, more than zero"),
    ],
)
def test_environ_errors_name_the_variable(name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_environ({name: text})
    assert message in str(info.value)


# ------------------------------------------------------------------ precedence


def test_merge_takes_each_field_from_the_strongest_source() -> None:
    merged = merge(
        {"threads": 1},
        {"threads": 2, "binds": [Bind("127.0.0.1", 2)]},
        {"threads": 3, "binds": [Bind("127.0.0.1", 3), Bind("127.0.0.1", 4)], "root_path": "/f"},
    )
    # A list from a stronger source replaces the weaker one's whole.
    assert merged == {"threads": 1, "binds": [Bind("127.0.0.1", 2)], "root_path": "/f"}


@pytest.fixture
def fake_core(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Config]]:
    """Replace the supervisor with a function that records the Config."""
    import logging

    calls: list[Config] = []

    def supervise(source: object, config: Config) -> int:
        calls.append(config)
        return 0

    monkeypatch.setattr(cli, "supervise", supervise)
    for name in [name for name in os.environ if name.startswith("PROPYLON_")]:
        monkeypatch.delenv(name)
    logger = logging.getLogger("propylon")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield calls
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


def _wsgi_app(environ: object, start_response: object) -> list[bytes]:
    return []


# Each level alone and each pair (and all three), over threads and a switch.
LEVELS = ("file", "env", "cli")


@pytest.mark.parametrize(
    "given", [combo for n in range(len(LEVELS) + 1) for combo in itertools.combinations(LEVELS, n)], ids=str
)
def test_cli_over_environment_over_file_over_defaults(
    given: tuple[str, ...], fake_core: list[Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = {"file": 3, "env": 2, "cli": 1}
    switch = {"file": True, "env": False, "cli": True}
    argv = []
    if "file" in given:
        argv += ["--config", _toml(tmp_path, f"threads = {threads['file']}\naccess-log = true\n")]
    if "env" in given:
        monkeypatch.setenv("PROPYLON_THREADS", str(threads["env"]))
        monkeypatch.setenv("PROPYLON_ACCESS_LOG", "off")
    if "cli" in given:
        argv += ["--threads", str(threads["cli"]), "--access-log"]
    assert cli.main([*argv, f"{__name__}:_wsgi_app"]) == 0
    (config,) = fake_core
    strongest = given[-1] if given else None
    assert config.threads == (threads[strongest] if strongest else Config().threads)
    assert config.access_log == (switch[strongest] if strongest else False)


def test_no_switch_on_the_command_line_overrides_the_file(
    fake_core: list[Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROPYLON_CONFIG", _toml(tmp_path, "decompress = true\nthreads = 5\n"))
    assert cli.main(["--no-decompress", f"{__name__}:_wsgi_app"]) == 0
    assert (fake_core[0].decompress, fake_core[0].threads) == (False, 5)


def test_config_flag_wins_over_propylon_config(
    fake_core: list[Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    monkeypatch.setenv("PROPYLON_CONFIG", _toml(tmp_path / "a", "threads = 5\n"))
    assert cli.main(["--config", _toml(tmp_path, "threads = 6\n"), f"{__name__}:_wsgi_app"]) == 0
    assert fake_core[0].threads == 6


def test_unknown_flag_is_named_not_the_app(fake_core: list[Config], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--no-such-option", "4", f"{__name__}:_wsgi_app"])
    assert info.value.code == 2
    assert capsys.readouterr().err == "propylon: error: unknown option --no-such-option (see propylon --help)\n"
    with pytest.raises(SystemExit):
        cli.main(["--thread=4", f"{__name__}:_wsgi_app"])
    assert "unknown option --thread (did you mean --threads?)" in capsys.readouterr().err
    assert fake_core == []


# ----------------------------------------------------- the edge into Rust


def test_rust_refuses_an_unknown_client_cert_mode_instead_of_falling_back() -> None:
    from propylon import _core

    with socket.socket() as holder:
        # The address is taken: a serve() that got past the settings fails to bind
        # (OSError) instead of serving.
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        config = Config(binds=[Bind("127.0.0.1", holder.getsockname()[1])])
        # A Config can only hold a listed mode; go around it to reach the edge.
        object.__setattr__(config, "client_cert", "sometimes")
        with pytest.raises(ValueError, match="client_cert must be one of none, optional, required"):
            _core.serve(config, ServePlan.for_wsgi(_wsgi_app))
        object.__setattr__(config, "client_cert", "none")
        object.__setattr__(config, "queue_timeout", 1e30)
        with pytest.raises(ValueError, match="queue_timeout must be a number of seconds a timer can hold"):
            _core.serve(config, ServePlan.for_wsgi(_wsgi_app))
        object.__setattr__(config, "queue_timeout", 30.0)
        with pytest.raises(OSError, match="cannot bind"):
            _core.serve(config, ServePlan.for_wsgi(_wsgi_app))


# ------------------------------------------------------------- end to end


@pytest.mark.parametrize(
    "given", [combo for n in range(len(LEVELS) + 1) for combo in itertools.combinations(LEVELS, n)], ids=str
)
def test_server_takes_each_option_from_the_strongest_source(
    given: tuple[str, ...], start_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = []
    for name in [name for name in os.environ if name.startswith("PROPYLON_")]:
        monkeypatch.delenv(name)
    if "file" in given:
        args += ["--config", _toml(tmp_path, 'root-path = "/file"\n')]
    if "env" in given:
        monkeypatch.setenv("PROPYLON_ROOT_PATH", "/env")
    if "cli" in given:
        args += ["--root-path", "/cli"]
    server = start_server(APP, *args)
    root = f"/{given[-1]}" if given else ""
    status, _, body = http_request(server.port, "GET", f"{root}/env")
    assert status == 200
    assert json.loads(body)["SCRIPT_NAME"] == root


def test_server_listens_on_addresses_from_the_environment(
    start_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = tmp_path / "env.sock"
    monkeypatch.setenv("PROPYLON_BIND", f"127.0.0.1:0, unix:{sock}")
    server = start_server(APP, binds=())
    server.wait_for_line(r"Listening on unix:")
    port = int(server.wait_for_line(r"Listening on http://127\.0\.0\.1:(\d+)").group(1))
    assert http_request(port, "GET", "/")[2] == b"hello"
    assert sock.exists()


def test_server_listens_on_addresses_from_the_file(start_server: Any, tmp_path: Path) -> None:
    sock = tmp_path / "file.sock"
    path = _toml(tmp_path, f'bind = [\n  "127.0.0.1:0",\n  "unix:{sock}",\n]\naccess-log = true\n')
    server = start_server(APP, "--config", path, binds=())
    server.wait_for_line(r"Listening on unix:")
    port = int(server.wait_for_line(r"Listening on http://127\.0\.0\.1:(\d+)").group(1))
    assert http_request(port, "GET", "/")[2] == b"hello"
    server.wait_for_line(r"propylon\.access: .*GET / ")


def test_unknown_flag_says_so_by_name() -> None:
    line = assert_one_error_line(run_cli("--no-such-option", "4", APP), 2)
    assert line == "propylon: error: unknown option --no-such-option (see propylon --help)"


def test_unknown_key_in_the_file_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    path = _toml(tmp_path, "# settings\nthreads = 2\nkeep-alive = 5\n")
    line = assert_one_error_line(run_cli("--config", path, APP), 2)
    assert line == f"propylon: error: {path}:3: unknown option 'keep-alive' (did you mean 'keep-alive-timeout'?)"


def test_wrong_type_in_the_file_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    path = _toml(tmp_path, "threads = 2\nkeep-alive-timeout = \"5s\"\n")
    line = assert_one_error_line(run_cli("--config", path, APP), 2)
    assert line == (
        f"propylon: error: {path}:2: keep-alive-timeout must be a number of seconds, not the string '5s'"
    )


def test_missing_config_file_is_one_line() -> None:
    line = assert_one_error_line(run_cli("--config", "/nonexistent/propylon.toml", APP), 2)
    assert "cannot read config file /nonexistent/propylon.toml" in line


def test_bad_environment_value_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROPYLON_KEEP_ALIVE_TIMEOUT", "soon")
    line = assert_one_error_line(run_cli(APP), 2)
    assert line == "propylon: error: PROPYLON_KEEP_ALIVE_TIMEOUT must be a number of seconds, got 'soon'"


def test_unknown_environment_variable_is_still_a_warning_when_an_option_is_bad(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROPYLON_THREAD", "4")
    result = run_cli("--threads", "0", APP)
    assert assert_one_error_line(result, 2) == "propylon: error: --threads must be at least 1, got 0"
    assert "ignoring environment variable PROPYLON_THREAD: no option by that name (did you mean PROPYLON_THREADS?)" in (
        result.stderr
    )


def test_unknown_environment_variable_is_a_warning(start_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROPYLON_NO_SUCH_OPTION", "4")
    server = start_server(APP)
    server.wait_for_line(
        r"\[WARNING\] propylon\.server: ignoring environment variable PROPYLON_NO_SUCH_OPTION: no option by that name"
    )
    assert http_request(server.port, "GET", "/")[2] == b"hello"
