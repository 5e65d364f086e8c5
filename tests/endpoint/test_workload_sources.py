"""Workload identity sources against real servers on 127.0.0.1: a rotated Kubernetes token
is picked up with no failed request while 16 threads call an API, and GitHub Actions' OIDC
token endpoint (played by a loopback server) is asked once per token lifetime, with the
request token and the JWT kept out of every message and log line."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from authplug import (
    CredentialsRejectedError,
    OAuth2ClientCredentialsAuth,
    TokenEndpointError,
    TokenResponseError,
)
from authplug.sources import GitHubActionsToken, KubernetesTokenFile
from authplug.testing import LoopbackServer, OAuth2Emulator, Request, Response

joserfc_jwk = pytest.importorskip("joserfc.jwk")
joserfc_jwt = pytest.importorskip("joserfc.jwt")

CLIENT = "workload"
REQUEST_TOKEN = "ghs_request-token-0123456789abcdef"
_serial = itertools.count(1)


@pytest.fixture(scope="module")
def key() -> Any:
    return joserfc_jwk.ECKey.generate_key("P-256")


@pytest.fixture
def emulator(key: Any) -> Iterator[OAuth2Emulator]:
    """An emulator that authenticates the client by assertions signed with ``key`` only:
    each assertion's jti is accepted once, so a stale read fails a token call."""
    with OAuth2Emulator(client_id=CLIENT, client_secret=None) as server:
        server.client_key = dict(key.as_dict(private=False))
        yield server


def signed(key: Any, audience: str, lifetime: int = 300, subject: str = CLIENT) -> str:
    """A workload token as a platform issues it (here with the key the server trusts)."""
    now = int(time.time())
    claims = {
        "iss": subject,
        "sub": subject,
        "aud": audience,
        "jti": f"workload-{next(_serial)}",
        "iat": now,
        "exp": now + lifetime,
    }
    return str(joserfc_jwt.encode({"alg": "ES256"}, claims, key))


def rotate(root: Path, generation: int, token: str) -> Path:
    """Project ``token`` as kubelet does: a new timestamped directory, the ``..data``
    symlink swapped to it atomically, the old directory removed."""
    version = root / f"..2026_12_07_22_{generation:04d}"
    version.mkdir(parents=True)
    (version / "token").write_text(token, encoding="utf-8")
    data = root / "..data"
    previous = data.resolve() if data.exists() else None
    (root / "..data_tmp").symlink_to(version.name)
    os.replace(root / "..data_tmp", data)
    if previous is not None:
        (previous / "token").unlink()
        previous.rmdir()
    link = root / "token"
    if not link.is_symlink():
        link.symlink_to("..data/token")
    return link


def test_a_rotated_file_is_picked_up_with_0_failed_requests(
    emulator: OAuth2Emulator, key: Any, tmp_path: Path
) -> None:
    """16 threads call the API while kubelet rotates the token 5 times and the server
    drops every access token after each rotation: no request fails, and each token call
    sent the token projected at that moment (a stale one would be refused: spent jti)."""
    root = tmp_path / "serviceaccount"
    projected = [signed(key, emulator.token_url)]
    source = KubernetesTokenFile(rotate(root, 0, projected[0]))
    auth = OAuth2ClientCredentialsAuth(
        token_url=emulator.token_url, client_id=CLIENT, client_assertion=source
    )
    stop = threading.Event()
    statuses: list[int] = []
    failures: list[BaseException] = []
    settled = threading.Condition()
    generation = 0
    # The generation each worker had seen when its last finished request started.
    finished = [-1] * 16

    def worker(index: int) -> None:
        with requests.Session() as session:
            while not stop.is_set():
                started = generation
                try:
                    response = session.get(emulator.api_url(), auth=auth, timeout=10)
                    statuses.append(response.status_code)
                except Exception as exc:  # counted: the test's subject is that none happens
                    failures.append(exc)
                with settled:
                    finished[index] = started
                    settled.notify_all()

    def caught_up(seen: int) -> bool:
        return min(finished) >= seen

    main = requests.Session()
    assert main.get(emulator.api_url(), auth=auth, timeout=10).status_code == 200
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    try:
        for rotation in range(1, 6):
            # Every worker has finished a request begun with the current token: no
            # request still carries an older one (a refusal of the token that a refusal's
            # renewal just gave would make the package pause renewals on 401, rightly).
            with settled:
                assert settled.wait_for(functools.partial(caught_up, generation), timeout=60)
            projected.append(signed(key, emulator.token_url))
            rotate(root, rotation, projected[-1])
            emulator.revoke_all()  # the old token is gone: the next request renews
            # This request, or a worker's before it, makes the renewal's token call.
            assert main.get(emulator.api_url(), auth=auth, timeout=10).status_code == 200
            generation = rotation
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        main.close()
        auth.close()
    assert failures == []
    assert len(statuses) >= 16 * 5
    assert set(statuses) == {200}
    sent = [r.form()["client_assertion"] for r in emulator.token_requests]
    assert sent == projected  # one token call per rotation, each with the new token


