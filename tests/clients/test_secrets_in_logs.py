"""No log record of any client's request carries a secret, in any spelling."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import pytest

from authplug import (
    BaseAuth,
    TelmaiAuth,
    Token,
)
from authplug.testing import (
    FakeClock,
    OAuth2Emulator,
    Request,
    Response,
    TelmaiEmulator,
)

from ..conftest import Driver, password_auth
from ..spelled import CLIENT_ID, PASSWORD, SECRET, basic_b64, spellings


def record_texts(record: logging.LogRecord) -> list[str]:
    """Everything of a record a handler may write."""
    texts = [record.getMessage(), str(record.msg), repr(record.args)]
    if record.exc_info:
        texts.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        texts.append(record.exc_text)
    if record.stack_info:
        texts.append(record.stack_info)
    return texts


def echo_of(request: Request) -> str:
    """The whole request as a token endpoint may echo it: query, form body, Authorization."""
    query = urlencode(request.query, doseq=True)
    body = request.body.decode()
    return f"q={query} b={body} a={request.headers.get('authorization', '')}"


class EchoingEmulator(OAuth2Emulator):
    """The next ``echo`` token calls of grant ``echo_grant`` answer 503, their error
    description echoing the whole request."""

    echo = 0
    echo_grant = ""

    def check_request(self, request: Request, params: dict[str, str]) -> Response | None:
        if self.echo and params.get("grant_type") == self.echo_grant:
            self.echo -= 1
            return self.error(503, "temporarily_unavailable", echo_of(request))
        return super().check_request(request, params)


class EchoingTelmaiEmulator(TelmaiEmulator):
    """Telmai's emulator with the same echoing 503 answers."""

    echo = 0
    echo_grant = ""

    def check_request(self, request: Request, params: dict[str, str]) -> Response | None:
        if self.echo and params.get("grant_type") == self.echo_grant:
            self.echo -= 1
            return Response.json(503, {"error_description": echo_of(request)})
        return super().check_request(request, params)


PROVIDERS = ["generic-post", "generic-basic", "telmai-query"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_log_record_carries_a_secret(
    driver: Driver, clock: FakeClock, caplog: pytest.LogCaptureFixture, provider: str
) -> None:
    """Fetch, replay after a refusal, proactive refresh after a retried 5xx, and
    failed renewals whose 503 answers echo the whole request (logged as WARNINGs), with
    the root logger at DEBUG: no record of any logger (authplug, httpx, httpcore,
    urllib3...) carries the password, the client secret, a refresh token or an access
    token, in any spelling (Telmai: the password in the query string, as documented)."""
    caplog.set_level(logging.DEBUG)
    for name in ("authplug", "httpx", "httpcore", "urllib3", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    issued: list[Token] = []
    emulator: EchoingEmulator | EchoingTelmaiEmulator
    auth: BaseAuth
    if provider == "telmai-query":
        emulator = EchoingTelmaiEmulator(password=PASSWORD).start()
        auth = TelmaiAuth(
            **emulator.auth_kwargs(), params_in="query", clock=clock, on_token=issued.append
        )
    else:
        emulator = EchoingEmulator(password=PASSWORD, client_secret=SECRET).start()
        auth = password_auth(
            emulator,
            clock=clock,
            on_token=issued.append,
            client_auth=provider.replace("generic-", "client_secret_"),
        )
    try:
        url = emulator.api_url()
        assert driver.send(auth, "GET", url).status == 200  # the full grant
        emulator.revoke_all()
        assert driver.send(auth, "POST", url, content=b"x").history == 1  # refused, replayed
        clock.advance(3550)
        emulator.fail_next(1)
        assert driver.send(auth, "GET", url).status == 200  # proactive refresh, one retry
        clock.advance(3550)
        emulator.echo, emulator.echo_grant = 4, "refresh_token"
        assert driver.send(auth, "GET", url).status == 200  # refresh fails: token goes on
        clock.advance(2)
        emulator.reject_refresh = True
        emulator.echo, emulator.echo_grant = 4, "password"
        assert driver.send(auth, "GET", url).status == 200  # full grant fails too
        assert emulator.token_calls == {"password": 5, "refresh_token": 8}
    finally:
        emulator.stop()
    secrets = spellings(PASSWORD)
    if provider != "telmai-query":
        secrets |= spellings(SECRET) | {basic_b64(CLIENT_ID, SECRET)}
    assert len(issued) == 3
    for token in issued:
        assert token.refresh_token
        secrets |= {token.access_token, token.refresh_token}
    names = {record.name.split(".")[0] for record in caplog.records}
    assert {"authplug", "httpcore"} <= names
    if driver.logger:
        assert driver.logger in names
    for record in caplog.records:
        for text in record_texts(record):
            for secret in secrets:
                assert secret not in text, (record.name, record.levelname, record.msg)
    failed = [r.getMessage() for r in caplog.records if "renewal failed" in r.getMessage()]
    assert len(failed) == 2
    assert all("***" in message for message in failed)  # the echoes were logged, scrubbed
