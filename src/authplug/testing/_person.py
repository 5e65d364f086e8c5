"""A person with no browser, who approves or denies what an emulator asks them.

:class:`HeadlessPerson` does over HTTP what a person does in a browser: opens the
authorization URL an app shows, presses Approve (or Deny) on the emulator's page, and
follows the redirect back to the app's loopback listener; or types a user code on the
emulator's verification page. Its methods fit the login classes' callbacks:
``on_authorize=person.approve``, ``on_user_code=person.on_user_code``.
"""

from __future__ import annotations

import html
import http.client
import re
import threading
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlencode, urljoin, urlsplit

from ._logins import is_loopback

if TYPE_CHECKING:
    import ssl

    from ._emulator import OAuth2Emulator

__all__ = ["HeadlessPerson"]

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5
_FORM = re.compile(r'<form method="post" action="([^"]*)">')
_REQUEST_ID = re.compile(r'name="request" value="([^"]*)"')


class _HasUserCode(Protocol):
    """What a device flow shows a person: a ``DeviceCode``, or anything with a user code."""

    @property
    def user_code(self) -> str: ...


class HeadlessPerson:
    """A person who logs in on an emulator's pages, over HTTP, with no browser.

    Thread-safe: several logins may ask it at once. It visits loopback hosts only (it is
    a test person): a URL or redirect elsewhere raises ``ValueError``.

    Args:
        emulator: the emulator whose pages it is shown.
        username: the name it signs in with (default: the emulator's ``username``); the
            emulator records it in ``decisions``.
        ssl_context: how it trusts HTTPS pages (an emulator serving TLS), or None.
        timeout: seconds each HTTP request may take.

    Attributes:
        username: the name it signs in with.
        prompts: how many authorization URLs and user codes it was shown.
        last_status: the status of the last page it landed on (0: none yet).
        last_page: that page's text (the app's landing page after a redirect).
        errors: the exceptions met by :meth:`approve_later`'s threads.
    """

    def __init__(
        self,
        emulator: OAuth2Emulator,
        *,
        username: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._emulator = emulator
        self.username = username if username is not None else emulator.username
        self._ssl_context = ssl_context
        self._timeout = timeout
        self._lock = threading.Lock()
        self.prompts = 0
        self.last_status = 0
        self.last_page = ""
        self.errors: list[Exception] = []
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"HeadlessPerson(username={self.username!r}, prompts={self.prompts})"

    def approve(self, url: str) -> int:
        """Open the authorization URL ``url``, approve, and follow the redirect back.

        Args:
            url: the authorization URL an app would open in a browser.

        Returns:
            The status of the page it lands on: the redirect target's answer (the app's
            listener), or the emulator's error page (400) for a bad request.
        """
        return self._decide(url, "approve")

    def approve_later(self, url: str) -> None:
        """:meth:`approve` in a new thread, returning at once.

        Fits ``on_authorize=`` where the app's listener serves in the very thread or
        event loop that calls it (a blocking :meth:`approve` would wait for itself there).
        :meth:`wait` waits for the landing page; an exception the person meets there is
        kept in :attr:`errors`.

        Args:
            url: the authorization URL an app would open in a browser.
        """
        thread = threading.Thread(target=self._approve_quietly, args=(url,), daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def wait(self, timeout: float = 10.0) -> None:
        """Wait for the threads of :meth:`approve_later` to land.

        Args:
            timeout: seconds to wait for each.

        Raises:
            AssertionError: one is still under way after ``timeout``.
        """
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout)
            if thread.is_alive():
                raise AssertionError(f"the person is still at it after {timeout} s")

    def _approve_quietly(self, url: str) -> None:
        try:
            self.approve(url)
        except Exception as exc:  # kept for the test to see: a thread has no caller
            with self._lock:
                self.errors.append(exc)

    def deny(self, url: str) -> int:
        """As :meth:`approve`, but deny: the app receives ``error=access_denied``."""
        return self._decide(url, "deny")

    def enter_user_code(self, user_code: str, approve: bool = True) -> int:
        """Type ``user_code`` on the emulator's verification page and approve or deny.

        Args:
            user_code: the code the device shows (case and dashes do not matter).
            approve: False to deny.

        Returns:
            The page's status: 200 when the code was known and waiting, else 400.
        """
        self._shown()
        form = {"user_code": user_code, "decision": "approve" if approve else "deny"}
        form["username"] = self.username
        return self._browse("POST", self._emulator.verification_url, form)

    def on_user_code(self, device_code: _HasUserCode) -> int:
        """Approve the user code of ``device_code`` (a ``DeviceCode``): fits ``on_user_code=``."""
        return self.enter_user_code(device_code.user_code)

    def _shown(self) -> None:
        with self._lock:
            self.prompts += 1

    def _decide(self, url: str, decision: str) -> int:
        self._shown()
        status, location, page = self._fetch("GET", url)
        if status in _REDIRECTS:  # an error the emulator sends back to the app at once
            return self._browse("GET", urljoin(url, location))
        form, request_id = _FORM.search(page), _REQUEST_ID.search(page)
        if status != 200 or form is None or request_id is None:
            return self._landed(status, page)
        fields = {"request": html.unescape(request_id.group(1)), "decision": decision}
        fields["username"] = self.username
        return self._browse("POST", urljoin(url, html.unescape(form.group(1))), fields)

    def _browse(self, method: str, url: str, form: dict[str, str] | None = None) -> int:
        """Send the request and follow redirects, as a browser does; the last status."""
        status, location, page = self._fetch(method, url, form)
        for _ in range(_MAX_REDIRECTS):
            if status not in _REDIRECTS:
                break
            url = urljoin(url, location)
            status, location, page = self._fetch("GET", url)
        return self._landed(status, page)

    def _landed(self, status: int, page: str) -> int:
        with self._lock:
            self.last_status, self.last_page = status, page
        return status

    def _fetch(
        self, method: str, url: str, form: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        """One HTTP request: (status, ``Location`` header or "", body text)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not is_loopback(parts.hostname):
            # Only the host is named: the URL may carry a code.
            raise ValueError(f"a HeadlessPerson visits loopback hosts only, not {parts.hostname!r}")
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.netloc, timeout=self._timeout, context=self._ssl_context
            )
        else:
            connection = http.client.HTTPConnection(parts.netloc, timeout=self._timeout)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        body = urlencode(form).encode() if form is not None else None
        headers = {"Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            page = response.read().decode("utf-8", "replace")
            return response.status, response.getheader("Location") or "", page
        finally:
            connection.close()
