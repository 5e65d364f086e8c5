"""A real browser logs a person in: headless chromium on oidc-provider's pages.

Each test drives Debian's chromium through oidc-provider's own login and consent pages to
the loopback landing page, then checks on the servers that the login really completed:
the protected API accepts the token, for the person who typed their login, with
``offline_access`` granted, after exactly one code exchange. How the login is made
(``OAuth2AuthorizationCodeAuth``) is in :func:`tests.browser.loopback.log_in`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .chromium import LOGGED_IN, LOGIN_FAILED, ChromiumPerson
from .loopback import CLIENT_ID, LOGIN_ERROR, log_in


def recording(visit: Callable[[str], str], titles: list[str]) -> Callable[[str], str]:
    """``visit``, noting each landing page's title in ``titles``."""

    def on_authorize(url: str) -> str:
        titles.append(visit(url))
        return titles[-1]

    return on_authorize


def test_a_person_logs_in_through_chromium_and_lands_on_the_loopback_page(
    oidc_server: Any, person: ChromiumPerson, tmp_path: Path
) -> None:
    """Signing in and consenting ends on the success page with a token for that person."""
    titles: list[str] = []
    me = log_in(oidc_server, recording(person.approve, titles))
    assert titles == [LOGGED_IN]
    assert person.steps == ["login", "consent"]
    assert (me["sub"], me["client_id"]) == (person.login, CLIENT_ID)
    assert "offline_access" in me["scope"].split()
    assert oidc_server.stats()["authorization_code:ok"] == 1
    shot = person.save_screenshot(tmp_path / "landing.png")
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_person_with_a_provider_session_is_asked_for_consent_only(
    oidc_server: Any, person: ChromiumPerson
) -> None:
    """A second login in the same browser skips the sign-in page and still lands logged in."""
    titles: list[str] = []
    log_in(oidc_server, recording(person.approve, titles))
    person.steps.clear()
    me = log_in(oidc_server, recording(person.approve, titles))
    assert titles == [LOGGED_IN, LOGGED_IN]
    assert person.steps == ["consent"]
    assert me["sub"] == person.login
    assert oidc_server.stats()["authorization_code:ok"] == 2


def test_a_person_who_cancels_lands_on_the_failure_page(
    oidc_server: Any, person: ChromiumPerson
) -> None:
    """Cancelling on the sign-in page ends on the failure page, and no code is exchanged."""
    titles: list[str] = []
    with pytest.raises(LOGIN_ERROR, match="access_denied"):
        log_in(oidc_server, recording(person.deny, titles))
    assert titles == [LOGIN_FAILED]
    assert person.steps == ["cancel"]
    assert sum(oidc_server.token_calls().values()) == 0


@pytest.fixture
def elsewhere() -> Iterator[str]:
    """A loopback page that is not authplug's: ``/callback`` titled "elsewhere"."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = b"<!DOCTYPE html><title>elsewhere</title><p>not the landing page"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:
            """Silent."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/callback"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_browser_that_never_lands_says_where_it_stopped_without_the_code(
    person: ChromiumPerson, elsewhere: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page that never becomes the landing page times out naming the page, not its query."""
    monkeypatch.setattr(person, "timeout", 1.0)
    code = "code-that-must-not-show-0123456789"
    with pytest.raises(TimeoutError) as caught:
        person.approve(f"{elsewhere}?code={code}&state=s")
    message = str(caught.value)
    assert f"it is on {elsewhere} titled 'elsewhere'" in message
    assert code not in message
    assert person.steps == []
