"""No password, client secret or token in a repr, a log record, an exception message, or
the locals of the frames of an error (a user's failing ``extra_params`` hook included)."""

from __future__ import annotations

import asyncio
import logging
import os
import traceback
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests

from authplug import (
    AuthError,
    BaseAuth,
    CredentialsRejectedError,
    OAuth2PasswordAuth,
    ProviderSpec,
    Token,
    TokenEndpointError,
)
from authplug.spec import ExtraParams
from authplug.testing import FakeClock, LoopbackServer, OAuth2Emulator, Request, Response

from ..spelled import CLIENT_ID, REFRESH, basic_b64, spellings
from ..spelled import PASSWORD as TRICKY_PASSWORD
from ..spelled import SECRET as TRICKY_SECRET

PASSWORD = "hunter2-correct-horse"
SECRET = "client-secret-battery-staple"


@pytest.fixture
def secret_emulator() -> Iterator[OAuth2Emulator]:
    with OAuth2Emulator(password=PASSWORD, client_secret=SECRET) as emulator:
        yield emulator


def _auth(url: str, password: str = PASSWORD, **options: object) -> OAuth2PasswordAuth:
    return OAuth2PasswordAuth(
        token_url=url,
        username="demo-user",
        password=password,
        client_id="demo-client",
        client_secret=SECRET,
        **options,  # type: ignore[arg-type]
    )


def _secrets(emulator: OAuth2Emulator) -> list[str]:
    """Every credential and token the emulator ever issued or received."""
    found = [PASSWORD, SECRET]
    for request in emulator.token_requests:
        form = request.form()
        found += [v for k, v in form.items() if k in ("refresh_token",)]
    for hit in emulator.api_log:
        if hit.authorization:
            found.append(hit.authorization.split()[1])
    return found


