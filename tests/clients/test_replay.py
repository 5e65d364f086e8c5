"""Replay sends the same body; one-shot streams are not resent; redirects drop the token,
and a redirect answered to the replay is followed with the renewed token."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from authplug.testing import LoopbackServer, OAuth2Emulator, Request, Response

from ..conftest import Driver, password_auth

BODIES: dict[str, dict[str, Any]] = {
    "bytes": {"content": b"\x00\x01binary payload"},
    "str": {"content": "texte accentué"},
    "form": {"data": {"name": "value", "other": "ü"}},
    "json": {"json": {"name": "value", "n": [1, 2, 3]}},
    "multipart": {"data": {"field": "x"}, "files": {"upload": ("a.bin", b"file-bytes" * 100)}},
}


@pytest.mark.parametrize("shape", list(BODIES))
def test_replay_resends_the_same_body(driver: Driver, emulator: OAuth2Emulator, shape: str) -> None:
    """The replayed request carries byte for byte the body of the refused one."""
    auth = password_auth(emulator)
    auth.get_token()
    emulator.revoke_all()
    result = driver.send(auth, "POST", emulator.api_url(), **BODIES[shape])
    assert result.status == 200
    refused, replayed = emulator.api_log
    assert (refused.status, replayed.status) == (401, 200)
    assert refused.body_sha256 == replayed.body_sha256
    assert result.data["body_length"] > 0


def test_rewindable_file_is_sent_again_from_its_start(
    emulator: OAuth2Emulator, tmp_path: Path
) -> None:
    """A file body is sought back to where it stood before the first send.

    requests sends a file from where it stands (here, past a header); httpx declares
    the whole file's length, so it is given the file at its start.
    """
    path = tmp_path / "upload.bin"
    path.write_bytes(b"HEADER" + b"x" * 70_000)
    auth = password_auth(emulator)
    auth.get_token()
    for send, start in (("requests", 6), ("httpx", 0)):
        expected = hashlib.sha256(path.read_bytes()[start:]).hexdigest()
        emulator.revoke_all()
        emulator.reset_counters()
        with path.open("rb") as handle:
            handle.seek(start)
            if send == "requests":
                status = requests.post(
                    emulator.api_url(), data=handle, auth=auth, timeout=10
                ).status_code
            else:
                status = httpx.post(emulator.api_url(), content=handle, auth=auth).status_code
        assert status == 200
        assert [hit.body_sha256 for hit in emulator.api_log] == [expected, expected]


def _chunks() -> Iterator[bytes]:
    yield b"one-"
    yield b"shot"


async def _achunks() -> AsyncIterator[bytes]:
    yield b"one-"
    yield b"shot"


def test_one_shot_stream_is_handed_back(
    driver: Driver, emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture
) -> None:
    """A generator body is not resent: the caller gets the 401, the token is renewed."""
    auth = password_auth(emulator)
    auth.get_token()
    emulator.revoke_all()
    body = _achunks() if driver.is_async else _chunks()
    result = driver.send(auth, "POST", emulator.api_url(), content=body)
    assert result.status == 401
    assert emulator.api_calls == 1
    assert emulator.token_calls == {"password": 1, "refresh_token": 1}
    assert "one-shot stream" in authlog.text
    # The caller's own retry succeeds with the renewed token, without another token call.
    again = _achunks() if driver.is_async else _chunks()
    assert driver.send(auth, "POST", emulator.api_url(), content=again).status == 200
    assert emulator.token_calls.total() == 2


def test_response_streams_stay_streams(emulator: OAuth2Emulator) -> None:
    """httpx's streamed responses are not read on our account."""
    auth = password_auth(emulator)
    with httpx.Client(auth=auth) as client, client.stream("GET", emulator.api_url()) as response:
        assert not response.is_stream_consumed
        assert response.status_code == 200
        assert b"body_sha256" in response.read()


def test_replay_carries_cookies_set_by_the_refusal(emulator: OAuth2Emulator) -> None:
    """requests: a cookie set on the 401 goes out with the replay (as HTTPDigestAuth does)."""
    auth = password_auth(emulator)
    auth.get_token()
    emulator.revoke_all()
    assert requests.get(emulator.api_url(), auth=auth, timeout=10).status_code == 200
    assert [hit.cookie for hit in emulator.api_log] == [None, "seen401=yes"]


