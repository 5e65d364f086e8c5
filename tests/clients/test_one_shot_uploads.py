"""requests-toolbelt's MultipartEncoder is a one-shot body: a refused upload comes back.

Several SDKs stream uploads with ``MultipartEncoder`` (or ``MultipartEncoderMonitor``,
for progress). It reads its parts once and cannot seek back, so after a 401 the
request is not sent again: the caller gets the 401 (no history), one WARNING says the
body is a one-shot stream, and the token is already renewed, so the caller's retry
with a new encoder goes through without a token call. What docs/clients/requests.rst
says, proven on the emulator.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import pytest
import requests

from authplug.testing import OAuth2Emulator, settle

from ..conftest import password_auth

FILE = b"file-bytes" * 1000


def _encoder() -> Any:
    from requests_toolbelt import MultipartEncoder

    return MultipartEncoder(
        fields={"field": "x", "upload": ("a.bin", FILE, "application/octet-stream")},
        boundary="authplug-test-boundary",
    )


def _monitor() -> Any:
    from requests_toolbelt import MultipartEncoderMonitor

    return MultipartEncoderMonitor(_encoder())


@pytest.mark.parametrize("make", [_encoder, _monitor], ids=["encoder", "monitor"])
def test_a_refused_multipart_encoder_upload_is_handed_back(
    emulator: OAuth2Emulator, authlog: pytest.LogCaptureFixture, make: Callable[[], Any]
) -> None:
    """The 401 reaches the caller, the token is renewed, a new encoder goes through."""
    expected = hashlib.sha256(_encoder().to_string()).hexdigest()
    auth = password_auth(emulator)
    refused_token = auth.get_token()
    emulator.revoke_all()
    with requests.Session() as session:
        session.auth = auth
        body = make()
        response = session.post(
            emulator.api_url(),
            data=body,
            headers={"Content-Type": body.content_type},
            timeout=10,
        )
        settle(auth)
        assert response.status_code == 401
        assert response.history == []  # not sent again
        assert [hit.status for hit in emulator.api_log] == [401]
        assert emulator.api_log[0].body_sha256 == expected
        assert emulator.token_calls == {"password": 1, "refresh_token": 1}
        assert auth.token is not None
        assert auth.token.access_token != refused_token.access_token
        warnings = [r.getMessage() for r in authlog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "one-shot stream" in warnings[0]
        # Spent: a second send would declare the length and send nothing.
        assert body.read() == b""

        again = make()
        retry = session.post(
            emulator.api_url(),
            data=again,
            headers={"Content-Type": again.content_type},
            timeout=10,
        )
    assert retry.status_code == 200
    assert retry.json()["body_sha256"] == expected
    assert emulator.token_calls.total() == 2  # the retry needed no token call


def test_niquests_reads_a_multipart_encoder_and_sends_it_again(
    emulator: OAuth2Emulator,
) -> None:
    """niquests reads the encoder into bytes when it prepares the request: the upload is
    sent again byte for byte after the 401."""
    niquests: Any = pytest.importorskip(
        "niquests", reason="niquests runs in its own tox environment: tox -e niquests"
    )
    expected = hashlib.sha256(_encoder().to_string()).hexdigest()
    auth = password_auth(emulator)
    auth.get_token()
    emulator.revoke_all()
    body = _encoder()
    with niquests.Session() as session:
        session.auth = auth
        response = session.post(
            emulator.api_url(),
            data=body,
            headers={"Content-Type": body.content_type},
            timeout=10,
        )
    settle(auth)
    assert (response.status_code, len(response.history)) == (200, 1)
    assert [(hit.status, hit.body_sha256) for hit in emulator.api_log] == [
        (401, expected),
        (200, expected),
    ]
    assert emulator.token_calls == {"password": 1, "refresh_token": 1}
