"""The emulators' DPoP checks (RFC 9449 §4.3), as strict as a server must be.

A proof is refused unless it is a JWT of ``typ`` ``dpop+jwt`` with an asymmetric ``alg``,
signed by the public key in its own ``jwk`` header (which holds no private part), whose
``htm`` and ``htu`` are this request's method and URL (without query and fragment), whose
``iat`` is within a minute of now, whose ``jti`` was never seen, whose ``ath`` is the hash
of the access token it comes with (API requests), and whose ``nonce`` is the current one
when the emulator asks for nonces. Needs joserfc (``authplug[testing]``).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from .._dpop import access_token_hash, thumbprint
from ._server import Response

__all__ = ["DPoPCheck", "DPoPVerifier"]

_ALGS = ("ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA", "Ed25519")
IAT_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class DPoPCheck:
    """The outcome: the key's thumbprint, or the error code to answer with."""

    jkt: str | None
    error: str | None = None  # "invalid_dpop_proof" or "use_dpop_nonce"
    reason: str = ""

    def refusal(self, status: int, nonce: str | None, *, token_endpoint: bool) -> Response:
        """The answer to a request whose proof failed this check (RFC 9449 §5, §7.1).

        Args:
            status: 400 at the token endpoint, 401 at the API.
            nonce: the nonce to hand out with a ``use_dpop_nonce`` error, if any.
            token_endpoint: the token endpoint answers without ``WWW-Authenticate``.

        Returns:
            The JSON error answer; a check that passed but named another key than the
            token's reads as ``invalid_dpop_proof``, "another key".
        """
        headers = {"Content-Type": "application/json"}
        error = self.error or "invalid_dpop_proof"
        reason = self.reason or "another key"
        if error == "use_dpop_nonce" and nonce is not None:
            headers["DPoP-Nonce"] = nonce
        if not token_endpoint:
            headers["WWW-Authenticate"] = f'DPoP error="{error}", algs="ES256 RS256 EdDSA"'
        body = {"error": error, "error_description": reason}
        return Response(status, json.dumps(body).encode(), headers)


class DPoPVerifier:
    """Checks proofs; remembers every ``jti`` it accepted.

    An emulator has one for its token endpoint and API (``dpop_verifier``); giving its
    ``api_dpop_verifier`` another one separates the API's nonces from the token
    endpoint's on the one origin.

    Attributes:
        nonce: when set, every proof must carry it (``use_dpop_nonce`` otherwise).
        accepted: how many proofs it accepted.
    """

    def __init__(self) -> None:
        self.nonce: str | None = None
        self.accepted = 0
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def check(
        self, proof: str | None, method: str, url: str, access_token: str | None = None
    ) -> DPoPCheck:
        """Check one request's proof, as a server must (RFC 9449 §4.3).

        Args:
            proof: the ``DPoP`` header, or None.
            method: the request's method.
            url: the request's URL as the server sees it.
            access_token: the access token the request carries (API requests).

        Returns:
            The key's thumbprint, or the error code to answer with and why.
        """
        from joserfc import jws, jwt
        from joserfc.jwk import import_key

        if not proof:
            return DPoPCheck(None, "invalid_dpop_proof", "no DPoP proof")
        try:
            header = jws.extract_compact(proof.encode()).headers()
            jwk = header.get("jwk")
            if header.get("typ") != "dpop+jwt" or header.get("alg") not in _ALGS:
                return DPoPCheck(None, "invalid_dpop_proof", "typ or alg")
            if not isinstance(jwk, dict) or "d" in jwk:
                return DPoPCheck(None, "invalid_dpop_proof", "jwk")
            claims = jwt.decode(proof, import_key(jwk), algorithms=[header["alg"]]).claims
            jkt = thumbprint(jwk)
        except Exception:
            return DPoPCheck(None, "invalid_dpop_proof", "not a valid signed JWT")
        expected = url.split("?", 1)[0].split("#", 1)[0]
        iat = claims.get("iat")
        checks = {
            "htm": claims.get("htm") == method,
            "htu": claims.get("htu") == expected,
            "iat": isinstance(iat, int) and abs(time.time() - iat) <= IAT_WINDOW,
            "jti": isinstance(claims.get("jti"), str),
            "ath": access_token is None or claims.get("ath") == access_token_hash(access_token),
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            return DPoPCheck(None, "invalid_dpop_proof", ", ".join(failed))
        if self.nonce is not None and claims.get("nonce") != self.nonce:
            return DPoPCheck(None, "use_dpop_nonce", "a nonce is required")
        with self._lock:
            if claims["jti"] in self._seen:
                return DPoPCheck(None, "invalid_dpop_proof", "jti replayed")
            self._seen.add(claims["jti"])
            self.accepted += 1
        return DPoPCheck(jkt)
