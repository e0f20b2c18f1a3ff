"""The showcase's chat in real headless Chromium (issue 22, point 5).

``propylon examples.showcase:app`` serves ``/static/chat.html`` from its static
mount and the ``/chat`` WebSocket endpoint (an ``async def`` handler that
broadcasts). Debian's ``chromium``, driven by Playwright with the system
browser (no browser download), opens the page in two browser contexts (two
users, each with its own connections): both join, one types a message and
both see it, one leaves and the other sees the leave notice. Run twice:

- over cleartext HTTP/1.1: the WebSocket is an ``Upgrade`` (RFC 6455 §4);
- over TLS with HTTP/2: the page arrives over ``h2`` (ALPN) and Chromium opens
  the WebSocket as an extended CONNECT stream on that connection (RFC 8441),
  because the server advertised ``SETTINGS_ENABLE_CONNECT_PROTOCOL``.

How the HTTP/2 case is proved, from both ends: Chromium's own DevTools
``Network.webSocketHandshakeResponseReceived`` event reports the handshake
response's status, ``200`` for an extended CONNECT (RFC 8441 §5: a 2xx answer)
where an HTTP/1.1 handshake can only succeed with ``101`` (RFC 6455 §4.2.2),
so the client says which protocol carried it; and the server's view,
``ws.http_version`` and ``ws.scheme``, is printed by the showcase in the join
notice the page shows. The page itself must have come over ``h2``
(``performance.getEntries()[0].nextHopProtocol``).

Trust: Chromium is told to accept exactly the test certificate's key
(``--ignore-certificate-errors-spki-list`` with its SHA-256 SPKI hash), not to
ignore certificate errors in general; the certificates are made at test time
(tests/pki.py, trustme).

Skipped when ``chromium`` is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support import EVENT_TIMEOUT, ServerProcess

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium")
APP = "examples.showcase:app"

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
    # Two browser contexts and a server start on a busy two-core machine.
    pytest.mark.timeout(120),
]


def spki_sha256(certfile) -> str:
    """The base64 SHA-256 of the first certificate's SubjectPublicKeyInfo, the
    form ``--ignore-certificate-errors-spki-list`` takes."""
    cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def browser(pki) -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[f"--ignore-certificate-errors-spki-list={spki_sha256(pki.ecdsa.certfile)}"],
        )
        yield chromium
        chromium.close()


@dataclass
class ChatUser:
    """One browser context on the chat page, with what DevTools saw of its WebSockets."""

    page: Any
    handshakes: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    name: str = ""

    def log(self) -> list[tuple[str | None, str]]:
        """The chat log as shown: ``(from, text)`` per line, ``from`` None for a notice."""
        return self.page.evaluate(
            """() => [...document.querySelectorAll("#log li")].map(
                   (li) => [li.dataset.from ?? null, li.lastChild.textContent])"""
        )

    def wait_for_lines(self, count: int, server: ServerProcess) -> list[tuple[str | None, str]]:
        """The log once it has ``count`` lines; a clear failure if it never does
        (at once when the page's WebSocket has closed)."""
        try:
            self.page.wait_for_function(
                """(count) => document.querySelectorAll("#log li").length >= count
                              || document.getElementById("status").dataset.state === "closed" """,
                arg=count, timeout=EVENT_TIMEOUT * 1000,
            )  # fmt: skip
        except playwright_api.TimeoutError:
            pass
        lines = [tuple(line) for line in self.log()]
        assert len(lines) >= count, (
            f"{self.name or 'the page'} showed {lines} (status: {self.page.text_content('#status')!r}, "
            f"page errors: {self.errors}), not {count} lines; server stderr:\n{server.stderr_text()}"
        )
        return lines


class ChatRoomVisit:
    """Opens browser contexts on one server's chat page; closed before the server
    is stopped (an open WebSocket would hold up its graceful shutdown)."""

    def __init__(self, browser: Any, server: ServerProcess, url: str) -> None:
        self.browser, self.server, self.url = browser, server, url
        self.contexts: list[Any] = []

    def join(self, from_index: bool = False) -> ChatUser:
        """A new browser context opens the chat page (directly, or by its link on
        the showcase's index page) and waits for the server's welcome."""
        context = self.browser.new_context()
        self.contexts.append(context)
        context.set_default_timeout(EVENT_TIMEOUT * 1000)
        page = context.new_page()
        user = ChatUser(page)
        page.on("pageerror", lambda error: user.errors.append(str(error)))
        devtools = context.new_cdp_session(page)
        devtools.send("Network.enable")
        devtools.on("Network.webSocketHandshakeResponseReceived", lambda event: user.handshakes.append(event))
        if from_index:
            page.goto(f"{self.url}/")
            page.click("a[href='/static/chat.html']")
        else:
            page.goto(f"{self.url}/static/chat.html")
        user.wait_for_lines(1, self.server)
        user.name = page.get_attribute("#status", "data-me") or ""
        assert user.name, f"no name in the welcome: {user.log()}"
        return user

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def visit(browser, start_server, pki) -> Iterator[Callable[[bool], ChatRoomVisit]]:
    """``visit(tls)``: a new showcase server (TLS on its one listener when
    ``tls``) and a way to open its chat page in new browser contexts."""
    visits: list[ChatRoomVisit] = []

    def start(tls: bool) -> ChatRoomVisit:
        if tls:
            server = start_server(APP, *pki.ecdsa.args())
            visits.append(ChatRoomVisit(browser, server, server.tls_url))
        else:
            server = start_server(APP)
            visits.append(ChatRoomVisit(browser, server, server.url))
        return visits[-1]

    yield start
    for room in visits:
        room.close()


def chat_between_two_pages(room: ChatRoomVisit, transport: str) -> tuple[ChatUser, ChatUser]:
    """Two users join, B sends, both see it, B leaves, A sees it; returns both
    for the caller's checks of how the page and the WebSockets were carried."""
    server = room.server
    a = room.join(from_index=True)
    welcome_a = (None, f"You are {a.name}. Here: nobody else yet.")
    joined_a = (None, f"{a.name} joined (WebSocket over {transport})")
    assert a.wait_for_lines(2, server) == [welcome_a, joined_a]

    b = room.join()
    joined_b = (None, f"{b.name} joined (WebSocket over {transport})")
    assert b.wait_for_lines(2, server) == [(None, f"You are {b.name}. Here: {a.name}."), joined_b]
    assert a.wait_for_lines(3, server) == [welcome_a, joined_a, joined_b]

    # A person typing: the text (markup in it is shown as text, not parsed) and Enter.
    said = "<b>hello</b> from the other window, ünïcödé ✓"
    b.page.fill("#text", said)
    b.page.press("#text", "Enter")
    message = (b.name, said)
    assert b.wait_for_lines(3, server)[2] == message
    assert b.page.locator("#log li.mine").count() == 1
    assert b.page.locator("#log li b").count() == 0
    assert b.page.input_value("#text") == ""
    assert a.wait_for_lines(4, server)[3] == message

    b.page.close()
    assert a.wait_for_lines(5, server) == [welcome_a, joined_a, joined_b, message, (None, f"{b.name} left")]
    assert a.page.get_attribute("#status", "data-state") == "open"
    assert a.errors == [] and b.errors == []
    return a, b


def handshake_statuses(user: ChatUser) -> list[int]:
    return [event["response"]["status"] for event in user.handshakes]


def test_two_browser_pages_chat_over_http11(visit):
    a, b = chat_between_two_pages(visit(tls=False), "HTTP/1.1, ws")
    assert a.page.evaluate("performance.getEntries()[0].nextHopProtocol") == "http/1.1"
    # RFC 6455 §4.2.2: the HTTP/1.1 handshake succeeds with 101.
    assert handshake_statuses(a) == handshake_statuses(b) == [101]


def test_two_browser_pages_chat_over_tls_and_http2(visit):
    a, b = chat_between_two_pages(visit(tls=True), "HTTP/2, wss")
    assert a.page.evaluate("performance.getEntries()[0].nextHopProtocol") == "h2"
    # RFC 8441 §5: the extended CONNECT is answered 200; an HTTP/1.1 handshake
    # could only have succeeded with 101, so Chromium carried it over HTTP/2.
    assert handshake_statuses(a) == handshake_statuses(b) == [200]
