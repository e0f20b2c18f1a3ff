"""Fixtures for the end-to-end tests: real ``propylon`` servers in subprocesses.

``start_server(app_spec, *args, binds=("127.0.0.1:0",))`` starts
``python -m propylon APP --bind 127.0.0.1:0 ARGS`` and returns a
:class:`tests.support.ServerProcess` (``.port``, ``.url``, ``.stderr_lines()``,
``.wait_for_line()``, ``.stop()``) once the server has logged its
"Listening on ..." line(s). At teardown every server still running gets SIGTERM
and must exit 0 (graceful shutdown), with no Rust panic and no application
iterable left unclosed.

``start_server`` servers live for one test; ``start_module_server`` ones for a
whole test module, so most tests share a handful of processes.

``pki`` (session scope) holds the test certificates, made at test time
(:class:`tests.pki.TestPKI`: a CA, RSA, ECDSA and Ed25519 server certificates,
client certificates).

Every test has a timeout (pytest-timeout, ``timeout = 60`` in pyproject.toml;
the hook below sets it too, so the suite is bounded however it is invoked).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pytest

from tests.support import ServerProcess, check_stopped_cleanly

if TYPE_CHECKING:
    from tests.pki import TestPKI

DEFAULT_TIMEOUT = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


class ServerStarter:
    """Starts servers on demand and stops them all at the end of the fixture's scope."""

    def __init__(self) -> None:
        self.servers: list[ServerProcess] = []

    def __call__(self, app_spec: str, *args: str, binds: Sequence[str] = ("127.0.0.1:0",)) -> ServerProcess:
        server = ServerProcess(app_spec, args, binds)
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        problems = []
        for server in self.servers:
            if server.stopped:
                continue  # a test stopped it and checked the outcome itself
            problems += check_stopped_cleanly(server, server.stop())
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def start_server() -> Iterator[ServerStarter]:
    starter = ServerStarter()
    yield starter
    starter.stop_all()


@pytest.fixture(scope="module")
def start_module_server() -> Iterator[ServerStarter]:
    starter = ServerStarter()
    yield starter
    starter.stop_all()


@pytest.fixture(scope="module")
def server(start_module_server: ServerStarter) -> ServerProcess:
    """The general test app (tests/apps/wsgi_app.py) with default options, shared by a module."""
    return start_module_server("tests.apps.wsgi_app:app")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """Certificates and keys for the TLS tests, written once per run (imported
    here, not at the top, so tests without TLS do not need trustme)."""
    from tests.pki import TestPKI

    return TestPKI(tmp_path_factory.mktemp("pki"))
