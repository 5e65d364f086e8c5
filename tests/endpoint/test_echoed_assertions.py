"""An endpoint that echoes what it was sent: whatever it echoes (the query, the form body,
the Authorization header) is scrubbed from the error; the assertions authplug signs itself
(``private_key_jwt``, ``client_secret_jwt``) are scrubbed as an assertion given by
``client_assertion=`` is; and a refused or timed-out revocation says what it was and
leaves neither the token nor the assertion in a traceback's locals."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from authplug import (
    AuthError,
    BaseAuth,
    CredentialsRejectedError,
    OAuth2ClientCredentialsAuth,
    OAuth2PasswordAuth,
    ProviderSpec,
    TokenEndpointError,
)
from authplug.testing import LoopbackServer, Request, Response

from ..spelled import CLIENT_ID, PASSWORD, SECRET, basic_b64, spellings

jwk = pytest.importorskip("joserfc.jwk")

HMAC_SECRET = "hmac-client-secret-" * 3
REFRESH = "refresh-token-value-7890123456"
GUARD = 10.0  # how long a stalled endpoint waits at most (a bounded call never waits it)
MODES = ["sync", "async"]


class Echo:
    """An endpoint that answers every request with an error quoting the assertion (and
    the token or refresh token) it was sent; it keeps what it was sent."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.sent: list[str] = []

    def __call__(self, request: Request) -> Response:
        form = request.form()
        quoted = [form[k] for k in ("client_assertion", "refresh_token", "token") if k in form]
        self.sent.extend(quoted)
        words = " ".join(quoted)
        return Response.json(
            self.status, {"error": f"bad_{words}", "error_description": f"refused: {words}"}
        )


def _by_key(url: str, **options: Any) -> BaseAuth:
    key = jwk.ECKey.generate_key("P-256").as_dict(private=True)
    return OAuth2ClientCredentialsAuth(token_url=url, client_id="c", private_key=key, **options)


def _by_secret(url: str, **options: Any) -> BaseAuth:
    return OAuth2ClientCredentialsAuth(
        token_url=url,
        client_id="c",
        client_secret=HMAC_SECRET,
        client_auth="client_secret_jwt",
        **options,
    )


def _by_post(url: str, **options: Any) -> BaseAuth:
    return OAuth2ClientCredentialsAuth(
        token_url=url, client_id="c", client_secret=HMAC_SECRET, **options
    )


def _run(call: Callable[[], Any], acall: Callable[[], Any], mode: str) -> Any:
    return call() if mode == "sync" else asyncio.run(acall())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("make", [_by_key, _by_secret], ids=["private_key_jwt", "secret_jwt"])
def test_a_signed_assertion_echoed_by_the_token_endpoint_is_scrubbed(
    make: Callable[..., BaseAuth], mode: str
) -> None:
    """The grant's error, and a refresh's, show ``***`` where the server quoted the
    assertion signed for that attempt (and the refresh token)."""
    echo = Echo(401)
    with LoopbackServer(echo) as server:
        auth = make(server.url + "/token")
        with pytest.raises(CredentialsRejectedError) as grant:
            _run(auth.get_token, auth.aget_token, mode)
        echo.status = 503  # not a refusal: the refresh's own error reaches the caller
        seeded = make(
            server.url + "/token",
            token={"access_token": "a" * 20, "refresh_token": REFRESH, "expires_at": 0},
            retries=1,
        )
        with pytest.raises(TokenEndpointError) as refresh:
            _run(seeded.get_token, seeded.aget_token, mode)
    assert len(echo.sent) == 5  # an assertion; two attempts of an assertion and a token
    assert str(grant.value) == "oauth2: HTTP 401: bad_***: refused: ***"
    assert str(refresh.value) == "oauth2: HTTP 503: bad_*** ***: refused: *** ***"
    for error in (grant.value, refresh.value):
        for sent in echo.sent:
            assert sent not in f"{error} {error!r}"


def _rendered(error: BaseException) -> str:
    """The traceback with locals from the package's frames (the test's own left out)."""
    tb = error.__traceback__
    assert tb is not None
    return "".join(
        traceback.TracebackException(type(error), error, tb.tb_next, capture_locals=True).format()
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "make",
    [_by_key, _by_secret, _by_post],
    ids=["private_key_jwt", "secret_jwt", "secret_post"],
)
def test_a_refused_revocation_leaves_no_secret_in_message_or_locals(
    make: Callable[..., BaseAuth], mode: str
) -> None:
    """A revocation endpoint that quotes the refresh token and the assertion: the error
    and the locals of every package frame it passed through show neither."""
    echo = Echo(400)
    signed = make is not _by_post
    with LoopbackServer(echo) as server:
        auth = make(
            server.url + "/token",
            revocation_url=server.url + "/revoke",
            token={"access_token": "a" * 20, "refresh_token": REFRESH},
        )
        with pytest.raises(CredentialsRejectedError) as caught:
            _run(auth.revoke, auth.arevoke, mode)
    assert len(echo.sent) == (2 if signed else 1)  # the assertion and the refresh token
    quoted = "*** ***" if signed else "***"
    assert (
        str(caught.value)
        == f"oauth2: HTTP 400: bad_{quoted}: revocation refused: refused: {quoted}"
    )
    rendered = _rendered(caught.value)
    # the frame that got the answer is there, locals and all
    assert os.path.join("_call", "client.py") in rendered
    for sent in echo.sent:
        assert sent not in rendered
        assert sent not in repr(caught.value)


