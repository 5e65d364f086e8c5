"""DPoP across redirect hops, and nonces kept by the server that gave them, on every client.

The emulator's DPoP mode is strict (:mod:`authplug.testing._dpop`): a proof whose ``htm``
or ``htu`` is not its request's, or whose ``jti`` was seen before, is refused. httpx
applies the auth once and copies the first hop's headers to every redirect hop
(``Client._build_redirect_request``); its hops get their proofs from httpcore's trace,
and through a transport that does not call it, a refused hop is sent once more with its
own proof.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from authplug.testing import DPoPVerifier, LoopbackServer, OAuth2Emulator, Request, Response

from ..conftest import Driver, password_auth

pytest.importorskip("joserfc")


def _claims(proof: str) -> dict[str, Any]:
    payload = proof.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _api_requests(emulator: OAuth2Emulator) -> list[Request]:
    return [entry.request for entry in emulator.journal if entry.kind == "api"]


@pytest.fixture
def strict() -> Iterator[OAuth2Emulator]:
    with OAuth2Emulator() as emulator:
        emulator.dpop = True
        yield emulator


@pytest.fixture
def bounce() -> Iterator[tuple[LoopbackServer, list[Request]]]:
    """Another origin: records what it receives and redirects to ``?to=`` (if given)."""
    received: list[Request] = []

    def app(request: Request) -> Response:
        received.append(request)
        target = request.args().get("to")
        if target is None:
            return Response.json(200, {"ok": True})
        return Response(302, b"", {"Location": target})

    with LoopbackServer(app) as server:
        yield server, received


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_each_redirect_hop_carries_a_proof_of_its_own(
    driver: Driver, strict: OAuth2Emulator, method: str
) -> None:
    """A same-origin redirect hop carries the token with a fresh proof naming its own
    method and URL: no token call, no refusal."""
    auth = password_auth(strict, dpop=True)
    url = strict.api_url("/redirect")
    result = driver.send(
        auth, method, url, params={"to": "/api/items/"}, content=b"x", follow_redirects=True
    )
    assert result.status == 200
    assert result.data["path"] == "/api/items/"
    assert strict.token_calls == {"password": 1}
    hits = _api_requests(strict)
    statuses = [hit.status for hit in strict.api_log]
    assert statuses == [302, 200]
    landing = hits[-1]
    claims = _claims(landing.headers["dpop"])
    # A 302 turns a POST into a GET, and the proof says so.
    assert (landing.method, claims["htm"]) == ("GET", "GET")
    assert claims["htu"] == strict.api_url("/items/")
    jtis = [_claims(hit.headers["dpop"])["jti"] for hit in hits]
    assert len(set(jtis)) == len(jtis) == 2


def test_a_redirect_to_another_origin_carries_no_proof(
    driver: Driver, strict: OAuth2Emulator, bounce: tuple[LoopbackServer, list[Request]]
) -> None:
    """A hop to another origin carries neither the token nor a proof."""
    server, received = bounce
    auth = password_auth(strict, dpop=True)
    target = server.url.replace("127.0.0.1", "localhost") + "/elsewhere"
    result = driver.send(
        auth, "GET", strict.api_url("/redirect"), params={"to": target}, follow_redirects=True
    )
    assert result.status == 200
    assert len(received) == 1
    assert "authorization" not in received[0].headers
    assert "dpop" not in received[0].headers
    assert strict.token_calls == {"password": 1}


def test_back_on_the_first_origin_no_hop_gets_the_token(
    driver: Driver, emulator: OAuth2Emulator, bounce: tuple[LoopbackServer, list[Request]]
) -> None:
    """Once a redirect chain has left the first origin, a later hop back there gets no
    token (A → B → A), and its refusal is handed back without a renewal."""
    server, received = bounce
    auth = password_auth(emulator)
    back = emulator.api_url()
    away = server.url.replace("127.0.0.1", "localhost") + "/b?to=" + quote(back, safe="")
    result = driver.send(
        auth, "GET", emulator.api_url("/redirect"), params={"to": away}, follow_redirects=True
    )
    assert result.status == 401
    assert len(received) == 1
    assert [(hit.path, hit.authorization is None) for hit in emulator.api_log] == [
        ("/api/redirect", False),
        ("/api/resource", True),
    ]
    assert emulator.token_calls == {"password": 1}


def test_the_proof_never_holds_the_userinfo(driver: Driver, strict: OAuth2Emulator) -> None:
    """``htu`` is the URL without its userinfo: a password in the URL is never signed
    into a proof, and the API accepts the proof."""
    auth = password_auth(strict, dpop=True)
    url = strict.api_url().replace("http://", "http://bob:hunter2-pw@")
    result = driver.send(auth, "GET", url)
    assert result.status == 200
    for hit in _api_requests(strict):
        claims = _claims(hit.headers["dpop"])
        assert claims["htu"] == strict.api_url()
        assert "hunter2" not in json.dumps(claims)
    assert strict.token_calls == {"password": 1}


def test_nonces_stay_with_the_server_that_gave_them(driver: Driver, strict: OAuth2Emulator) -> None:
    """A token endpoint and an API on one origin, each with its nonce: the API never
    sees the token endpoint's nonce, token calls never carry the API's, and a renewal
    costs one token call."""
    strict.api_dpop_verifier = DPoPVerifier()
    strict.dpop_verifier.nonce = "as-nonce-1"
    strict.api_dpop_verifier.nonce = "rs-nonce-1"
    auth = password_auth(strict, dpop=True)
    assert driver.send(auth, "GET", strict.api_url()).status == 200
    assert strict.token_calls == {"password": 2}  # the token endpoint's nonce retry
    assert [hit.status for hit in strict.api_log] == [401, 200]  # the API's

    strict.revoke_all()
    assert driver.send(auth, "GET", strict.api_url()).status == 200
    assert strict.token_calls == {"password": 2, "refresh_token": 1}
    api_nonces = {_claims(hit.headers["dpop"]).get("nonce") for hit in _api_requests(strict)}
    token_nonces = {_claims(r.headers["dpop"]).get("nonce") for r in strict.token_requests}
    assert api_nonces == {None, "rs-nonce-1"}
    assert token_nonces == {None, "as-nonce-1"}


# -- node oidc-provider ----------------------------------------------------------------


def test_a_trailing_slash_redirect_on_oidc_provider(oidc: Any, driver: Driver) -> None:
    """oidc-provider's API behind a trailing-slash redirect (``/api/me/`` → ``/api/me``)
    verifies the landing hop's proof itself: it is that hop's own."""
    from authplug import OAuth2ClientCredentialsAuth

    client = oidc.client("client_credentials", "client_secret_post")
    auth = OAuth2ClientCredentialsAuth(
        token_url=oidc.token_url,
        client_id=client.client_id,
        client_secret=client.client_secret,
        dpop=True,
    )
    oidc.reset_counts()
    before = dict(_stats(oidc))
    result = driver.send(auth, "GET", oidc.api_url + "/", follow_redirects=True)
    assert result.status == 200
    assert auth.options.dpop is not None
    assert result.data["jkt"] == auth.options.dpop.jkt
    after = _stats(oidc)
    assert after["accepted"] - before["accepted"] == 1
    assert after["refused"] - before["refused"] == 0
    assert oidc.token_calls() == {"client_credentials": 1}


def _stats(server: Any) -> dict[str, int]:
    return dict(server.http.get(server.test_url + "/dpop").json())


# -- niquests: a sync Session inside an AsyncSession --------------------------------------


def test_a_sync_niquests_session_inside_an_async_session_hook(
    emulator: OAuth2Emulator,
) -> None:
    """A sync ``niquests.Session`` used inside a hook an ``AsyncSession`` runs is a sync
    session: its request carries the token (no coroutine left unawaited)."""
    import asyncio

    niquests = pytest.importorskip(
        "niquests", reason="niquests runs in its own tox environment: tox -e niquests"
    )
    auth = password_auth(emulator)
    inner: list[int] = []

    def hook(response: Any, **kwargs: Any) -> Any:
        with niquests.Session() as session:
            inner.append(session.get(emulator.api_url(), auth=auth, timeout=10).status_code)
        return response

    async def main() -> int:
        async with niquests.AsyncSession() as session:
            outer = await session.get(
                emulator.api_url("/outer"), auth=auth, hooks={"response": [hook]}, timeout=10
            )
            return int(outer.status_code)

    assert asyncio.run(main()) == 200
    assert inner == [200]
    assert [hit.authorization is not None for hit in emulator.api_log] == [True, True]
    assert emulator.token_calls == {"password": 1}


# -- a retry goes to the refused hop ----------------------------------------------------


class _FlakyLanding(OAuth2Emulator):
    """``/api/flaky`` refuses its first request as a stale token; later ones pass."""

    def __init__(self) -> None:
        super().__init__()
        self.flaky_hits = 0

    def _api(self, request: Request, path: str) -> Response:
        if path == "/flaky":
            with self._lock:
                self.flaky_hits += 1
                first = self.flaky_hits == 1
            if first:
                refusal = Response(401, b"{}", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
                return self._log_api(request, request.headers.get("authorization"), refusal)
        return super()._api(request, path)


def test_a_refused_redirect_hop_is_replayed_itself(driver: Driver) -> None:
    """A redirect hop refused for a stale token is replayed with the renewed token, and
    the hops before it are not sent again (httpx used to start over from the first)."""
    with _FlakyLanding() as emulator:
        auth = password_auth(emulator)
        result = driver.send(
            auth,
            "GET",
            emulator.api_url("/redirect"),
            params={"to": "/api/flaky"},
            follow_redirects=True,
        )
        assert result.status == 200
        assert [(hit.path, hit.status) for hit in emulator.api_log] == [
            ("/api/redirect", 302),
            ("/api/flaky", 401),
            ("/api/flaky", 200),
        ]
        assert emulator.token_calls == {"password": 1, "refresh_token": 1}


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("http://a.test/x", "http://a.test/y"),
        ("http://a.test/x", "http://a.test:80/y"),
        ("http://a.test:80/x", "https://a.test/y"),
        ("http://a.test/x", "https://a.test:443/y"),
        ("http://a.test:8080/x", "https://a.test/y"),
        ("http://a.test/x", "https://a.test:8443/y"),
        ("https://a.test/x", "http://a.test/y"),
        ("https://a.test:443/x", "https://a.test/y"),
        ("https://a.test/x", "https://b.test/y"),
        ("https://A.test/x", "https://a.test/y"),
        ("https://a.test:8443/x", "https://a.test:8444/y"),
        ("http://bob:pw@a.test/x", "http://a.test/y"),
        ("http://a.test/x", "http://a.test:notaport/y"),
    ],
)
def test_the_token_follows_a_requests_redirect_as_requests_decides(old: str, new: str) -> None:
    """The hook's rule for whether the token (and so a proof) follows a redirect is
    requests' own ``Session.should_strip_auth``."""
    import requests

    from authplug._adapters.sessions import _keeps_auth

    try:
        strips = requests.Session().should_strip_auth(old, new)
    except ValueError:  # a port that is not one: requests fails the redirect
        strips = True
    assert _keeps_auth(old, new) is not strips


