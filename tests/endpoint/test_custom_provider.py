"""A sixth provider described by a user in a few lines, as README.rst shows."""

from __future__ import annotations

import json

import httpx
import pytest

from authplug import (
    CredentialsRejectedError,
    OAuth2PasswordAuth,
    ProviderSpec,
    problem_details_error,
)
from authplug.testing import LoopbackServer, Request, Response

ACME = ProviderSpec(
    name="acme",
    grant_type="password",
    body="json",
    param_names={"client_id": "clientId", "grant_type": "grantType"},
    expires_in_field="ttl",
    parse_error=problem_details_error,
)


def acme_server(request: Request) -> Response:
    """A made-up provider: camelCase JSON in, ``ttl`` out, problem details on error."""
    if request.path == "/api/thing":
        ok = request.headers.get("authorization") == "Bearer acme-token-0001"
        return Response.json(200 if ok else 401, {"ok": ok})
    data = json.loads(request.body)
    if data != {
        "grantType": "password",
        "username": "wile",
        "password": "coyote",
        "clientId": "acme-app",
    }:
        return Response.json(401, {"title": "Unauthorized", "detail": "who are you?"})
    return Response.json(200, {"access_token": "acme-token-0001", "ttl": 900})


def test_a_sixth_provider() -> None:
    with LoopbackServer(acme_server) as server:
        auth = OAuth2PasswordAuth(
            spec=ACME,
            token_url=server.url + "/login",
            username="wile",
            password="coyote",
            client_id="acme-app",
        )
        assert httpx.get(server.url + "/api/thing", auth=auth).json() == {"ok": True}
        token = auth.token
        assert token is not None
        assert token.expires_at is not None
        assert token.issued_at is not None
        assert token.expires_at - token.issued_at == 900
        wrong = OAuth2PasswordAuth(
            spec=ACME, token_url=server.url + "/login", username="wile", password="roadrunner"
        )
        with pytest.raises(CredentialsRejectedError) as info:
            wrong.get_token()
        assert str(info.value) == "acme: HTTP 401: Unauthorized: who are you?"
