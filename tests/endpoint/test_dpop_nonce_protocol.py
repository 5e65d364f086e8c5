"""A token endpoint that keeps asking for a DPoP nonce broke the protocol, not the login.

RFC 9449 §8: a token endpoint that wants a nonce answers ``use_dpop_nonce`` with the
nonce in ``DPoP-Nonce``, and the client sends the request once more with it. When the
answer to that retry asks again (or the server named no nonce to send), the
credentials were never judged: the failure is a :class:`TokenEndpointError` (try
later), never a :class:`CredentialsRejectedError` logged at ERROR as refused
credentials. Proven on the emulator's token endpoint in strict DPoP mode.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from authplug import CredentialsRejectedError, TokenEndpointError
from authplug.testing import FakeClock, OAuth2Emulator, Request, Response

from ..conftest import Driver, password_auth

pytest.importorskip("joserfc")

#: Seconds each emulator token lives, and a moment past its renewal's due time.
LIFETIME = 3600.0
IN_WINDOW = LIFETIME - 60 + 10


class NonceAskingEmulator(OAuth2Emulator):
    """Strict DPoP; once ``asking`` is set, its token endpoint refuses every request with
    ``use_dpop_nonce``: with a new nonce each time (``"new nonce"``), or with none
    (``"no nonce"``). Its API checks proofs as usual."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.dpop = True
        self.asking: str | None = None
        self._serial = itertools.count()

    def check_request(self, request: Request, params: dict[str, str]) -> Response | None:
        if self.asking is None:
            return super().check_request(request, params)
        body = {"error": "use_dpop_nonce", "error_description": "a nonce is required"}
        headers = {"Content-Type": "application/json"}
        if self.asking == "new nonce":
            headers["DPoP-Nonce"] = f"as-nonce-{next(self._serial)}"
        return Response(400, json.dumps(body).encode(), headers)


@pytest.fixture
def dpop_emulator() -> Iterator[NonceAskingEmulator]:
    with NonceAskingEmulator(token_lifetime=LIFETIME) as emulator:
        yield emulator


def _assert_protocol_failure(error: BaseException) -> None:
    assert type(error) is TokenEndpointError
    assert not isinstance(error, CredentialsRejectedError)
    assert error.status_code == 400
    assert error.error == "use_dpop_nonce"
    assert "a nonce is required" in error.description  # the server's own words are kept


def test_a_nonce_asked_for_twice_is_a_token_endpoint_error(
    dpop_emulator: NonceAskingEmulator, authlog: pytest.LogCaptureFixture
) -> None:
    """One retry with the nonce given; asked again, the caller gets a TokenEndpointError
    (sync and async), and nothing is logged at ERROR."""
    dpop_emulator.asking = "new nonce"
    with pytest.raises(TokenEndpointError) as info:
        password_auth(dpop_emulator, dpop=True, retries=0).get_token()
    _assert_protocol_failure(info.value)
    assert "still asks for a DPoP nonce after being sent the one it gave" in str(info.value)
    assert dpop_emulator.token_calls == {"password": 2}  # the call and one retry

    async def fetch() -> None:
        await password_auth(dpop_emulator, dpop=True, retries=0).aget_token()

    with pytest.raises(TokenEndpointError) as async_info:
        asyncio.run(fetch())
    _assert_protocol_failure(async_info.value)
    assert dpop_emulator.token_calls == {"password": 4}
    assert [r for r in authlog.records if r.levelno >= logging.ERROR] == []


def test_a_nonce_asked_for_without_one_is_a_token_endpoint_error(
    dpop_emulator: NonceAskingEmulator,
) -> None:
    """No DPoP-Nonce header to send back: no retry, a TokenEndpointError that says so."""
    dpop_emulator.asking = "no nonce"
    with pytest.raises(TokenEndpointError) as info:
        password_auth(dpop_emulator, dpop=True, retries=0).get_token()
    _assert_protocol_failure(info.value)
    assert "without giving one (no DPoP-Nonce header)" in str(info.value)
    assert dpop_emulator.token_calls == {"password": 1}


def test_a_background_renewal_asked_for_a_nonce_twice_is_no_credentials_error(
    dpop_emulator: NonceAskingEmulator,
    driver: Driver,
    clock: FakeClock,
    authlog: pytest.LogCaptureFixture,
) -> None:
    """A renewal in the background that meets the endpoint asking twice: the request
    goes out with the current token, and the failure is a WARNING about the renewal,
    never an ERROR saying the credentials were refused."""
    auth = password_auth(dpop_emulator, dpop=True, retries=0, clock=clock)
    assert driver.send(auth, "GET", dpop_emulator.api_url()).status == 200
    dpop_emulator.asking = "new nonce"
    dpop_emulator.reset_counters()
    clock.advance(IN_WINDOW)
    assert driver.send(auth, "GET", dpop_emulator.api_url()).status == 200
    # The refresh and then the full grant, each asked twice.
    assert dpop_emulator.token_calls == {"refresh_token": 2, "password": 2}
    errors = [r.getMessage() for r in authlog.records if r.levelno >= logging.ERROR]
    assert errors == []
    warnings = [
        r.getMessage()
        for r in authlog.records
        if r.levelno == logging.WARNING and "background token renewal failed" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "still asks for a DPoP nonce" in warnings[0]
