"""Observability without Python (issue 23, point 5): the health path, the
Prometheus metrics (on the main port and on their own address, summed over
worker slots), the access log's atoms, JSON lines and files, ``--log-config``
and ``--error-logfile``, and HTTP/2 attack closes logged once per connection.

Every test talks to a real server with real clients; waits have deadlines.
"""

from __future__ import annotations

import json
import logging
import re
import struct
import threading
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    CANCEL,
    CLIENT_TIMEOUT,
    END_HEADERS,
    END_STREAM,
    EVENT_TIMEOUT,
    GOAWAY,
    HEADERS,
    RST_STREAM,
    RawH2Connection,
    ServerProcess,
    assert_one_error_line,
    h2_frame,
    http_request,
    request_headers,
    run_cli,
    wait_for_file,
)

APP = "tests.apps.wsgi_app:app"


class Blocked:
    """A ``/block`` request in a thread, held until :meth:`release`."""

    def __init__(self, server: ServerProcess, tmp_path: Path, token: str) -> None:
        self.release_file = tmp_path / f"release-{token}"
        self.result: tuple[int, bytes] | None = None
        mark = server.mark()

        def run() -> None:
            status, _, body = http_request(server.port, "GET", f"/block?release={self.release_file}&token={token}")
            self.result = (status, body)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self.server, self.token, self.mark = server, token, mark

    def wait_started(self) -> None:
        self.server.wait_for_line(f"BLOCK-STARTED {self.token}", self.mark)

    def release(self) -> None:
        self.release_file.touch()
        self.thread.join(CLIENT_TIMEOUT)
        assert self.result == (200, b"released")


