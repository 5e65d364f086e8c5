"""The credentials a token is made from (subject and actor tokens, assertions) never show:
not in an error (even one whose server echoes them), its traceback's locals, the log, the
events or a repr; and the options of the two classes are checked at construction."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

import pytest

from authplug import (
    AuthError,
    ConfigurationError,
    OAuth2JWTBearerAuth,
    OAuth2TokenExchangeAuth,
)
from authplug.events import Event
from authplug.testing import LoopbackServer, Request, Response

SUBJECT = "subject-token-value-0123456789"
ACTOR = "actor-token-value-9876543210"
ASSERTION = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVl"


def echoing(request: Request) -> Response:
    """A server that refuses and echoes everything it was sent (some do)."""
    return Response.json(400, {"error": "invalid_grant", "error_description": str(request.form())})


def _rendered(error: BaseException) -> str:
    tb = error.__traceback__
    assert tb is not None
    return "".join(
        traceback.TracebackException.from_exception(
            error.with_traceback(tb.tb_next), capture_locals=True
        ).format()
    )


@pytest.mark.parametrize("kind", ["exchange", "bearer"])
def test_an_echoing_server_shows_no_credential(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="authplug")
    events: list[Event] = []
    with LoopbackServer(echoing) as server:
        auth: Any
        if kind == "exchange":
            auth = OAuth2TokenExchangeAuth(
                token_url=server.url + "/token",
                client_id="c",
                client_secret="client-secret-value",
                subject_token=SUBJECT,
                actor_token=lambda: ACTOR,
                audience="https://orders",
                on_event=events.append,
            )
        else:
            auth = OAuth2JWTBearerAuth(
                token_url=server.url + "/token", assertion=ASSERTION, on_event=events.append
            )
        with pytest.raises(AuthError) as info:
            auth.get_token()
        # The leader's own error, raised in the plans' frames (a caller gets a copy).
        from authplug._renew.renewal import run_renewal

        manager = auth._manager
        with pytest.raises(AuthError) as raw:
            run_renewal(
                manager._renewer.renewal("test", None, "first_use"),
                manager._cache,
                manager._key,
                manager._performer,
            )
    texts = [
        str(info.value),
        repr(info.value),
        _rendered(raw.value),
        caplog.text,
        repr(events),
        repr(auth),
        repr(auth.options),
    ]
    assert "derived.py" in texts[2]  # the plans' frames, locals and all
    for text in texts:
        for secret in (SUBJECT, ACTOR, ASSERTION, "client-secret-value"):
            assert secret not in text
    assert "***" in str(info.value)  # the echo was there, scrubbed


def test_a_subject_file_is_read_at_each_token_call(tmp_path: Path) -> None:
    """A path is a file re-read at each call (rotated projected tokens); a string that is
    not a path is the token itself; a path written like one that does not exist is an
    error naming it."""
    sent: list[str] = []

    def app(request: Request) -> Response:
        sent.append(request.form()["subject_token"])
        return Response.json(200, {"access_token": f"t{len(sent)}" * 8, "expires_in": 60})

    path = tmp_path / "token"
    path.write_text("first-subject\n")
    with LoopbackServer(app) as server:
        auth = OAuth2TokenExchangeAuth(token_url=server.url + "/token", subject_token=str(path))
        auth.get_token()
        path.write_text("second-subject")
        auth._manager.renew_rejected(auth.token)  # the API refused it: a new token call
    assert sent == ["first-subject", "second-subject"]
    with pytest.raises(ConfigurationError, match="subject_token="):
        OAuth2TokenExchangeAuth(
            token_url="https://as.example/token", subject_token=str(tmp_path / "missing")
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subject_token": 42}, "subject_token= takes"),
        ({"subject_token": "x", "subject_token_type": ""}, "subject_token_type="),
        ({"subject_token": "x", "actor_token": "y", "actor_token_type": 3}, "actor_token_type="),
    ],
)
def test_exchange_mistakes_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        OAuth2TokenExchangeAuth(token_url="https://as.example/token", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "one of the two"),
        ({"assertion": "a.b.c", "private_key": "k"}, "one of the two"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----"}, "assertion_issuer="),
    ],
)
def test_jwt_bearer_mistakes_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        OAuth2JWTBearerAuth(token_url="https://as.example/token", **kwargs)


def test_short_token_type_names_are_completed() -> None:
    auth = OAuth2TokenExchangeAuth(
        token_url="https://as.example/token",
        subject_token="x",
        subject_token_type="id_token",
        requested_token_type="jwt",
    )
    derived = auth.options.derived
    assert derived is not None
    assert derived.subject_type == "urn:ietf:params:oauth:token-type:id_token"  # type: ignore[union-attr]
    assert derived.requested_token_type == "urn:ietf:params:oauth:token-type:jwt"  # type: ignore[union-attr]