def test_a_file_source_serves_an_async_client(
    emulator: OAuth2Emulator, key: Any, tmp_path: Path
) -> None:
    """The sources are blocking callables; an asyncio client runs them off its loop and
    gets its token from them like a sync client."""
    root = tmp_path / "serviceaccount"
    auth = OAuth2ClientCredentialsAuth(
        token_url=emulator.token_url,
        client_id=CLIENT,
        client_assertion=KubernetesTokenFile(rotate(root, 0, signed(key, emulator.token_url))),
    )

    async def main() -> list[int]:
        async with httpx.AsyncClient(auth=auth) as client:
            first = (await client.get(emulator.api_url())).status_code
            rotate(root, 1, signed(key, emulator.token_url))
            emulator.revoke_all()
            return [first, (await client.get(emulator.api_url())).status_code]

    assert asyncio.run(main()) == [200, 200]
    assert sum(emulator.token_calls.values()) == 2


class GitHub:
    """GitHub Actions' OIDC token endpoint: a GET with the job's request token as a
    Bearer credential and the audience in the query, answering ``{"value": JWT}``."""

    def __init__(self, key: Any, lifetime: int = 300) -> None:
        self.key = key
        self.lifetime = lifetime
        self.calls = 0
        self.audiences: list[str | None] = []
        self.failures: list[Response] = []
        self.issued: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        with self._lock:
            self.calls += 1
            self.audiences.append(request.args().get("audience"))
            if self.failures:
                return self.failures.pop(0)
        if request.method != "GET" or request.path != "/idtoken":
            return Response.json(404, {"message": "Not Found"})
        if request.args().get("api-version") != "2.0":
            return Response.json(400, {"message": "api-version"})
        if request.headers.get("authorization") != f"Bearer {REQUEST_TOKEN}":
            return Response.json(401, {"message": "Bad credentials"})
        audience = request.args().get("audience") or "https://github.com/octo-org"
        token = signed(self.key, audience, self.lifetime)
        with self._lock:
            self.issued.append(token)
        return Response.json(200, {"count": 1, "value": token})


@pytest.fixture
def github(key: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[GitHub, LoopbackServer]]:
    app = GitHub(key)
    with LoopbackServer(app) as server:
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", f"{server.url}/idtoken?api-version=2.0")
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN)
        yield app, server