@pytest.fixture
def other_origin() -> Iterator[tuple[LoopbackServer, list[Request]]]:
    received: list[Request] = []

    def app(request: Request) -> Response:
        received.append(request)
        return Response.json(401, {"error": "who are you"})

    with LoopbackServer(app) as server:
        yield server, received


def test_redirect_to_another_origin_drops_the_token(
    driver: Driver,
    emulator: OAuth2Emulator,
    other_origin: tuple[LoopbackServer, list[Request]],
) -> None:
    """Following a redirect elsewhere never carries the token, nor triggers a renewal."""
    server, received = other_origin
    target = server.url.replace("127.0.0.1", "localhost") + "/landing"
    auth = password_auth(emulator)
    result = driver.send(
        auth, "GET", emulator.api_url("/redirect"), params={"to": target}, follow_redirects=True
    )
    assert result.status == 401  # the other origin's own answer, handed back
    assert len(received) == 1
    assert "authorization" not in received[0].headers
    assert emulator.token_calls.total() == 1


def test_httpx2_clients(emulator: OAuth2Emulator) -> None:
    """Where httpx2 is installed, the same object is ``auth=`` for its clients too."""
    httpx2 = pytest.importorskip("httpx2")
    auth = password_auth(emulator)
    with httpx2.Client(auth=auth) as client:
        assert client.get(emulator.api_url()).status_code == 200
        emulator.revoke_all()
        response = client.post(emulator.api_url(), content=b"again")
        assert response.status_code == 200
        assert len(response.history) == 1

    async def main() -> int:
        async with httpx2.AsyncClient(auth=auth) as client:
            return (await client.get(emulator.api_url())).status_code

    assert asyncio.run(main()) == 200
    assert emulator.token_calls == {"password": 1, "refresh_token": 1}


class RedirectingEmulator(OAuth2Emulator):
    """The emulator, plus ``/api/landing``, which records the Authorization it received.

    ``/api/redirect?to=/api/landing`` (the emulator's own) answers 302 to a request
    whose token is valid, 401 to any other.
    """

    def __init__(self) -> None:
        super().__init__()
        self.landings: list[str | None] = []

    def _api(self, request: Request, path: str) -> Response:
        if path == "/landing":
            with self._lock:
                self.landings.append(request.headers.get("authorization"))
        return super()._api(request, path)


@pytest.fixture
def redirecting() -> Iterator[RedirectingEmulator]:
    with RedirectingEmulator() as running:
        yield running


def test_redirect_of_the_replay_carries_the_renewed_token(
    driver: Driver, redirecting: RedirectingEmulator
) -> None:
    """A same-origin 302 answered to the replay is followed with the NEW token.

    The first request (token 1, revoked) gets 401; the replay (token 2) gets a 302 to
    ``/api/landing``. requests builds the redirected request from the original
    request object, not the replay: without the fix that object still carries token 1,
    so the landing would first receive the refused token (a 401, and a second replay
    from the hook). httpx follows redirects inside the auth flow, from the replay.
    """
    auth = password_auth(redirecting)
    refused = auth.get_token()
    redirecting.revoke_all()
    result = driver.send(
        auth,
        "GET",
        redirecting.api_url("/redirect"),
        params={"to": "/api/landing"},
        follow_redirects=True,
    )
    renewed = auth.token
    assert renewed is not None
    assert renewed.access_token != refused.access_token
    assert result.status == 200
    assert result.data["path"] == "/api/landing"
    assert redirecting.landings == [f"Bearer {renewed.access_token}"]
    assert [(hit.path, hit.authorization, hit.status) for hit in redirecting.api_log] == [
        ("/api/redirect", f"Bearer {refused.access_token}", 401),
        ("/api/redirect", f"Bearer {renewed.access_token}", 302),
        ("/api/landing", f"Bearer {renewed.access_token}", 200),
    ]
    assert redirecting.token_calls == {"password": 1, "refresh_token": 1}
