"""Siblings: one credential, many audiences. The same sibling comes back for the same
value; each asks for its own resource, audience or scope and has its own token and cache
key; they share the transport and the cache, and close with their parent."""

from __future__ import annotations

from pathlib import Path

import pytest

from authplug import ConfigurationError, FileTokenCache, OAuth2ClientCredentialsAuth
from authplug.testing import OAuth2Emulator


def _auth(emulator: OAuth2Emulator, **options: object) -> OAuth2ClientCredentialsAuth:
    return OAuth2ClientCredentialsAuth(
        token_url=emulator.token_url,
        client_id=emulator.client_id or "",
        client_secret=emulator.client_secret,
        **options,
    )


def test_each_sibling_asks_for_its_own_and_shares_the_rest(
    emulator: OAuth2Emulator, tmp_path: Path
) -> None:
    cache = FileTokenCache(tmp_path / "tokens")
    auth = _auth(emulator, cache=cache)
    orders = auth.for_resource("https://orders.example.com")
    billing = auth.for_audience("billing")
    reports = auth.with_scope(["reports:read", "reports:list"])
    assert auth.for_resource("https://orders.example.com") is orders
    tokens = [s.get_token().access_token for s in (auth, orders, billing, reports)]
    assert len(set(tokens)) == 4
    sent = [r.form() for r in emulator.token_requests]
    assert sent[1]["resource"] == "https://orders.example.com"
    assert sent[2]["audience"] == "billing"
    assert sent[3]["scope"] == "reports:read reports:list"
    assert reports.scope == "reports:read reports:list"
    keys = {s._manager._key for s in (auth, orders, billing, reports)}
    assert len(keys) == 4
    assert orders._client.transport is auth._client.transport
    assert orders.options.cache is cache
    # A later object with the same credentials and resource finds the sibling's token.
    again = _auth(emulator, cache=FileTokenCache(tmp_path / "tokens"))
    assert again.for_resource("https://orders.example.com").get_token().access_token == tokens[1]
    assert emulator.token_calls["client_credentials"] == 4


def test_siblings_close_with_their_parent(emulator: OAuth2Emulator) -> None:
    auth = _auth(emulator)
    orders = auth.for_resource("https://orders.example.com")
    orders.get_token()
    auth.close()
    assert orders._manager._closed


def test_a_wrong_value_is_a_configuration_error(emulator: OAuth2Emulator) -> None:
    auth = _auth(emulator)
    with pytest.raises(ConfigurationError):
        auth.for_resource("not a uri#frag")
    with pytest.raises(ConfigurationError):
        auth.for_audience("")
