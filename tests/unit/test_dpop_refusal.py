"""The test kit's DPoP refusal answers (``DPoPCheck.refusal``, RFC 9449 §5 and §7.1)."""

from __future__ import annotations

import json

from authplug.testing._dpop import DPoPCheck


def test_the_token_endpoint_refuses_without_a_challenge() -> None:
    """A token endpoint refusal is a JSON error without WWW-Authenticate."""
    answer = DPoPCheck(None, "invalid_dpop_proof", "htu").refusal(400, None, token_endpoint=True)
    assert answer.status == 400
    assert "WWW-Authenticate" not in answer.headers
    assert json.loads(answer.body) == {"error": "invalid_dpop_proof", "error_description": "htu"}


def test_the_api_refuses_with_a_dpop_challenge() -> None:
    """An API refusal carries a DPoP challenge naming the error."""
    answer = DPoPCheck(None, "invalid_dpop_proof", "ath").refusal(401, None, token_endpoint=False)
    assert answer.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')


def test_a_nonce_goes_only_with_use_dpop_nonce() -> None:
    """The current nonce is handed out with use_dpop_nonce and with no other error."""
    wants = DPoPCheck(None, "use_dpop_nonce", "a nonce is required")
    assert wants.refusal(400, "n1", token_endpoint=True).headers["DPoP-Nonce"] == "n1"
    other = DPoPCheck(None, "invalid_dpop_proof", "jti replayed")
    assert "DPoP-Nonce" not in other.refusal(400, "n1", token_endpoint=True).headers


def test_a_passed_check_by_another_key_reads_as_an_invalid_proof() -> None:
    """A proof that passed but by a key other than the token's is an invalid proof."""
    answer = DPoPCheck("some-jkt").refusal(401, None, token_endpoint=False)
    body = json.loads(answer.body)
    assert body == {"error": "invalid_dpop_proof", "error_description": "another key"}
