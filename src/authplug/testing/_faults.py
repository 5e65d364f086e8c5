"""The emulator's fault injection: refused tokens, failing and broken token answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._server import Response

if TYPE_CHECKING:
    import threading
    from collections import Counter

    from ._api import ApiHit, JournalEntry, _Issued
    from ._server import Request

__all__ = ["FaultInjection"]


class FaultInjection:
    """The knobs that make the emulator's token endpoint and API misbehave on purpose."""

    if TYPE_CHECKING:
        _lock: threading.Lock
        _access: dict[str, _Issued]
        _failures: list[Response]
        token_calls: Counter[str]
        token_requests: list[Request]
        api_calls: int
        api_log: list[ApiHit]
        journal: list[JournalEntry]
        authorize_requests: int
        device_authorizations: int
        decisions: list[tuple[str, str, bool]]
        exchanges_by_audience: Counter[str]
        exchanges_by_resource: Counter[str]

    def revoke_all(self) -> None:
        """Every access token issued so far is refused from now on."""
        with self._lock:
            for issued in self._access.values():
                issued.revoked = True

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None) -> None:
        """The next ``count`` token calls answer ``status`` with an HTML error page.

        Args:
            count: how many token calls fail.
            status: the status they answer.
            retry_after: a ``Retry-After`` header to send with them, if any.
        """
        headers = {"Content-Type": "text/html"}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        page = f"<html><head><title>{status} Service Unavailable</title></head></html>"
        with self._lock:
            self._failures.extend([Response(status, page.encode(), headers)] * count)

    def malformed_next(
        self,
        count: int = 1,
        body: bytes = b'{"access_token": "trunc',
        status: int = 200,
        content_type: str = "application/json",
    ) -> None:
        """The next ``count`` token calls answer with this (broken) body.

        Args:
            count: how many token calls get it.
            body: the body (default: truncated JSON).
            status: the status they answer.
            content_type: the ``Content-Type`` they carry.
        """
        with self._lock:
            self._failures.extend([Response(status, body, {"Content-Type": content_type})] * count)

    def reset_counters(self) -> None:
        """Empty :attr:`token_calls`, :attr:`token_requests`, :attr:`api_log`,
        :attr:`journal`, :attr:`decisions`, ``exchanges_by_audience`` and
        ``exchanges_by_resource``, and set :attr:`api_calls`,
        :attr:`authorize_requests` and :attr:`device_authorizations` to 0."""
        with self._lock:
            self.token_calls.clear()
            self.token_requests.clear()
            self.api_calls = 0
            self.api_log.clear()
            self.journal.clear()
            self.decisions.clear()
            self.exchanges_by_audience.clear()
            self.exchanges_by_resource.clear()
            self.authorize_requests = self.device_authorizations = 0
