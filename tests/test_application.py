"""Application objects served by the real ``propylon`` command: the hooks and
their order, the worker's event loop, the ``server`` object, the application's
configuration from its three sources, routing by declared prefixes, and the
one-line errors of every bad declaration and failing hook.

The apps are in tests/apps/application_app.py; they record what happens to
them in the file named by ``--app-config record=PATH``. The reading of
application objects, table by table, is in tests/test_declarations.py.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    CLIENT_TIMEOUT,
    LOG_LINE,
    REPO,
    RawConnection,
    ServerProcess,
    assert_one_error_line,
    http_request,
    wait_for_file,
)

APPS = "tests.apps.application_app"


def get_json(server: ServerProcess, path: str) -> Any:
    status, _headers, body = http_request(server.port, "GET", path)
    assert status == 200, (status, body)
    return json.loads(body)


def record_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``python -m propylon ARGS`` to completion, with ``env`` added to the environment."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "propylon", *args], capture_output=True, text=True,
                          cwd=REPO, env=environ, timeout=timeout)  # fmt: skip


def assert_failed_hook(result: subprocess.CompletedProcess[str], message: str, logged: str) -> None:
    """Exit 1; the last stderr line, and the only error line, is ``propylon:
    error: MESSAGE...``; before it, an ERROR record on propylon.error saying
    ``logged`` with a traceback or stack."""
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("propylon: error:")]
    assert errors == [lines[-1]], result.stderr
    assert lines[-1].startswith(f"propylon: error: {message}"), result.stderr
    record = next(i for i, line in enumerate(lines) if LOG_LINE.match(line) and "[ERROR] propylon.error: " in line)
    assert logged in lines[record], result.stderr
    assert "panicked at" not in result.stderr
    # What follows the record, up to the error line, is its traceback or stack.
    assert any(line.startswith("  File ") for line in lines[record + 1 : -1]), result.stderr


# ------------------------------------------------------------------ lifecycle


def test_plain_callable_still_served(start_server) -> None:
    server = start_server("tests.apps.wsgi_app:app")
    assert http_request(server.port, "GET", "/")[2] == b"hello"


def test_application_with_only_wsgi(start_server) -> None:
    server = start_server(f"{APPS}:wsgi_only")
    seen = get_json(server, "/any/path")
    assert (seen["startups"], seen["path"], seen["script_name"]) == (0, "/any/path", "")


def test_startup_before_first_request_shutdown_after_last_response(start_server, tmp_path: Path) -> None:
    record, release = tmp_path / "record", tmp_path / "release"
    server = start_server(f"{APPS}:app", "--app-config", f"record={record}")
    # startup ran once, on the main thread, before this (first) request was answered.
    assert get_json(server, "/")["startups"] == 1
    assert record_lines(record) == ["startup MainThread -", "request"]

    answer: dict[str, object] = {}

    def blocked_request() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=CLIENT_TIMEOUT)
        conn.request("GET", f"/block?release={release}")
        response = conn.getresponse()
        answer["status"], answer["body"] = response.status, response.read()
        conn.close()

    client = threading.Thread(target=blocked_request)
    client.start()
    wait_for_file(record, lambda text: "block-started" in text)
    mark = server.mark()
    server.terminate()
    server.wait_for_line("Shutting down", mark)
    # The request is still in the application: no shutdown yet.
    assert "shutdown" not in record.read_text()
    release.touch()
    client.join(CLIENT_TIMEOUT)
    assert answer == {"status": 200, "body": b"released"}
    assert server.wait() == 0
    assert record_lines(record) == [
        "startup MainThread -", "request", "block-started", "response-closed", "shutdown MainThread -",
    ]  # fmt: skip


def test_async_hooks_run_on_the_worker_loop(start_server, tmp_path: Path) -> None:
    record = tmp_path / "record"
    server = start_server(f"{APPS}:async_app", "--app-config", f"record={record}")
    assert get_json(server, "/")["startups"] == 1
    assert server.stop() == 0
    startup, request, shutdown = record_lines(record)
    assert request == "request"
    start_thread, start_loop = startup.split()[1:]
    stop_thread, stop_loop = shutdown.split()[1:]
    # Both on the event loop's own thread, and on the same running loop:
    # uvloop's when it can be imported.
    assert start_thread == stop_thread == "propylon-loop"
    assert start_loop == stop_loop != "-"
    kind = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    assert start_loop.split(":")[0] == kind


def test_an_address_that_cannot_be_bound_stops_the_server_before_startup(tmp_path: Path) -> None:
    # The listening sockets are bound before any worker starts: no hook runs.
    record = tmp_path / "record"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(f"{APPS}:app", "--bind", f"127.0.0.1:{port}", "--app-config", f"record={record}")
    line = assert_one_error_line(result, 1)
    assert "127.0.0.1" in line, line
    assert record_lines(record) == []


def test_server_object(start_server, tmp_path: Path) -> None:
    server = start_server(f"{APPS}:app", "--app-config", f"record={tmp_path / 'r'}")
    assert get_json(server, "/")["server"] == {
        "name": "propylon", "version": "0.1.0", "protocols": ["websocket", "wsgi"],
        "features": ["early_hints", "http2", "static", "websocket_over_h2"], "worker": 0, "workers": 1,
    }  # fmt: skip


def test_server_object_follows_the_early_hints_and_push_options(start_server, tmp_path: Path) -> None:
    server = start_server(f"{APPS}:app", "--no-early-hints", "--http2-push", "--app-config", f"record={tmp_path / 'r'}")
    assert get_json(server, "/")["server"]["features"] == ["http2", "push", "static", "websocket_over_h2"]


def test_server_object_with_tls(start_server, pki, tmp_path: Path) -> None:
    server = start_server(f"{APPS}:app", *pki.ecdsa.args(), "--insecure-bind", "127.0.0.1:0",
                          "--app-config", f"record={tmp_path / 'r'}")  # fmt: skip
    assert "tls" in get_json(server, "/")["server"]["features"]


def test_shutdown_that_raises_is_logged_and_exit_is_clean(start_server, tmp_path: Path) -> None:
    record = tmp_path / "record"
    server = start_server(f"{APPS}:shutdown_raises", "--app-config", f"record={record}")
    assert server.stop() == 0
    text = server.stderr_text()
    assert "[ERROR] propylon.error: shutdown() raised" in text
    assert "RuntimeError: could not flush" in text and "Traceback (most recent call last)" in text
    assert record_lines(record)[-1] == "shutdown-raising"


def test_shutdown_that_hangs_is_bounded(start_server, tmp_path: Path) -> None:
    record = tmp_path / "record"
    server = start_server(f"{APPS}:shutdown_hangs", "--shutdown-timeout", "0.5", "--app-config", f"record={record}")
    assert server.stop() == 0
    text = server.stderr_text()
    assert "shutdown() did not finish within 0.5 s (--shutdown-timeout); it is at:" in text
    assert "in _hang_shutdown" in text and "propylon: error" not in text


@pytest.mark.parametrize(("app", "error"), [
    ("startup_raises", "ValueError: the database is not there"),
    ("async_startup_raises", "ValueError: the database is not there"),
    # Its own TimeoutError, raised at once, is not --startup-timeout.
    ("async_startup_raises_timeout", "TimeoutError: the database did not answer"),
])  # fmt: skip
def test_startup_that_raises(app: str, error: str) -> None:
    result = run(f"{APPS}:{app}", "--bind", "127.0.0.1:0")
    assert_failed_hook(result, f"startup(server) raised {error}", "startup(server) raised")
    # The traceback is the application's, not the server's.
    lines = result.stderr.splitlines()
    frames = lines[lines.index("Traceback (most recent call last):") + 1 :]
    assert "propylon/lifecycle.py" not in result.stderr and "concurrent" not in result.stderr
    assert frames[0].startswith("  File ") and "_raise" in result.stderr
    assert "Listening on" not in result.stderr


@pytest.mark.parametrize(("app", "where"), [("startup_hangs", "time.sleep(600)"),
                                            ("async_startup_hangs", "await asyncio.sleep(600)"),
                                            ("async_startup_blocks", "time.sleep(600)  # blocks")])
def test_startup_that_hangs(app: str, where: str) -> None:
    result = run(f"{APPS}:{app}", "--bind", "127.0.0.1:0", "--startup-timeout", "0.5")
    message = "startup(server) did not finish within 0.5 s (--startup-timeout)"
    assert_failed_hook(result, message, message)
    assert where in result.stderr
    # The stack starts in the hook.
    assert "propylon/lifecycle.py" not in result.stderr and "asyncio/base_events.py" not in result.stderr
    assert "Listening on" not in result.stderr


# -------------------------------------------------------------- configuration


def test_configuration_from_every_source(start_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "record"
    config = tmp_path / "propylon.toml"
    config.write_text(
        'threads = 2\n\n[app]\nname = "file"\nratio = 2\ndebug = false\nworkers = 7\n'
        f'database-url = "file-db"\nrecord = "{record}"\n'
    )
    monkeypatch.setenv("PROPYLON_APP_NAME", "env")
    monkeypatch.setenv("PROPYLON_APP_DEBUG", "yes")
    monkeypatch.setenv("PROPYLON_APP_DATABASE_URL", "env-db")
    server = start_server(f"{APPS}:configured", "--config", str(config),
                          "--app-config", "Name=cli", "--app-config", "ratio=0.25")  # fmt: skip
    assert get_json(server, "/config") == {
        "record": [str(record), "str"],
        "debug": [True, "bool"],  # environment over file
        "workers": [7, "int"],  # file
        "ratio": [0.25, "float"],  # command line over file
        "name": ["cli", "str"],  # command line over environment over file
        "database_url": ["env-db", "str"],  # environment over file, "-" and "_" alike
    }


def test_configuration_without_declaration_passes_as_given(start_server, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    config = tmp_path / "propylon.toml"
    config.write_text(f'[app]\nrecord = "{tmp_path / "r"}"\ncount = 3\nflag = true\nshared = "file"\n')
    monkeypatch.setenv("PROPYLON_APP_LEVEL", "4")
    monkeypatch.setenv("PROPYLON_APP_SHARED", "env")
    server = start_server(f"{APPS}:app", "--config", str(config), "--app-config", "Extra-Key=x")
    assert get_json(server, "/config") == {
        "record": [str(tmp_path / "r"), "str"], "count": [3, "int"], "flag": [True, "bool"],
        "shared": ["env", "str"], "level": ["4", "str"], "extra_key": ["x", "str"],
    }  # fmt: skip


# -------------------------------------------------------------------- routing


def test_prefixes_and_protocols_this_server_does_not_serve(start_server) -> None:
    server = start_server(f"{APPS}:raw")
    status, _, body = http_request(server.port, "GET", "/api/items")
    assert status == 200 and json.loads(body)["path"] == "/api/items"
    assert http_request(server.port, "GET", "/other")[0] == 404
    # A stream prefix on a server without the streaming API: nothing serves it.
    assert http_request(server.port, "GET", "/rpc")[0] == 404
    # A plain request to a WebSocket prefix is not a handshake: no WSGI there.
    assert http_request(server.port, "GET", "/ws")[0] == 404

    def handshake(path: str) -> int:
        with RawConnection(server.port) as raw:
            raw.send(f"GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())  # fmt: skip
            response = raw.read_response()
            assert response is not None
            return response.status

    # The handler returns without accepting: 403; no WebSocket prefix: 404.
    assert handshake("/ws") == 403
    assert handshake("/other") == 404


# ------------------------------------------------------------------ bad input

BAD_APPS = [
    ("missing_static", {}, 1,
     re.escape("static mount '/static': directory ") + ".*/tests/apps/no-such-directory does not exist"),
    ("file_static", {}, 1, "static mount '/assets': .*/tests/apps/application_app.py is a file, not a directory"),
    ("bad_prefix", {}, 1, re.escape("__static__: bad URL prefix 'static': it must start with '/'")),
    ("bad_routes", {}, 1, re.escape("__routes__['wsgi'] must be a list of URL prefixes")),
    ("bad_config", {}, 1, re.escape("__config__['retries']: the default must be a bool, int, float or str")),
    ("bad_preload", {}, 1, re.escape("__preload__ entry '/static/data.bin': cannot tell what '.bin' is")),
    ("not_callable_endpoint", {}, 1, re.escape("__endpoint__('wsgi') returned a str, not a callable or None")),
    ("raising_endpoint", {}, 1, re.escape("__endpoint__('websocket') raised KeyError: 'websocket'")),
    ("configured", {}, 2, re.escape("the application needs configuration key 'database_url' (str)")),
    ("configured", {"PROPYLON_APP_DATABASE_URL": "x", "PROPYLON_APP_WORKERS": "many"}, 2,
     re.escape("PROPYLON_APP_WORKERS must be a whole number, got 'many'")),
    ("configured", {"PROPYLON_APP_DATABASE_URL": "x", "PROPYLON_APP_DEBUGG": "1"}, 2,
     re.escape("PROPYLON_APP_DEBUGG: the application has no configuration key 'DEBUGG' (did you mean 'debug'?)")),
]  # fmt: skip


@pytest.mark.parametrize(("app", "env", "status", "pattern"), BAD_APPS)
def test_bad_application(app: str, env: dict[str, str], status: int, pattern: str) -> None:
    result = run(f"{APPS}:{app}", "--bind", "127.0.0.1:0", env=env)
    line = assert_one_error_line(result, status)
    assert re.match(rf"propylon: error: ({re.escape(APPS)}:{app}: )?{pattern}", line), line
    assert "Listening on" not in result.stderr


@pytest.mark.parametrize(
    ("toml", "args", "message"),
    [
        ('[app]\ndatabase_url = "x"\ndebug = "yes"\n', [],
         "propylon.toml:3: app.debug must be true or false, not the string 'yes'"),
        ('[app]\ndatabase_url = "x"\nworkers = 1.5\n', [], "propylon.toml:3: app.workers must be an integer"),
        ("[app]\n", ["--app-config", "database_url"], "--app-config takes KEY=VALUE"),
        ('app = "x"\n', [], "propylon.toml:1: 'app' is the table of the application's configuration"),
    ],
)  # fmt: skip
def test_bad_configuration_values(tmp_path: Path, toml: str, args: list[str], message: str) -> None:
    config = tmp_path / "propylon.toml"
    config.write_text(toml)
    result = run(f"{APPS}:configured", "--bind", "127.0.0.1:0", "--config", str(config), *args)
    line = assert_one_error_line(result, 2)
    assert message in line, line
