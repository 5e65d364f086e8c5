"""What an API's refusal costs: a 403 needs ``refresh_status_codes=(401, 403)``, and a
refusal of even a fresh token pauses renewal.

What docs/sdk.rst tells SDK authors, proven on every client against an emulator whose
API answers 403 (no challenge) wherever the plain emulator answers 401: without the
option the 403 is handed back and nothing is renewed; with it a revoked token is
renewed and the request replayed; a 403 that is about the permission costs one
renewal, then goes unanswered for a while. An API that refuses every token, even one
just fetched, stops costing token calls for REFUSAL_QUIET seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from authplug._renew.manager import REFUSAL_QUIET
from authplug.testing import (
    FakeClock,
    OAuth2Emulator,
    Request,
    Response,
)
from authplug.testing import Response as EmulatorResponse

from ..conftest import Driver, password_auth


class ForbiddingEmulator(OAuth2Emulator):
    """Its API answers 403 where the plain emulator's answers 401 (a stale, revoked or
    unknown token), as django-oauth-toolkit's stock ProtectedResourceView does."""

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        if response.status == 401 and request.path.startswith(self.api_prefix + "/"):
            body = json.dumps({"detail": "You do not have permission"}).encode()
            return Response(403, body, {"Content-Type": "application/json"})
        return response


@pytest.fixture
def forbidding() -> Iterator[ForbiddingEmulator]:
    with ForbiddingEmulator() as emulator:
        yield emulator


def test_by_default_a_403_is_handed_back_without_renewal(
    driver: Driver, forbidding: ForbiddingEmulator
) -> None:
    """401 only: the 403 to a revoked token reaches the caller, no token call."""
    auth = password_auth(forbidding)
    assert driver.send(auth, "GET", forbidding.api_url()).status == 200
    forbidding.revoke_all()
    result = driver.send(auth, "GET", forbidding.api_url())
    assert (result.status, result.history) == (403, 0)
    assert forbidding.token_calls == {"password": 1}


def test_with_403_a_revoked_token_is_renewed_and_the_request_replayed(
    driver: Driver, forbidding: ForbiddingEmulator
) -> None:
    """``refresh_status_codes=(401, 403)``: renewed once, replayed once, 200."""
    auth = password_auth(forbidding, refresh_status_codes=(401, 403))
    assert driver.send(auth, "GET", forbidding.api_url()).status == 200
    forbidding.revoke_all()
    result = driver.send(auth, "POST", forbidding.api_url(), content=b"payload")
    assert (result.status, result.history) == (200, 1)
    assert result.data["body_length"] == 7
    assert forbidding.token_calls == {"password": 1, "refresh_token": 1}


def test_with_403_a_permission_refusal_costs_one_renewal(
    driver: Driver, forbidding: ForbiddingEmulator
) -> None:
    """A 403 the renewed token gets too is handed back; the next 403s cost no token call."""
    auth = password_auth(forbidding, refresh_status_codes=(401, 403))
    denied = forbidding.api_url("/deny")  # refuses every token
    assert driver.send(auth, "GET", forbidding.api_url()).status == 200
    assert driver.send(auth, "GET", denied).status == 403
    assert forbidding.token_calls == {"password": 1, "refresh_token": 1}
    assert forbidding.api_calls == 3  # the first request, the refusal, the replay
    assert driver.send(auth, "GET", denied).status == 403
    assert forbidding.token_calls == {"password": 1, "refresh_token": 1}
    assert forbidding.api_calls == 4


class RefusingApiEmulator(OAuth2Emulator):
    """The token endpoint works; the API refuses every token, even a fresh one."""

    def _api(self, request: Request, path: str) -> EmulatorResponse:
        return super()._api(request, "/deny")  # the emulator's own 401 + WWW-Authenticate


def _warnings(log: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [
        r.getMessage()
        for r in log.records
        if r.name == "authplug" and r.levelname == "WARNING" and words in r.getMessage()
    ]


def test_permanent_refusal_pauses_renewal(
    driver: Driver, clock: FakeClock, authlog: pytest.LogCaptureFixture
) -> None:
    """An API that refuses even fresh tokens stops costing token calls for a while.

    Password grant, no refresh tokens. The first request fetches a token, is refused,
    renews, replays and is refused again: renewal then pauses for REFUSAL_QUIET seconds
    (one warning saying so and for how long); refusals in that time are handed back
    with no token call. Past the pause a refusal renews again.
    """
    with RefusingApiEmulator(issue_refresh_tokens=False) as emulator:
        auth = password_auth(emulator, clock=clock)
        url = emulator.api_url()
        first = driver.send(auth, "GET", url)
        assert (first.status, first.history) == (401, 1)
        assert emulator.token_calls == {"password": 2}
        assert emulator.api_calls == 2

        for _ in range(3):
            clock.advance(REFUSAL_QUIET / 4)
            quiet = driver.send(auth, "GET", url)
            assert (quiet.status, quiet.history) == (401, 0)
        assert emulator.token_calls == {"password": 2}
        assert emulator.api_calls == 5
        paused = _warnings(authlog, "without renewing")
        assert len(paused) == 1
        assert f"for {REFUSAL_QUIET:.0f}s" in paused[0]

        clock.advance(REFUSAL_QUIET / 4 + 1)
        again = driver.send(auth, "GET", url)
        assert (again.status, again.history) == (401, 1)
        assert emulator.token_calls == {"password": 3}
        assert emulator.api_calls == 7
        assert len(_warnings(authlog, "without renewing")) == 2
