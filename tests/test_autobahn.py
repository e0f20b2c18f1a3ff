"""The Autobahn TestSuite (``scripts/autobahn.py``): the fuzzing client's fast
subset against the echo application in each of the three handler styles must
give OK, NON-STRICT or INFORMATIONAL for every case, compression included.

The harness itself is checked against uvicorn with the ASGI echo app: a
correct echo passes, and an echo that answers text with binary fails with the
failing cases named, so a passing Propylon run means something.

The fuzzing client runs on Python 2.7: these tests skip when no Python 2.7 is
found (pyenv's, as the script looks for it); the script installs everything
else itself, once, into ``~/.cache/propylon-autobahn``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

SCRIPT = REPO / "scripts" / "autobahn.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("autobahn_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


autobahn = _load_script()

needs_python27 = pytest.mark.skipif(
    autobahn.find_python27() is None,
    reason="no Python 2.7 for the Autobahn fuzzing client (`pyenv install 2.7.18`)",
)

#: Installing the fuzzing client (the first run on a machine) takes about a
#: minute; the fast subset a few minutes for the three styles.
RUN_TIMEOUT = 1200


def run_harness(*args: str, report_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--report-dir", str(report_dir), *args],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=REPO,
    )


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-6000:]}"


@needs_python27
@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_fast_subset_passes_for_every_handler_style(tmp_path: Path) -> None:
    table = tmp_path / "table.md"
    result = run_harness("--cases", "fast", "--style", "all", "--table", str(table), report_dir=tmp_path)
    assert result.returncode == 0, explain(result)
    text = table.read_text()
    for style in ("async", "event", "blocking"):
        for section in ("1 Framing", "6 UTF-8 handling", "9 Limits/performance",
                        "12 Compression (payloads)", "13 Compression (parameters)"):
            assert f"| {section} | propylon {style} |" in text, text


def _uvicorn_websockets() -> str | None:
    """Why uvicorn cannot serve WebSockets here, or None when it can."""
    for module in ("uvicorn", "wsproto"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    return None


UVICORN = "{python} -m uvicorn tests.apps.ws_echo:%s --port {port} --ws wsproto --ws-ping-interval 0 --log-level warning"


@needs_python27
@pytest.mark.skipif(_uvicorn_websockets() is not None, reason=str(_uvicorn_websockets()))
@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_harness_passes_a_correct_echo(tmp_path: Path) -> None:
    table = tmp_path / "table.md"
    result = run_harness("--server-cmd", UVICORN % "asgi_app", "--name", "uvicorn",
                         "--cases", "1.1.1,2.1,5.1,6.1.1,12.1.1,13.1.1", "--table", str(table), report_dir=tmp_path)
    assert result.returncode == 0, explain(result)
    assert "| 1 Framing | uvicorn | 1 | 1 | 0 | 0 | 0 | 0 |" in table.read_text()
    assert "| 13 Compression (parameters) | uvicorn | 1 | 1 | 0 | 0 | 0 | 0 |" in table.read_text()


@needs_python27
@pytest.mark.skipif(_uvicorn_websockets() is not None, reason=str(_uvicorn_websockets()))
@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_harness_fails_a_wrong_echo(tmp_path: Path) -> None:
    result = run_harness("--server-cmd", UVICORN % "asgi_text_as_binary", "--name", "broken",
                         "--cases", "1.1.1,1.2.1", report_dir=tmp_path)
    assert result.returncode == 1, explain(result)
    assert "broken 1.1.1: FAILED" in result.stdout, explain(result)
    assert "broken 1.2.1" not in result.stdout, explain(result)  # binary echoed as binary: OK


def test_fast_subset_covers_every_section() -> None:
    sections = {int(case.split(".")[0]) for case in autobahn.FAST_CASES}
    assert sections == set(autobahn.SECTIONS)
