"""HTTP/2 options (issue 4, point 3): what the server advertises and enforces.

Each option is a ``--h2-*`` flag and a ``Config`` field of the same name.
The server's first SETTINGS frame and its connection-level WINDOW_UPDATE
are read with the h2 package; the limits behind them are then exercised with
hand-made frames (tests.support.RawH2Connection): a third stream over a limit
of two is refused, a DATA frame larger than the frame size is a connection
error, a body larger than the stream window is a flow-control error, a header
list over the limit never reaches the application, and keep-alive PINGs that
go unanswered close the connection.
"""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from propylon.cli import parse_command_line
from propylon.config import Config, ConfigError
from tests.support import (
    CLIENT_TIMEOUT,
    DATA,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    PING,
    REFUSED_STREAM,
    RST_STREAM,
    RawH2Connection,
    assert_one_error_line,
    h2_frame,
    request_headers,
    run_cli,
)

APP = "tests.apps.wsgi_app:app"
KIB = 1024
MIB = 1024 * KIB

#: (CLI flag, Config field, the value given, what it means in bytes / count / seconds)
CUSTOM = [
    ("--h2-max-concurrent-streams", "h2_max_concurrent_streams", "2", 2),
    ("--h2-initial-stream-window-size", "h2_initial_stream_window_size", "200K", 200 * KIB),
    ("--h2-initial-connection-window-size", "h2_initial_connection_window_size", "3M", 3 * MIB),
    ("--h2-max-frame-size", "h2_max_frame_size", "32K", 32 * KIB),
    ("--h2-max-header-list-size", "h2_max_header_list_size", "20K", 20 * KIB),
    ("--h2-keep-alive-interval", "h2_keep_alive_interval", "0.5", 0.5),
    ("--h2-keep-alive-timeout", "h2_keep_alive_timeout", "1", 1.0),
]


@pytest.fixture(scope="module")
def tuned(start_module_server):
    """A server with every HTTP/2 option changed (and a long idle timeout, so
    only the HTTP/2 keep-alive can close a quiet connection)."""
    args = [arg for flag, _, value, _ in CUSTOM for arg in (flag, value)]
    return start_module_server(APP, *args, "--keep-alive-timeout", "60")


