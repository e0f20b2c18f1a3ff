"""Run the Autobahn TestSuite's fuzzing client against the WebSocket echo apps.

    python scripts/autobahn.py                          # every case, all three handler styles
    python scripts/autobahn.py --cases fast             # the subset CI runs (a few minutes)
    python scripts/autobahn.py --style event --cases 6.4.*,7.1.1
    python scripts/autobahn.py --table docs/guide/autobahn-results.md

For each handler style (``tests/apps/ws_echo.py``: ``async_app``,
``event_app``, ``blocking_app``) the script starts its own server,
``python -m propylon tests.apps.ws_echo:STYLE_app --bind 127.0.0.1:PORT``
with :data:`PROPYLON_OPTIONS`, waits until it accepts connections, writes the
fuzzing client's spec (one agent per style, every case or the ``--cases``
selection, nothing excluded), runs ``wstest -m fuzzingclient`` once for all of
them, and reads the report's ``index.json``. It exits 0 when every case's
``behavior`` and ``behaviorClose`` are OK, NON-STRICT or INFORMATIONAL, 1 when
one is anything else (UNIMPLEMENTED included), 2 when the run itself could not
be made (no Python 2.7, a server that does not start, no report).

``--server-cmd`` tests another server instead: the command (split as a shell
would, run from the repository with it on ``PYTHONPATH``) is started once,
``{port}`` in it replaced by a free port and ``{python}`` by the
interpreter running this script, and reported under ``--name``::

    python scripts/autobahn.py --name uvicorn \\
        --server-cmd "{python} -m uvicorn tests.apps.ws_echo:asgi_app --port {port} --ws-ping-interval 0"

The fuzzing client, ``wstest`` from autobahntestsuite, runs on Python 2.7
only. It is installed once into a virtualenv under ``--cache-dir`` (default
``~/.cache/propylon-autobahn``, outside the repository so that a fresh clone
reuses it): pyenv's newest 2.7 interpreter (or ``--python27``), a virtualenv
made by ``virtualenv<20.22`` (the last releases that create 2.7
environments), installed into a venv of the Python running this script, and
the pins of ``scripts/autobahn-requirements-py27.txt``. The virtualenv's name
carries a hash of those inputs, so changing a pin installs a new one.

Reports (``index.json``, one HTML page per case, each server's output) go to
``--report-dir`` (default ``.autobahn/reports``, ignored by git). ``--table``
writes the result table as Markdown: one row per section and style with
the count of each outcome, then every case that is not OK in some style.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = Path(__file__).resolve().with_name("autobahn-requirements-py27.txt")
#: The fuzzing client and the virtualenv that can still make a Python 2.7 environment.
AUTOBAHN_TESTSUITE = "autobahntestsuite==25.10.1"
VIRTUALENV = "virtualenv<20.22"
DEFAULT_CACHE = Path("~/.cache/propylon-autobahn").expanduser()
DEFAULT_REPORT_DIR = REPO / ".autobahn" / "reports"

#: Handler style -> the echo application serving it (tests/apps/ws_echo.py).
STYLES = {
    "async": "tests.apps.ws_echo:async_app",
    "event": "tests.apps.ws_echo:event_app",
    "blocking": "tests.apps.ws_echo:blocking_app",
}

#: Server options for the run. Section 9 sends messages of up to 16 MiB
#: (9.1.6, 9.2.6), which the limit must admit. No keep-alive pings: the fuzzing
#: client compares the frames it receives with the ones a case expects, and a
#: ping the server sends on its own in the middle of a long case is not one.
PROPYLON_OPTIONS = ("--websocket-max-message", "16777216", "--websocket-ping-interval", "0")

#: The outcomes that pass (Autobahn's own words; NON-STRICT: allowed by
#: RFC 6455 though not the strictest reading, e.g. failing a bad UTF-8 message
#: at its end rather than at the first bad byte; INFORMATIONAL: no verdict, e.g.
#: which close code came back for a close frame whose code is valid).
PASSING = ("OK", "NON-STRICT", "INFORMATIONAL")
#: The columns of the table: the passing outcomes, UNIMPLEMENTED (the server
#: lacks the feature the case needs, e.g. permessage-deflate), and FAILED
#: (every other outcome, e.g. FAILED, WRONG CODE, UNCLEAN).
OUTCOMES = (*PASSING, "UNIMPLEMENTED", "FAILED")

SECTIONS = {
    1: "Framing",
    2: "Pings/Pongs",
    3: "Reserved bits",
    4: "Opcodes",
    5: "Fragmentation",
    6: "UTF-8 handling",
    7: "Close handling",
    9: "Limits/performance",
    10: "Miscellaneous",
    12: "Compression (payloads)",
    13: "Compression (parameters)",
}

#: The subset CI runs (``--cases fast``), chosen to touch every section while
#: leaving out what costs time without reaching other code. Against uvicorn
#: it takes about 40 s a server, most of it the fuzzing client's own work:
#: - sections 1-7 whole, 350 cases of small frames (framing and payload
#:   lengths, pings and pongs, reserved bits and opcodes, fragmentation with
#:   control frames between fragments, UTF-8 validation whole and failing fast
#:   in fragments and in chops of one frame, close codes and reasons);
#: - section 9 up to 1 MiB: one message of 64 KiB, 256 KiB and 1 MiB, text and
#:   binary (9.1.1-3, 9.2.1-3); 4 MiB in 64-byte fragments, 65,536 frames
#:   (9.3.1, 9.4.1); 1 MiB written in 64-byte chops, a frame arriving in
#:   pieces (9.5.1, 9.6.1); 1,000 round trips of 0 to 64 bytes (9.7.1-3,
#:   9.8.1-3). Left out: the same paths with messages of 4 to 16 MiB;
#: - 10.1.1, a 64 KiB message the server may echo in fragments of its choice;
#: - permessage-deflate (RFC 7692): for each of the 5 payloads of section 12,
#:   1,000 messages of 16 bytes, of 4 KiB, and of 8 KiB in 256-byte
#:   fragments (12.x.1, 12.x.5, 12.x.11); for each of the 7 negotiation offers
#:   of section 13 (window bits down to 9, i.e. a 512-byte window, and no
#:   context takeover, on either side), 16-byte and fragmented 8 KiB messages
#:   (13.x.1, 13.x.11). Left out: the same code on messages up to 128 KiB,
#:   which takes 15 of a full run's 16 minutes against uvicorn.
FAST_CASES = (
    "1.*",
    "2.*",
    "3.*",
    "4.*",
    "5.*",
    "6.*",
    "7.*",
    "9.1.1",
    "9.1.2",
    "9.1.3",
    "9.2.1",
    "9.2.2",
    "9.2.3",
    "9.3.1",
    "9.4.1",
    "9.5.1",
    "9.6.1",
    "9.7.1",
    "9.7.2",
    "9.7.3",
    "9.8.1",
    "9.8.2",
    "9.8.3",
    "10.1.1",
    *(f"12.{group}.{case}" for group in range(1, 6) for case in (1, 5, 11)),
    *(f"13.{group}.{case}" for group in range(1, 8) for case in (1, 11)),
)

#: How long a server may take to accept connections, and to stop after SIGTERM.
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_ERROR = 2


class HarnessError(Exception):
    """The run could not be made; the message says why, in one line."""


# --- the fuzzing client, installed once --------------------------------------


def python27_version(path: Path) -> tuple[int, ...]:
    """The version in a pyenv directory name (``2.7.18`` -> ``(2, 7, 18)``)."""
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name))


def find_python27(explicit: str | None = None) -> Path | None:
    """The Python 2.7 interpreter to install the fuzzing client with: the one
    given, else the newest 2.7 that pyenv has (``pyenv root``, ``$PYENV_ROOT``
    or ``~/.pyenv``), else None."""
    if explicit:
        path = Path(explicit).expanduser()
        return path if path.is_file() else None
    roots: list[Path] = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30, check=True)
            roots.append(Path(found.stdout.strip()))
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]))
    roots.append(Path("~/.pyenv").expanduser())
    for root in roots:
        candidates = [path for path in (root / "versions").glob("2.7*/bin/python2.7") if path.is_file()]
        if candidates:
            return max(candidates, key=python27_version)
    return None


def run_step(command: Sequence[str | os.PathLike[str]], what: str) -> None:
    """Run one installation step, its output shown only when it fails."""
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise HarnessError(f"{what} failed (exit {result.returncode}): {shlex.join(map(str, command))}")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (two runs installing at once wait for each other)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def install_wstest(cache: Path, python27: Path) -> Path:
    """The ``wstest`` command of a Python 2.7 virtualenv under ``cache``,
    installed first if it is not there yet. A virtualenv is complete once its
    ``.complete`` marker exists; an incomplete one (an interrupted install) is
    removed and made again."""
    inputs = "\n".join([REQUIREMENTS.read_text(), AUTOBAHN_TESTSUITE, VIRTUALENV, str(python27.resolve())])
    env = cache / f"py27-{hashlib.sha256(inputs.encode()).hexdigest()[:12]}"
    wstest = env / "bin" / "wstest"
    marker = env / ".complete"
    with locked(cache / ".lock"):
        if marker.exists() and wstest.exists():
            return wstest
        started = time.monotonic()
        print(f"autobahn: installing the fuzzing client into {env} (once)", flush=True)
        # A venv of the Python running this script holds virtualenv itself.
        tools = cache / f"virtualenv-py{sys.version_info.major}{sys.version_info.minor}"
        if not (tools / ".complete").exists():
            shutil.rmtree(tools, ignore_errors=True)
            run_step([sys.executable, "-m", "venv", tools], "making the virtualenv tool's venv")
            run_step([tools / "bin" / "python", "-m", "pip", "install", "-q", VIRTUALENV], f"pip install {VIRTUALENV}")
            (tools / ".complete").touch()
        shutil.rmtree(env, ignore_errors=True)
        run_step([tools / "bin" / "virtualenv", "-q", "-p", python27, env], "making the Python 2.7 virtualenv")
        run_step(
            [env / "bin" / "pip", "install", "-q", "--disable-pip-version-check",
             "-r", REQUIREMENTS, AUTOBAHN_TESTSUITE],
            "installing autobahntestsuite",
        )
        if not wstest.exists():
            raise HarnessError(f"{wstest} is missing after installing {AUTOBAHN_TESTSUITE}")
        marker.touch()
        print(f"autobahn: installed in {time.monotonic() - started:.0f} s", flush=True)
        return wstest


# --- the servers under test --------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """One server under test: its agent name in the report, its label in the
    table, its command, the file its output goes to, and once started its process."""

    agent: str
    label: str
    command: list[str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with open(self.log_path, "wb") as log:
            try:
                self.process = subprocess.Popen(self.command, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=subprocess.STDOUT)
            except OSError as error:
                raise HarnessError(f"cannot start {self.label}: {error}") from error

    def wait_ready(self, deadline: float) -> None:
        """Wait until the port accepts a TCP connection, the process exits
        (an error) or the deadline passes (an error)."""
        assert self.process is not None
        while True:
            if self.process.poll() is not None:
                raise HarnessError(f"{self.label} exited with status {self.process.returncode} before "
                                   f"accepting connections:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HarnessError(f"{self.label} did not accept connections on port {self.port} "
                                   f"within {READY_TIMEOUT:.0f} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join("    " + line for line in text[-lines:])


def propylon_servers(styles: Sequence[str], report_dir: Path) -> list[Server]:
    return [
        Server(
            agent=f"propylon-{style}",
            label=f"propylon {style}",
            command=[sys.executable, "-m", "propylon", STYLES[style], "--bind", f"127.0.0.1:{port}",
                     *PROPYLON_OPTIONS],
            port=port,
            log_path=report_dir / f"server-{style}.log",
        )
        for style, port in ((style, free_port()) for style in styles)
    ]


def custom_server(template: str, name: str, report_dir: Path) -> Server:
    port = free_port()
    command = [part.replace("{port}", str(port)).replace("{python}", sys.executable) for part in shlex.split(template)]
    return Server(agent=name, label=name, command=command, port=port, log_path=report_dir / f"server-{name}.log")


# --- the run -----------------------------------------------------------------


def case_selection(cases: str) -> list[str]:
    """``all`` -> every case, ``fast`` -> :data:`FAST_CASES`, else a comma-separated list."""
    if cases == "all":
        return ["*"]
    if cases == "fast":
        return list(FAST_CASES)
    selection = [case.strip() for case in cases.split(",") if case.strip()]
    if not selection:
        raise HarnessError("--cases names no case")
    return selection


def run_fuzzing_client(wstest: Path, servers: Sequence[Server], cases: list[str], report_dir: Path) -> Path:
    """Write the spec, run ``wstest -m fuzzingclient`` (its output to
    ``wstest.log``) and return the path of the report's ``index.json``."""
    spec = {
        "outdir": str(report_dir),
        "servers": [{"agent": server.agent, "url": server.url} for server in servers],
        "cases": cases,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    spec_path = report_dir / "fuzzingclient.json"
    spec_path.write_text(json.dumps(spec, indent=2) + "\n")
    index = report_dir / "index.json"
    index.unlink(missing_ok=True)
    with open(report_dir / "wstest.log", "wb") as log:
        result = subprocess.run([str(wstest), "-m", "fuzzingclient", "-s", str(spec_path)], cwd=report_dir,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0 or not index.exists():
        tail = (report_dir / "wstest.log").read_text(errors="replace").splitlines()[-20:]
        raise HarnessError(f"wstest exited with status {result.returncode} "
                           f"{'without' if not index.exists() else 'after'} writing {index}:\n"
                           + "\n".join("    " + line for line in tail))
    return index


# --- the results -------------------------------------------------------------


def case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


def outcome(result: dict[str, Any]) -> str:
    """The table column of one case: its ``behavior`` when that is one of
    :data:`OUTCOMES` and its ``behaviorClose`` passes, else FAILED."""
    behavior = result.get("behavior")
    close = result.get("behaviorClose")
    if behavior == "UNIMPLEMENTED":
        return "UNIMPLEMENTED"
    if behavior in PASSING and close in PASSING:
        return str(behavior)
    return "FAILED"


def describe(result: dict[str, Any] | None) -> str:
    if result is None:
        return "not run"
    behavior = result.get("behavior")
    close = result.get("behaviorClose")
    return str(behavior) if close in ("OK", None) or close == behavior else f"{behavior} (close: {close})"


@dataclass
class Results:
    """The report of one run: agent -> case id -> the case's result."""

    servers: list[Server]
    by_agent: dict[str, dict[str, dict[str, Any]]]
    seconds: float

    def cases(self) -> list[str]:
        found = {case for results in self.by_agent.values() for case in results}
        return sorted(found, key=case_key)

    def passed(self) -> bool:
        """Every agent ran every case of the run, and each passed."""
        cases = self.cases()
        return bool(cases) and all(
            case in self.by_agent[server.agent] and outcome(self.by_agent[server.agent][case]) in PASSING
            for server in self.servers for case in cases
        )

    def not_ok(self) -> list[str]:
        """The cases whose behavior is not a plain OK in some agent (or that some agent did not run)."""
        return [
            case for case in self.cases()
            if any(case not in self.by_agent.get(server.agent, {})
                   or describe(self.by_agent[server.agent][case]) != "OK" for server in self.servers)
        ]

    def counts(self) -> list[tuple[int, str, Counter[str], float]]:
        """(section, label, outcome -> count, seconds) per section and agent."""
        rows = []
        sections = sorted({case_key(case)[0] for case in self.cases()})
        for section in sections:
            for server in self.servers:
                results = [result for case, result in self.by_agent.get(server.agent, {}).items()
                           if case_key(case)[0] == section]
                counter = Counter(outcome(result) for result in results)
                seconds = sum(result.get("duration", 0) for result in results) / 1000
                rows.append((section, server.label, counter, seconds))
        return rows


def read_results(index: Path, servers: list[Server], seconds: float) -> Results:
    data = json.loads(index.read_text())
    return Results(servers=servers, by_agent={server.agent: data.get(server.agent, {}) for server in servers},
                   seconds=seconds)


def table(results: Results, title: str, command: str, cases: list[str]) -> str:
    """The result table as Markdown."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    selection = "every case" if cases == ["*"] else ("the fast subset (`--cases fast`)" if cases == list(FAST_CASES)
                                                      else "`" + ",".join(cases) + "`")
    lines = [
        "<!-- Generated by scripts/autobahn.py --table; do not edit by hand. -->",
        f"# {title}",
        "",
        f"The Autobahn TestSuite's fuzzing client ({AUTOBAHN_TESTSUITE.replace('==', ' ')}) against "
        f"the echo applications of `tests/apps/ws_echo.py`, {selection}; run on {now}, "
        f"{results.seconds:.0f} s in all, with:",
        "",
        "```",
        command,
        "```",
        "",
        "| Section | Echo server | Cases | " + " | ".join(OUTCOMES) + " | Time (s) |",
        "|---|---|--:|" + "--:|" * len(OUTCOMES) + "--:|",
    ]
    for section, label, counter, seconds in results.counts():
        name = f"{section} {SECTIONS.get(section, '')}".strip()
        total = sum(counter.values())
        lines.append(f"| {name} | {label} | {total} | " + " | ".join(str(counter[o]) for o in OUTCOMES)
                     + f" | {seconds:.1f} |")
    lines.append("")
    not_ok = results.not_ok()
    verdict = "every case passed" if results.passed() else "some cases FAILED"
    lines.append(f"Verdict: {verdict} (passing: {', '.join(PASSING)}).")
    lines.append("")
    lines.append("## Cases not OK")
    lines.append("")
    if not not_ok:
        lines.append("None: every case is OK for every server.")
    else:
        lines.append("| Case | " + " | ".join(server.label for server in results.servers) + " |")
        lines.append("|---|" + "---|" * len(results.servers))
        for case in not_ok:
            cells = [describe(results.by_agent.get(server.agent, {}).get(case)) for server in results.servers]
            lines.append(f"| {case} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def summary(results: Results) -> str:
    lines = []
    for server in results.servers:
        counter = Counter(outcome(result) for result in results.by_agent.get(server.agent, {}).values())
        counts = ", ".join(f"{o} {counter[o]}" for o in OUTCOMES if counter[o])
        lines.append(f"autobahn: {server.label}: {sum(counter.values())} cases: {counts or 'none run'}")
    for case in results.not_ok():
        for server in results.servers:
            result = results.by_agent.get(server.agent, {}).get(case)
            if result is None or outcome(result) not in PASSING:
                lines.append(f"autobahn:   {server.label} {case}: {describe(result)}")
    return "\n".join(lines)


# --- the command -------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="autobahn.py",
        description="Run the Autobahn TestSuite (wstest -m fuzzingclient) against the WebSocket echo apps.",
    )
    parser.add_argument("--style", choices=[*STYLES, "all"], default="all",
                        help="the handler style(s) to test (default: all)")
    parser.add_argument("--cases", default="all",
                        help="'all' (default), 'fast' (the CI subset) or a comma-separated list of case ids "
                             "and patterns (6.4.*)")
    parser.add_argument("--server-cmd", metavar="CMD",
                        help="test this server command instead of propylon ({port}: the port, {python}: this interpreter)")
    parser.add_argument("--name", default="server", help="the --server-cmd server's name in the report")
    parser.add_argument("--report-dir", type=Path, default=DEFAULT_REPORT_DIR,
                        help=f"where the report goes (default: {DEFAULT_REPORT_DIR.relative_to(REPO)})")
    parser.add_argument("--table", type=Path, metavar="PATH", help="write the result table (Markdown) here")
    parser.add_argument("--title", default="Autobahn TestSuite results", help="the table's heading")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help="where the Python 2.7 virtualenv is kept (default: %(default)s)")
    parser.add_argument("--python27", help="the Python 2.7 interpreter (default: pyenv's newest 2.7)")
    parser.add_argument("--install-only", action="store_true", help="install the fuzzing client and stop")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    shown = shlex.join(["python", "scripts/autobahn.py", *(sys.argv[1:] if argv is None else argv)])
    servers: list[Server] = []
    try:
        cases = case_selection(args.cases)
        python27 = find_python27(args.python27)
        if python27 is None:
            raise HarnessError("no Python 2.7 interpreter: install one with `pyenv install 2.7.18` "
                               "or name one with --python27")
        wstest = install_wstest(args.cache_dir.expanduser(), python27)
        if args.install_only:
            print(f"autobahn: {wstest}")
            return EXIT_PASSED
        report_dir = args.report_dir.resolve()
        report_dir.mkdir(parents=True, exist_ok=True)
        if args.server_cmd:
            servers = [custom_server(args.server_cmd, args.name, report_dir)]
        else:
            styles = list(STYLES) if args.style == "all" else [args.style]
            servers = propylon_servers(styles, report_dir)
        for server in servers:
            server.start()
        deadline = time.monotonic() + READY_TIMEOUT
        for server in servers:
            server.wait_ready(deadline)
        print(f"autobahn: {len(servers)} server(s) ready; running wstest -m fuzzingclient "
              f"(log: {report_dir / 'wstest.log'})", flush=True)
        started = time.monotonic()
        index = run_fuzzing_client(wstest, servers, cases, report_dir)
        results = read_results(index, servers, time.monotonic() - started)
    except HarnessError as error:
        print(f"autobahn: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        for server in servers:
            server.stop()
    print(summary(results))
    print(f"autobahn: {results.seconds:.0f} s; report: {report_dir / 'index.html'}")
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(table(results, args.title, shown, cases))
        print(f"autobahn: table written to {args.table}")
    return EXIT_PASSED if results.passed() else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