# -- httpx: the hops' proofs come from httpcore's trace ---------------------------------


def _untraced(httpx_module: Any) -> Any:
    """A transport that hands httpcore no ``trace`` (as a transport of the user's own
    may): the flow's fallback must answer a refused hop."""

    class Untraced(httpx_module.HTTPTransport):  # type: ignore[misc]
        def handle_request(self, request: Any) -> Any:
            request.extensions = {k: v for k, v in request.extensions.items() if k != "trace"}
            return super().handle_request(request)

    return Untraced()


@pytest.mark.parametrize("module", ["httpx", "httpx2"])
def test_httpx_without_a_trace_sends_a_refused_hop_again_with_its_own_proof(
    strict: OAuth2Emulator, module: str
) -> None:
    """Through a transport that never calls httpcore's trace, a redirect hop refused for
    the first hop's proof is sent once more with a proof of its own: no token call."""
    httpx_module = pytest.importorskip(module)
    auth = password_auth(strict, dpop=True)
    with httpx_module.Client(auth=auth, transport=_untraced(httpx_module)) as client:
        response = client.get(
            strict.api_url("/redirect"), params={"to": "/api/items/"}, follow_redirects=True
        )
    assert response.status_code == 200
    assert [hit.status for hit in strict.api_log] == [302, 401, 200]
    assert strict.token_calls == {"password": 1}