def server_preface(port: int) -> tuple[dict[int, int], int]:
    """Connect with the h2 package; the server's first SETTINGS and its
    connection-level WINDOW_UPDATE increment (0 if none)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    settings: dict[int, int] | None = None
    increment = 0
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as sock:
        sock.sendall(conn.data_to_send())
        deadline = time.monotonic() + CLIENT_TIMEOUT
        # The server sends SETTINGS, then (for a larger window) WINDOW_UPDATE on stream 0,
        # then acknowledges ours; stop at that acknowledgement.
        acked = False
        while not acked:
            assert time.monotonic() < deadline, "no SETTINGS acknowledgement from the server"
            data = sock.recv(65536)
            assert data, "the server closed the connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    settings = {int(k): v.new_value for k, v in event.changed_settings.items()}
                elif isinstance(event, h2.events.WindowUpdated) and event.stream_id == 0:
                    increment += event.delta
                elif isinstance(event, h2.events.SettingsAcknowledged):
                    acked = True
            sock.sendall(conn.data_to_send())
    assert settings is not None
    return settings, increment


S = h2.settings.SettingCodes
DEFAULT_WINDOW = 65_535  # RFC 9113 §6.9.2: every window starts here


def test_the_settings_frame_carries_the_configured_values(tuned):
    settings, increment = server_preface(tuned.port)
    assert settings[S.MAX_CONCURRENT_STREAMS] == 2
    assert settings[S.INITIAL_WINDOW_SIZE] == 200 * KIB
    assert settings[S.MAX_FRAME_SIZE] == 32 * KIB
    assert settings[S.MAX_HEADER_LIST_SIZE] == 20 * KIB
    # The connection window is not a setting: it is opened by a WINDOW_UPDATE on stream 0.
    assert increment == 3 * MIB - DEFAULT_WINDOW


def test_the_defaults(server):
    settings, increment = server_preface(server.port)
    assert settings[S.MAX_CONCURRENT_STREAMS] == 100
    assert settings[S.INITIAL_WINDOW_SIZE] == 1 * MIB
    assert settings.get(S.MAX_FRAME_SIZE, 16 * KIB) == 16 * KIB
    assert settings[S.MAX_HEADER_LIST_SIZE] == 64 * KIB
    assert increment == 2 * MIB - DEFAULT_WINDOW


def test_config_defaults_are_the_documented_ones():
    config = Config()
    assert (config.h2_max_concurrent_streams, config.h2_initial_stream_window_size,
            config.h2_initial_connection_window_size, config.h2_max_frame_size,
            config.h2_max_header_list_size, config.h2_keep_alive_interval,
            config.h2_keep_alive_timeout, config.send_timeout) == (100, 1 * MIB, 2 * MIB, 16 * KIB, 64 * KIB,
                                                                    0.0, 20.0, 60.0)


@pytest.mark.parametrize("flag, field, value, meaning", CUSTOM + [("--send-timeout", "send_timeout", "2.5", 2.5)])
def test_each_flag_sets_the_config_field_of_the_same_name(flag, field, value, meaning):
    options = parse_command_line(["app:app", flag, value]).values
    assert field == flag.removeprefix("--").replace("-", "_")
    assert options[field] == meaning
    assert getattr(Config(**{field: options[field]}), field) == meaning
    assert field in {f.name for f in dataclasses.fields(Config)}


# ------------------------------------------------------------------ the limits are enforced


def test_a_stream_over_max_concurrent_streams_is_refused(tuned, tmp_path):
    release = tmp_path / "release"
    token = uuid.uuid4().hex
    start = tuned.mark()
    with RawH2Connection(tuned.port) as conn:
        for stream in (1, 3):
            conn.request(stream, request_headers(f"/block?token={token}-{stream}&release={release}"))
        for stream in (1, 3):
            tuned.wait_for_line(f"BLOCK-STARTED {token}-{stream}", start)
        conn.request(5, request_headers("/"))  # a third while two are open: the limit is 2
        reset = conn.read_until(lambda f: f.kind == RST_STREAM)
        assert reset is not None and (reset.stream, reset.error_code) == (5, REFUSED_STREAM)
        release.touch()
        ended = set()
        while ended != {1, 3}:
            frame = conn.read_until(lambda f: f.kind == DATA and f.flags & END_STREAM)
            assert frame is not None, "the connection closed"
            ended.add(frame.stream)


def test_a_frame_of_the_configured_size_is_accepted(tuned):
    body = b"f" * (20 * KIB)  # above the 16 KiB default, within the 32 KiB configured
    with RawH2Connection(tuned.port) as conn:
        conn.request(1, request_headers("/echo", "POST", extra=[("content-length", str(len(body)))]),
                     end_stream=False)
        conn.send(h2_frame(DATA, END_STREAM, 1, body))
        data = []
        while True:
            frame = conn.read_until(lambda f: f.kind in (DATA, RST_STREAM, GOAWAY) and f.stream in (0, 1))
            assert frame is not None and frame.kind == DATA, frame
            data.append(frame.payload)
            if frame.flags & END_STREAM:
                break
    assert b"".join(data) == body


def test_a_frame_over_the_default_size_is_a_frame_size_error(server):
    with RawH2Connection(server.port) as conn:
        conn.request(1, request_headers("/echo", "POST"), end_stream=False)
        conn.send(h2_frame(DATA, END_STREAM, 1, b"f" * (20 * KIB)))
        goaway = conn.goaway()
        assert goaway is not None and goaway.error_code == FRAME_SIZE_ERROR
        conn.expect_closed()


def test_the_stream_window_is_what_was_configured(tuned, tmp_path):
    # /block does not read the body, so the server grants no more window than the 200 KiB it announced.
    window = 200 * KIB
    release = tmp_path / "release"
    try:
        with RawH2Connection(tuned.port) as conn:
            conn.request(1, request_headers(f"/block?token={uuid.uuid4().hex}&release={release}", "POST"),
                         end_stream=False)
            frames = [h2_frame(DATA, 0, 1, b"w" * (16 * KIB)) for _ in range(window // (16 * KIB))]
            frames.append(h2_frame(DATA, 0, 1, b"w" * (window % (16 * KIB))))
            assert conn.send(b"".join(frames))  # exactly the window: allowed
            assert conn.send(h2_frame(DATA, 0, 1, b"!"))  # one byte more: a flow-control error
            frame = conn.read_until(lambda f: f.kind in (RST_STREAM, GOAWAY))
            assert frame is not None and frame.error_code == FLOW_CONTROL_ERROR
    finally:
        release.touch()


def test_a_header_list_over_the_limit_never_reaches_the_app(tuned):
    token = uuid.uuid4().hex
    start = tuned.mark()
    with RawH2Connection(tuned.port) as conn:
        conn.request(1, request_headers(f"/called?token={token}", extra=[("x-big", "a" * (30 * KIB))]))
        frame = conn.read_until(lambda f: f.kind in (HEADERS, RST_STREAM, GOAWAY))
        assert frame is not None
        if frame.kind == HEADERS:  # h2 answers 431 itself
            assert frame.status == 431, frame.fields
        # A smaller one on the same connection goes through.
        conn.request(3, request_headers(f"/called?token={token}-small", extra=[("x-big", "a" * (10 * KIB))]))
        answer = conn.read_until(lambda f: f.kind == HEADERS and f.stream == 3)
        assert answer is not None
    tuned.sync_log(f"sync-{token}")
    called = [line.rsplit(" ", 1)[1] for line in tuned.lines_since(start) if "APP-CALLED" in line]
    assert called == [f"{token}-small"], called


def test_unanswered_keep_alive_pings_close_the_connection(tuned):
    with RawH2Connection(tuned.port) as conn:
        began = time.monotonic()
        ping = conn.read_until(lambda f: f.kind == PING, timeout=10, ack=False)
        assert ping is not None
        # No acknowledgement: after the 1 s keep-alive timeout the server gives up.
        conn.expect_closed(timeout=15)
        assert time.monotonic() - began < 15


def test_answered_keep_alive_pings_keep_the_connection(tuned):
    with RawH2Connection(tuned.port) as conn:
        for _ in range(4):  # 4 intervals of 0.5 s: well past interval + timeout
            assert conn.read_until(lambda f: f.kind == PING and not f.flags & 0x1, timeout=10) is not None
        conn.request(1, request_headers("/"))
        frame = conn.read_until(lambda f: f.kind == DATA and f.stream == 1)
        assert frame is not None and frame.payload == b"hello"


# ------------------------------------------------------------------ bad values


@pytest.mark.parametrize("flag, value, field", [
    ("--h2-max-concurrent-streams", "0", "--h2-max-concurrent-streams"),
    ("--h2-max-concurrent-streams", "many", "--h2-max-concurrent-streams"),
    ("--h2-initial-stream-window-size", "0", "--h2-initial-stream-window-size"),
    ("--h2-initial-stream-window-size", "2G", "--h2-initial-stream-window-size"),
    ("--h2-initial-connection-window-size", "0", "--h2-initial-connection-window-size"),
    ("--h2-initial-connection-window-size", "4G", "--h2-initial-connection-window-size"),
    ("--h2-max-frame-size", "16383", "--h2-max-frame-size"),
    ("--h2-max-frame-size", "16M", "--h2-max-frame-size"),
    ("--h2-max-frame-size", "1KB", "--h2-max-frame-size"),
    ("--h2-max-header-list-size", "0", "--h2-max-header-list-size"),
    ("--h2-keep-alive-interval", "-1", "--h2-keep-alive-interval"),
    ("--h2-keep-alive-interval", "nan", "--h2-keep-alive-interval"),
    ("--h2-keep-alive-timeout", "0", "--h2-keep-alive-timeout"),
    ("--send-timeout", "0", "--send-timeout"),
    ("--send-timeout", "soon", "--send-timeout"),
])
def test_bad_values_are_one_line_errors(flag, value, field):
    line = assert_one_error_line(run_cli(APP, "--bind", "127.0.0.1:0", flag, value, timeout=8), 2)
    assert field in line, line


@pytest.mark.parametrize("field, value", [
    ("h2_max_concurrent_streams", 0),
    ("h2_initial_stream_window_size", 2**31),
    ("h2_initial_connection_window_size", 0),
    ("h2_max_frame_size", 16 * MIB),
    ("h2_max_header_list_size", 0),
    ("h2_keep_alive_interval", float("inf")),
    ("h2_keep_alive_timeout", -1.0),
    ("send_timeout", 0.0),
])
def test_config_refuses_bad_values(field, value):
    with pytest.raises(ConfigError, match=field):
        Config(**{field: value})


def test_keep_alive_interval_zero_is_allowed():
    assert Config(h2_keep_alive_interval=0).h2_keep_alive_interval == 0