def test_full_flow_leaks_nothing(
    secret_emulator: OAuth2Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Fetch, refresh, replay and a failure, at DEBUG: no secret in any record or repr."""
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    auth = _auth(secret_emulator.token_url, clock=clock)
    with requests.Session() as session:
        session.auth = auth
        session.get(secret_emulator.api_url())
        secret_emulator.revoke_all()
        session.get(secret_emulator.api_url())
    with httpx.Client(auth=auth) as client:
        clock.advance(3590)
        client.get(secret_emulator.api_url())
        client.post(secret_emulator.api_url(), content=iter([b"x"]))
    texts = [record.getMessage() for record in caplog.records]
    texts += [repr(auth), str(auth), repr(auth.token), str(auth.token), repr(auth._manager)]
    texts += [repr(auth._client), repr(auth._client.prepare_grant())]
    secrets = _secrets(secret_emulator)
    assert len(secrets) > 4
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_error_messages_and_locals_leak_nothing(secret_emulator: OAuth2Emulator) -> None:
    """A refused password: message, repr and a traceback with locals hold no secret."""
    auth = _auth(secret_emulator.token_url, password="wrong-" + PASSWORD)
    with pytest.raises(CredentialsRejectedError) as info:
        auth.get_token()
    rendered = "".join(
        traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
    )
    for text in (str(info.value), repr(info.value), rendered):
        assert PASSWORD not in text
        assert SECRET not in text


def test_echoed_secrets_are_scrubbed() -> None:
    """A provider that echoes the password or refresh token in its error gets scrubbed."""

    def app(request: Request) -> Response:
        form = request.form()
        if "refresh_token" in form:  # a 5xx is not a refusal: it reaches the caller
            return Response.json(503, {"error": "down", "error_description": form["refresh_token"]})
        echoed = form.get("password", "")
        return Response.json(400, {"error": "invalid_grant", "error_description": f"bad {echoed}"})

    with LoopbackServer(app) as server:
        auth = _auth(server.url + "/token")
        with pytest.raises(AuthError) as info:
            auth.get_token()
        assert PASSWORD not in str(info.value)
        assert "bad ***" in str(info.value)
        refresh = "refresh-token-value-123456"
        seeded = _auth(
            server.url + "/token",
            token={"access_token": "a" * 20, "refresh_token": refresh, "expires_at": 0},
            retries=0,
        )
        with pytest.raises(AuthError) as info:
            asyncio.run(seeded.aget_token())
        assert info.value.status_code == 503
        assert refresh not in str(info.value)
        assert str(info.value) == "oauth2: HTTP 503: down: ***"


def test_token_repr_shows_four_characters_at_most() -> None:
    """Token reprs show the last four characters of long tokens and nothing of short ones."""
    from authplug import Token

    token = Token(
        access_token="A" * 30 + "wxyz",
        refresh_token="R" * 30 + "9876",
        extra={"id_token": "header.payload.signature"},
    )
    text = repr(token)
    assert "…wxyz" in text
    assert "A" * 5 not in text
    assert "signature" not in text
    assert "secret" not in repr(Token(access_token="secret"))


def test_keys_and_assertions_leak_nothing_from_locals() -> None:
    """A refused ``client_secret_jwt`` call and a refused revocation: no secret, key,
    assertion or refresh token in a message or a traceback's locals."""
    jwk = pytest.importorskip("joserfc.jwk")
    hmac_secret = "hmac-" + SECRET * 2
    sent: list[str] = []

    def app(request: Request) -> Response:
        sent.extend(v for k, v in request.form().items() if k in ("client_assertion", "token"))
        return Response.json(401, {"error": "invalid_client"})

    key = jwk.RSAKey.generate_key(2048)
    refresh = "refresh-token-value-7890123456"
    with LoopbackServer(app) as server:
        by_secret = OAuth2PasswordAuth(
            token_url=server.url + "/token",
            username="u",
            password=PASSWORD,
            client_id="c",
            client_secret=hmac_secret,
            client_auth="client_secret_jwt",
        )
        by_key = OAuth2PasswordAuth(
            token_url=server.url + "/token",
            revocation_url=server.url + "/revoke",
            username="u",
            password=PASSWORD,
            client_id="c",
            private_key=key.as_dict(private=True),
            token={"access_token": "a" * 20, "refresh_token": refresh},
        )
        errors = []
        for call in (by_secret.get_token, by_key.revoke):
            with pytest.raises(CredentialsRejectedError) as info:
                call()
            tb = info.value.__traceback__
            assert tb is not None
            errors.append(info.value.with_traceback(tb.tb_next))  # from the package's frames
    assert len(sent) == 3  # two assertions and the refresh token, all on the wire
    private = key.as_dict(private=True)
    secrets = [*sent, hmac_secret, PASSWORD, private["d"], private["p"], refresh]
    for error in errors:
        rendered = "".join(
            traceback.TracebackException.from_exception(error, capture_locals=True).format()
        )
        # the package's frames, locals and all, are there
        # (the token brain's: manager.py for a token, explicit.py for a revocation)
        assert os.path.join("authplug", "_renew", "") in rendered
        for text in (str(error), repr(error), rendered, repr(by_key), repr(by_key.options)):
            for secret in secrets:
                assert secret not in text


class HookFailed(RuntimeError):
    """What the user's extra_params hook raises."""


def _shows(value: object) -> list[str]:
    """The repr and str of ``value``; one that fails (a half-built object) shows nothing."""
    texts = []
    for show in (repr, str):
        try:
            texts.append(show(value))
        except Exception:  # a half-built object may fail to show itself
            texts.append("")
    return texts


def frame_locals(exc: BaseException) -> list[tuple[str, str]]:
    """(where, str and repr) of every local of every frame of ``exc`` and its chain,
    taken now (the test's own frame is among them and still running)."""
    shown: list[tuple[str, str]] = []
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            for name, value in tb.tb_frame.f_locals.items():
                where = f"{Path(code.co_filename).name}:{code.co_name}:{name}"
                shown += [(where, text) for text in _shows(value)]
            tb = tb.tb_next
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return shown


def obtain(auth: BaseAuth, mode: str) -> Token:
    """A token through the sync or the async path."""
    return auth.get_token() if mode == "sync" else asyncio.run(auth.aget_token())


def hooked_auth(hook: ExtraParams, client_auth: str, *, seeded: bool) -> OAuth2PasswordAuth:
    """An auth whose spec runs ``hook``; ``seeded``: it holds an expired token with a
    refresh token. Built here so that no frame of the test itself holds a secret."""
    token = {"access_token": "a" * 24, "refresh_token": REFRESH, "expires_at": 0}
    return OAuth2PasswordAuth(
        token_url="http://127.0.0.1:9/token",  # never reached: the hook fails first
        username="demo-user",
        password=TRICKY_PASSWORD,
        client_id=CLIENT_ID,
        client_secret=TRICKY_SECRET,
        client_auth=client_auth,
        spec=ProviderSpec(name="oauth2", extra_params=hook),
        token=token if seeded else None,
    )


@pytest.mark.parametrize("grant", ["password", "refresh_token"])
@pytest.mark.parametrize("client_auth", ["client_secret_post", "client_secret_basic"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_failing_hook_is_wrapped_and_frames_hold_no_secret(
    mode: str, client_auth: str, grant: str
) -> None:
    """A user's extra_params hook that raises: TokenEndpointError raised from the
    hook's exception, and no local of any frame in the chain shows the password, the
    client secret or the refresh token (str or repr, in any spelling)."""
    raised: list[HookFailed] = []

    def hook(grant_type: str) -> dict[str, str]:
        error = HookFailed(f"hook failed for {grant_type}")
        raised.append(error)
        raise error

    auth = hooked_auth(hook, client_auth, seeded=grant == "refresh_token")
    with pytest.raises(TokenEndpointError) as info:
        obtain(auth, mode)
    error = info.value
    shown = frame_locals(error)
    assert len(raised) == 1
    assert error.__cause__ is raised[0]
    assert f"HookFailed: hook failed for {grant}" in str(error)
    forbidden = (
        spellings(TRICKY_PASSWORD)
        | spellings(TRICKY_SECRET)
        | spellings(REFRESH)
        | {basic_b64(CLIENT_ID, TRICKY_SECRET)}
    )
    for where, text in shown:
        for secret in forbidden:
            assert secret not in text, (where, secret)
    frames = {where.rsplit(":", 1)[0] for where, _ in shown}
    # The hook's own frame, Authlib's preparing client and authplug's encoder were seen.
    seen = {"test_secrets.py:hook", "authlib.py:_authenticate", "authlib.py:_spec_encoded"}
    assert seen <= frames, frames