def test_httpx_calls_the_users_own_trace_too(strict: OAuth2Emulator) -> None:
    """A ``trace`` extension the caller gave is still called, sync and async, for every
    hop, after the hop's proof is made."""
    import asyncio

    import httpx

    auth = password_auth(strict, dpop=True)
    seen: list[str] = []

    def trace(name: str, info: dict[str, Any]) -> None:
        if name.endswith("send_request_headers.started"):
            seen.append(dict(info["request"].headers)[b"DPoP"].decode())

    async def atrace(name: str, info: dict[str, Any]) -> None:
        trace(name, info)

    url = strict.api_url("/redirect")
    with httpx.Client(auth=auth) as client:
        sync = client.get(
            url, params={"to": "/api/a/"}, follow_redirects=True, extensions={"trace": trace}
        )

    async def main() -> int:
        async with httpx.AsyncClient(auth=auth) as client:
            response = await client.get(
                url, params={"to": "/api/b/"}, follow_redirects=True, extensions={"trace": atrace}
            )
            return response.status_code

    assert (sync.status_code, asyncio.run(main())) == (200, 200)
    assert len(seen) == 4
    sent = [hit.headers["dpop"] for hit in _api_requests(strict)]
    assert seen == sent
    assert len({_claims(proof)["jti"] for proof in seen}) == 4


@pytest.mark.parametrize("module", ["httpx", "httpx2"])
def test_httpx_renews_a_redirect_hop_refused_with_its_own_proof_without_resending_it(
    module: str,
) -> None:
    """A redirect hop that carried a proof of its own (httpcore's trace) and was refused
    is not sent again with the same token: it is renewed and replayed once."""
    httpx_module = pytest.importorskip(module)
    with _FlakyLanding() as emulator:
        emulator.dpop = True
        auth = password_auth(emulator, dpop=True)
        with httpx_module.Client(auth=auth) as client:
            response = client.get(
                emulator.api_url("/redirect"), params={"to": "/api/flaky"}, follow_redirects=True
            )
        assert response.status_code == 200
        assert [(hit.path, hit.status) for hit in emulator.api_log] == [
            ("/api/redirect", 302),
            ("/api/flaky", 401),
            ("/api/flaky", 200),
        ]
        assert emulator.token_calls == {"password": 1, "refresh_token": 1}