def test_github_token_is_kept_until_near_its_expiry(github: tuple[GitHub, LoopbackServer]) -> None:
    """16 threads making 10 calls each make one request; a token within a minute of its exp is
    asked for again at each call."""
    app, _ = github
    source = GitHubActionsToken(audience="api://orders")
    got: list[str] = []

    def calls() -> None:
        got.extend(source() for _ in range(10))

    threads = [threading.Thread(target=calls) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert app.calls == 1
    assert got == app.issued * 160
    assert app.audiences == ["api://orders"]
    claims = joserfc_jwt.decode(got[0], app.key).claims
    assert claims["aud"] == "api://orders"

    app.lifetime = 30  # inside the minute before exp: never kept
    short = GitHubActionsToken()
    assert len({short(), short(), short()}) == 3
    assert app.calls == 4
    assert app.audiences[1:] == [None, None, None]  # GitHub's default audience


def test_github_token_authenticates_a_client(
    github: tuple[GitHub, LoopbackServer], emulator: OAuth2Emulator
) -> None:
    """``client_assertion=GitHubActionsToken(audience=token URL)`` gets a token."""
    app, _ = github
    auth = OAuth2ClientCredentialsAuth(
        token_url=emulator.token_url,
        client_id=CLIENT,
        client_assertion=GitHubActionsToken(audience=emulator.token_url),
    )
    # The server plays one that trusts GitHub's issuer: iss = sub = the client id here.
    with requests.Session() as session:
        assert session.get(emulator.api_url(), auth=auth, timeout=10).status_code == 200
    assert [r.form()["client_assertion"] for r in emulator.token_requests] == app.issued


def test_github_failures_are_retried_once_and_reported_without_secrets(
    github: tuple[GitHub, LoopbackServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A 5xx is retried once; a second 5xx, a refusal, a bad answer or no server is the
    package's error, and no message, log line or traceback local shows the request
    token or a JWT."""
    app, server = github
    here = sys._getframe().f_code
    caplog.set_level(logging.DEBUG)
    source = GitHubActionsToken(audience="api://orders")
    app.lifetime = 30  # never kept: each call asks

    app.failures.append(Response.json(503, {"message": REQUEST_TOKEN}))
    token = source()
    assert app.calls == 2
    assert token == app.issued[-1]

    errors: list[Exception] = []
    app.failures += [Response.json(502, {}), Response.json(500, {"echo": REQUEST_TOKEN})]
    with pytest.raises(TokenEndpointError) as caught:
        source()
    assert caught.value.status_code == 500
    assert caught.value.provider == "github-actions"
    assert app.calls == 4
    errors.append(caught.value)

    app.failures.append(Response.json(401, {"message": "Bad credentials"}))
    with pytest.raises(CredentialsRejectedError, match="id-token: write") as refused:
        source()
    errors.append(refused.value)

    for body in ({"value": "not a jwt"}, {"count": 0}, [REQUEST_TOKEN]):
        app.failures.append(Response.json(200, body))
        with pytest.raises(TokenResponseError, match='without a JWT in "value"') as bad:
            source()
        errors.append(bad.value)

    calls = app.calls
    server.stop()  # nobody listens at the URL now
    with pytest.raises(TokenEndpointError, match="could not be reached") as unreachable:
        source()
    errors.append(unreachable.value)
    assert app.calls == calls

    secrets = [REQUEST_TOKEN, *app.issued]
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [caplog.text, repr(source)]
    for error in errors:  # nor the locals of the package's frames that raised them
        frames = [f for f, _ in traceback.walk_tb(error.__traceback__) if f.f_code != here]
        texts += [repr(value) for frame in frames for value in frame.f_locals.values()]
    assert not [s for s in secrets for t in texts if s in t]
    assert "api-version" not in " ".join(map(str, errors))  # nor the URL's query
    assert "GitHub Actions issued an OIDC token" in caplog.text


def test_github_answer_without_exp_is_never_kept(github: tuple[GitHub, LoopbackServer]) -> None:
    """A token whose exp cannot be read is asked for again at each call."""
    app, _ = github
    unsigned = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln"
    app.failures += [Response.json(200, {"value": unsigned})] * 2
    source = GitHubActionsToken()
    assert [source(), source()] == [unsigned, unsigned]
    assert app.calls == 2