def scrape(port: int, path: str = "/metrics") -> dict[str, float]:
    """The samples of a scrape, by name and labels (``name{a="b"}``), parsed
    by the Prometheus client library (which raises on bad syntax)."""
    response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=CLIENT_TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def wait_for_sample(port: int, name: str, value: float) -> dict[str, float]:
    """Scrape until ``name`` reads ``value`` (gauges are sampled once a second)."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    while True:
        samples = scrape(port)
        if samples.get(name) == value:
            return samples
        assert time.monotonic() < deadline, f"{name} never read {value}: {samples.get(name)}"
        time.sleep(0.1)


# ------------------------------------------------------------------ health


def test_health_answers_while_every_thread_is_busy(start_server, tmp_path):
    server = start_server(APP, "--threads", "1", "--health-path", "/healthz")
    blocked = Blocked(server, tmp_path, "busy")
    blocked.wait_started()
    # The application serves every path; the health path is answered first,
    # by the runtime, while the only Python thread is blocked.
    response = httpx.get(f"{server.url}/healthz", timeout=CLIENT_TIMEOUT)
    assert (response.status_code, response.content) == (200, b"ok\n")
    assert response.headers["cache-control"] == "no-store"
    head = httpx.head(f"{server.url}/healthz", timeout=CLIENT_TIMEOUT)
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "3")
    with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as client:
        h2 = client.get(f"{server.url}/healthz")
        assert (h2.http_version, h2.status_code, h2.content) == ("HTTP/2", 200, b"ok\n")
    post = httpx.post(f"{server.url}/healthz", content=b"x" * 10, timeout=CLIENT_TIMEOUT)
    assert post.status_code == 405
    assert post.headers["allow"] == "GET, HEAD"
    blocked.release()
    # Other paths are the application's.
    assert http_request(server.port, "GET", "/healthz/more")[0] != 405


def test_health_is_503_while_draining(start_server, tmp_path):
    server = start_server(APP, "--threads", "2", "--health-path", "/healthz", "--graceful-timeout", "30")
    release = tmp_path / "release"
    mark = server.mark()
    with RawH2Connection(server.port) as conn:
        conn.request(1, request_headers(f"/block?release={release}&token=drain"))
        server.wait_for_line("BLOCK-STARTED drain", mark)
        conn.request(3, request_headers("/healthz"))
        before = conn.read_until(lambda f: f.kind == HEADERS and f.stream == 3)
        assert before is not None and before.status == 200
        server.terminate()
        # The first GOAWAY of a graceful shutdown: streams the client opens
        # until the last one are still served. Its PING is left unanswered,
        # so the drain holds that state while stream 1 runs.
        assert conn.read_until(lambda f: f.kind == GOAWAY, ack=False) is not None
        conn.request(5, request_headers("/healthz"))
        during = conn.read_until(lambda f: f.kind == HEADERS and f.stream == 5, ack=False)
        assert during is not None and during.status == 503
        release.touch()
        done = conn.read_until(lambda f: f.kind == HEADERS and f.stream == 1, ack=False)
        assert done is not None and done.status == 200
    assert server.wait() == 0


def test_health_path_must_be_a_path():
    result = run_cli(APP, "--health-path", "healthz")
    assert "--health-path" in assert_one_error_line(result, 2)


# ------------------------------------------------------------------ metrics


def test_metrics_count_requests_by_status_and_protocol(start_server, tmp_path):
    server = start_server(APP, "--threads", "1", "--metrics-path", "/metrics")
    for _ in range(3):
        assert http_request(server.port, "GET", "/")[0] == 200
    assert http_request(server.port, "GET", "/exc-info")[0] == 503
    with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as client:
        assert client.get(f"{server.url}/").status_code == 200
    samples = scrape(server.port)
    assert samples['propylon_requests_total{protocol="http/1.1",status="200"}'] == 3
    assert samples['propylon_requests_total{protocol="http/1.1",status="503"}'] == 1
    assert samples['propylon_requests_total{protocol="http/2",status="200"}'] == 1
    assert samples['propylon_request_duration_seconds_count{protocol="http/1.1"}'] == 4
    assert samples['propylon_request_duration_seconds_bucket{le="+Inf",protocol="http/2"}'] == 1
    assert samples["propylon_threads"] == 1
    assert samples["propylon_worker_restarts_total"] == 0
    assert abs(samples["propylon_start_time_seconds"] - time.time()) < 600
    # The scrape itself is counted once it has ended.
    again = scrape(server.port)
    assert again['propylon_requests_total{protocol="http/1.1",status="200"}'] == 4

    # Busy threads and the queue, while the only thread is blocked and a
    # second request waits for it; the scrape needs no thread.
    first = Blocked(server, tmp_path, "one")
    first.wait_started()
    second = Blocked(server, tmp_path, "two")
    wait_for_sample(server.port, "propylon_queue_depth", 1)
    samples = wait_for_sample(server.port, "propylon_threads_busy", 1)
    assert samples["propylon_connections_open"] >= 3
    first.release()
    second.wait_started()
    second.release()
    wait_for_sample(server.port, "propylon_queue_depth", 0)


def test_metrics_on_their_own_address(start_server):
    server = start_server(APP, "--metrics-bind", "127.0.0.1:0")
    port = int(server.wait_for_line(r"Metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))
    assert http_request(server.port, "GET", "/")[0] == 200
    samples = scrape(port)
    assert samples['propylon_requests_total{protocol="http/1.1",status="200"}'] == 1
    assert http_request(port, "GET", "/")[0] == 404
    # The main port has no metrics path: /metrics is the application's.
    status, _, body = http_request(server.port, "GET", "/metrics")
    assert not body.startswith(b"# HELP")
    # Scrapes on the metrics address are not counted; the request to the
    # main port is.
    samples = scrape(port)
    assert samples['propylon_requests_total{protocol="http/1.1",status="200"}'] == 1 + (status == 200)
    assert sum(v for k, v in samples.items() if k.startswith("propylon_requests_total")) == 2


def test_metrics_regions_from_python():
    from propylon import _core

    metrics = _core.Metrics(2)
    assert metrics.slots == 2
    metrics.worker_restarted()
    metrics.clear_gauges(1)
    with pytest.raises(IndexError):
        metrics.clear_gauges(2)
    with pytest.raises(ValueError):
        _core.Metrics(0)
    text = metrics.render().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["propylon_worker_restarts"].samples[0].value == 1
    assert families["propylon_connections_open"].samples[0].value == 0


# ------------------------------------------------------------------ access log

ALL_ATOMS = (
    "h=%(h)s l=%(l)s u=%(u)s t=%(t)s r=\"%(r)s\" m=%(m)s U=%(U)s q=%(q)s H=%(H)s s=%(s)s B=%(B)s b=%(b)s "
    "f=%(f)s a=\"%(a)s\" T=%(T)s D=%(D)s M=%(M)s L=%(L)s p=%(p)s id=%({X-Request-Id}i)s ct=%({Content-Type}o)s"
)


def test_every_atom_against_a_real_request(start_server, tmp_path):
    logfile = tmp_path / "access.log"
    server = start_server(APP, "--access-logfile", str(logfile), "--access-log-format", ALL_ATOMS)
    headers = {"X-Request-Id": "r-42", "Referer": "http://ref/", "User-Agent": 'ua "quoted"',
               "Authorization": "Basic dXNlcjpwdw=="}
    status, _, body = http_request(server.port, "GET", "/fixed?x=1", headers=headers)
    assert status == 200
    line = wait_for_file(logfile, lambda text: text.endswith("\n")).splitlines()[0]
    fields = dict(re.findall(r'(\w+)=("[^"\\]*(?:\\.[^"\\]*)*"|\S+(?: \+0000\])?)', line))
    assert fields["h"] == "127.0.0.1"
    assert fields["l"] == "-"
    assert fields["u"] == "user"
    assert re.fullmatch(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\]", fields["t"]), fields["t"]
    assert fields["r"] == '"GET /fixed?x=1 HTTP/1.1"'
    assert (fields["m"], fields["U"], fields["q"], fields["H"]) == ("GET", "/fixed", "x=1", "HTTP/1.1")
    assert (fields["s"], fields["B"], fields["b"]) == ("200", str(len(body)), str(len(body)))
    assert fields["f"] == "http://ref/"
    assert fields["a"] == r'"ua \"quoted\""'
    micros = int(fields["D"])
    assert 0 < micros < 60_000_000
    assert int(fields["M"]) == micros // 1000 and int(fields["T"]) == micros // 1_000_000
    assert fields["L"] == f"{micros // 1_000_000}.{micros % 1_000_000:06d}"
    assert fields["p"] == f"<{server.worker_pid}>"
    assert fields["id"] == "r-42"
    assert fields["ct"].startswith("text/plain")


def test_json_lines_and_an_empty_body(start_server, tmp_path):
    logfile = tmp_path / "access.jsonl"
    server = start_server(APP, "--access-logfile", str(logfile), "--access-log-json")
    assert http_request(server.port, "GET", "/fixed", headers={"User-Agent": "a\tb \"q\""})[0] == 200
    assert http_request(server.port, "HEAD", "/fixed")[0] == 200
    text = wait_for_file(logfile, lambda t: t.count("\n") == 2)
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["request"] == "GET /fixed HTTP/1.1"
    assert (first["status"], first["remote_addr"], first["referer"]) == (200, "127.0.0.1", None)
    assert first["user_agent"] == "a\tb \"q\""
    assert first["bytes"] > 0 and isinstance(first["duration"], float)
    assert second["bytes"] == 0
    assert set(first) == {"remote_addr", "ident", "user", "time", "request", "status", "bytes", "referer",
                          "user_agent", "duration"}


def test_access_log_to_stdout(start_server):
    server = start_server(APP, "--access-logfile", "-", "--access-log-format", "%(s)s %(U)s")
    assert http_request(server.port, "GET", "/fixed")[0] == 200
    deadline = time.monotonic() + EVENT_TIMEOUT
    while "200 /fixed" not in server._stdout:
        assert time.monotonic() < deadline, server._stdout
        time.sleep(0.02)
    # Not through the propylon.access logger.
    server.sync_log("after-stdout")
    assert not any("/fixed" in line for line in server.stderr_lines())


def test_a_bad_access_log_format_is_one_line():
    for bad in ("%(z)s", "%({PATH}e)s", "50% off"):
        result = run_cli(APP, "--access-log-format", bad)
        assert "access-log-format" in assert_one_error_line(result, 2)


def test_an_unwritable_access_logfile_is_one_line(tmp_path):
    result = run_cli(APP, "--bind", "127.0.0.1:0", "--access-logfile", str(tmp_path / "no" / "access.log"))
    assert "access log file" in assert_one_error_line(result, 1)


def test_log_config_routes_the_access_log_to_a_file(start_server, tmp_path):
    logfile = tmp_path / "via-dictconfig.log"
    config = tmp_path / "logging.json"
    config.write_text(json.dumps({
        "version": 1,
        "formatters": {"bare": {"format": "ACCESS %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(logfile), "formatter": "bare"}},
        "loggers": {"propylon.access": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    }))
    server = start_server(APP, "--access-log", "--log-config", str(config))
    assert http_request(server.port, "GET", "/fixed")[0] == 200
    text = wait_for_file(logfile)
    assert text.startswith("ACCESS 127.0.0.1 - - [") and '"GET /fixed HTTP/1.1" 200' in text
    # The access line went to the file only, not to stderr any more.
    server.sync_log("after-access")
    assert not any('"GET /fixed HTTP/1.1"' in line for line in server.stderr_lines())


def test_a_bad_log_config_is_one_line(tmp_path):
    config = tmp_path / "logging.json"
    config.write_text('{"version": 1, "handlers": {"x": {"class": "no.such.Handler"}}}')
    assert "log_config" in assert_one_error_line(run_cli(APP, "--log-config", str(config)), 2)
    assert "log_config" in assert_one_error_line(run_cli(APP, "--log-config", str(tmp_path / "none.ini")), 2)


def test_error_logfile(tmp_path):
    from propylon import _logging

    path = tmp_path / "error.log"
    try:
        _logging.configure("info", False, str(path))
        logging.getLogger("propylon.server").warning("to the file")
    finally:
        _logging.configure("info", False)
    assert "[WARNING] propylon.server: to the file" in path.read_text()


# ------------------------------------------------------------------ attacks


def test_one_rapid_reset_attack_is_one_warning(start_server):
    server = start_server(APP)
    mark = server.mark()
    with RawH2Connection(server.port) as conn:
        block = conn.header_block(request_headers("/"))
        frames = b"".join(
            h2_frame(HEADERS, END_HEADERS | END_STREAM, stream, block)
            + h2_frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL))
            for stream in range(1, 2 * 200, 2)
        )
        conn.send(frames)
        assert conn.read_until(lambda f: f.kind == GOAWAY) is not None
        conn.expect_closed(EVENT_TIMEOUT)
    server.wait_for_line("rapid reset", mark)
    server.sync_log("after-attack")
    lines = [line for line in server.lines_since(mark) if "GOAWAY(ENHANCE_YOUR_CALM)" in line]
    assert len(lines) == 1, lines
    assert "[WARNING] propylon.server: HTTP/2 connection from 127.0.0.1:" in lines[0], lines
