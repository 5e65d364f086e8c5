"""An API that refuses a stale token with 403 needs ``refresh_status_codes=(401, 403)``.

What docs/sdk.rst tells SDK authors, proven on every client against an emulator whose
API answers 403 (no challenge) wherever the plain emulator answers 401: without the
option the 403 is handed back and nothing is renewed; with it a revoked token is
renewed and the request replayed; a 403 that is about the permission costs one
renewal, then goes unanswered for a while.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from authplug.testing import OAuth2Emulator, Request, Response

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