@pytest.mark.parametrize("mode", MODES)
def test_a_revocation_that_times_out_says_revocation(mode: str) -> None:
    """A revocation endpoint that does not answer within ``timeout``: the error names
    the revocation, not a token call, and the token is kept."""
    release = threading.Event()
    calls: list[str] = []

    def stalled(request: Request) -> Response:
        calls.append(request.path)
        release.wait(GUARD)
        return Response(200)

    with LoopbackServer(stalled) as server:
        auth = OAuth2ClientCredentialsAuth(
            token_url=server.url + "/token",
            revocation_url=server.url + "/revoke",
            client_id="c",
            client_secret="s3cret",
            token={"access_token": "a" * 20, "refresh_token": REFRESH},
            timeout=0.2,
            retries=0,
        )
        try:
            with pytest.raises(TokenEndpointError) as caught:
                _run(auth.revoke, auth.arevoke, mode)
        finally:
            release.set()
    message = str(caught.value)
    assert "no answer from the revocation endpoint after 1 attempt(s): the revocation took" in (
        message
    )
    assert "longer than 0.2s" in message
    assert "token call" not in message
    assert calls == ["/revoke"]
    assert auth.token is not None


def test_each_attempt_s_assertion_is_scrubbed() -> None:
    """After retries, the final answer quoting the last attempt's assertion is scrubbed
    (each attempt signs a fresh one)."""
    echo = Echo(503)
    with LoopbackServer(echo) as server:
        auth = _by_key(server.url + "/token", retries=2)
        with pytest.raises(AuthError) as caught:
            auth.get_token()
    assert len(set(echo.sent)) == 3
    for sent in echo.sent:
        assert sent not in str(caught.value)


def _form_values(request: Request) -> list[str]:
    values = list(request.form().values()) + list(request.args().values())
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        values += base64.b64decode(header[6:]).decode().split(":")
    return values


ECHOES: dict[str, tuple[str, str, Callable[[Request], str]]] = {
    # name: (client_auth, params_in, what the endpoint echoes)
    "form-body": ("client_secret_post", "body", lambda r: r.body.decode()),
    "query-string": ("client_secret_post", "query", lambda r: urlencode(r.query, doseq=True)),
    "basic-header": ("client_secret_basic", "body", lambda r: r.headers["authorization"]),
    "basic-decoded": (
        "client_secret_basic",
        "body",
        lambda r: base64.b64decode(r.headers["authorization"][6:]).decode(),
    ),
    "raw-values": ("client_secret_post", "body", lambda r: " ".join(_form_values(r))),
    "percent-encoded": (
        "client_secret_post",
        "query",
        lambda r: " ".join(quote(v, safe="") for v in _form_values(r)),
    ),
}


@pytest.mark.parametrize("echo", list(ECHOES))
def test_echoed_request_is_scrubbed_from_the_error(echo: str) -> None:
    """An endpoint echoing the query, the form body or the Authorization header in
    its error_description: the AuthError's str and repr hold no spelling of the password
    or the client secret (raw, quote_plus, quote, Base64 Basic credentials)."""
    client_auth, params_in, render = ECHOES[echo]
    echoed: list[str] = []

    def app(request: Request) -> Response:
        text = render(request)
        echoed.append(text)
        description = f"echo: {text}"
        return Response.json(400, {"error": "invalid_grant", "error_description": description})

    with LoopbackServer(app) as server:
        auth = OAuth2PasswordAuth(
            token_url=server.url + "/token",
            username="demo-user",
            password=PASSWORD,
            client_id=CLIENT_ID,
            client_secret=SECRET,
            client_auth=client_auth,
            spec=ProviderSpec(name="oauth2", params_in=params_in),  # type: ignore[arg-type]
        )
        with pytest.raises(CredentialsRejectedError) as info:
            auth.get_token()
    (wire,) = echoed
    forbidden = spellings(PASSWORD) | spellings(SECRET) | {basic_b64(CLIENT_ID, SECRET)}
    assert any(s in wire for s in forbidden), wire  # the endpoint did echo a secret
    error = info.value
    assert error.status_code == 400
    assert error.error == "invalid_grant"
    assert error.description.startswith("echo: ")
    assert "***" in error.description
    for text in (str(error), repr(error), error.description):
        for secret in forbidden:
            assert secret not in text, (secret, text)
