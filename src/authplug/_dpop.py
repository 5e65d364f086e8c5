"""DPoP (RFC 9449): proofs of possession of a key, for token calls and API requests.

A :class:`DPoP` holds one private key (the user's, or a fresh ES256 key per auth object)
and the nonces servers asked for. :meth:`DPoP.proof` makes the ``DPoP`` header of one
request: a JWT of ``typ`` ``dpop+jwt`` whose header carries the public key (``jwk``) and
whose claims are a random ``jti``, ``htm``, ``htu`` (the URL without userinfo, query and
fragment), ``iat``, and, when known, ``nonce`` and ``ath`` (the SHA-256 of the access
token, on API requests).

A nonce belongs to the server that gave it (RFC 9449 §8, §9): the authorization
server's (token and revocation calls) and the APIs' are kept apart, each by origin, so
that where one host serves both, neither is shown the other's nonce.

Proofs are made on every API request, so they are built by hand, not by a JOSE library:
the protected header is encoded once per key, the claims are a few bytes of JSON, and
``cryptography`` signs (ECDSA's DER signature converted to JWS's ``r || s``). This module
knows no HTTP client; the adapters call :func:`present`, and the per-request rule
:meth:`DPoP.retry_for_nonce` with the answer's challenge, read once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError
from .token import Token, authorization

if TYPE_CHECKING:
    from ._challenge import Challenge

__all__ = ["DPoP", "htu", "present", "thumbprint"]

_HEADER_SEPARATORS = (",", ":")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 thumbprint of a public JWK (SHA-256, base64url): its ``jkt``."""
    required = {
        "EC": ("crv", "kty", "x", "y"),
        "RSA": ("e", "kty", "n"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[str(jwk["kty"])]}
    canonical = json.dumps(members, separators=_HEADER_SEPARATORS, sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode("utf-8")).digest())


def htu(url: str) -> str:
    """A request URL as a proof names it: no userinfo (a password must not be signed
    into a proof), no query, no fragment (RFC 9449 §4.2)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}".lower()


def access_token_hash(access_token: str) -> str:
    """``ath``: the base64url SHA-256 of the access token (RFC 9449 §4.2)."""
    return _b64(hashlib.sha256(access_token.encode("ascii")).digest())


class DPoP:
    """One DPoP key and the nonces servers gave, by server and origin. Thread-safe.

    Its repr shows the algorithm and the key's thumbprint, never the key.
    """

    __slots__ = (
        "_ath",
        "_header",
        "_lock",
        "_nonces",
        "_server_nonces",
        "_sign",
        "alg",
        "jkt",
        "public_jwk",
    )

    def __init__(self, private_key: Any, alg: str) -> None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        if isinstance(private_key, ec.EllipticCurvePrivateKey) and alg == "ES256":
            if private_key.curve.name != "secp256r1":
                raise ConfigurationError("dpop_key=: ES256 needs a P-256 key")
            numbers = private_key.public_key().public_numbers()
            jwk = {
                "kty": "EC",
                "crv": "P-256",
                "x": _b64(numbers.x.to_bytes(32, "big")),
                "y": _b64(numbers.y.to_bytes(32, "big")),
            }
            algorithm = ec.ECDSA(hashes.SHA256())

            def sign(data: bytes) -> bytes:
                r, s = decode_dss_signature(private_key.sign(data, algorithm))
                return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        elif isinstance(private_key, rsa.RSAPrivateKey) and alg == "RS256":
            numbers_rsa = private_key.public_key().public_numbers()
            size = (numbers_rsa.n.bit_length() + 7) // 8
            jwk = {
                "kty": "RSA",
                "n": _b64(numbers_rsa.n.to_bytes(size, "big")),
                "e": _b64(numbers_rsa.e.to_bytes(3, "big").lstrip(b"\0")),
            }

            def sign(data: bytes) -> bytes:
                return private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())

        elif isinstance(private_key, ed25519.Ed25519PrivateKey) and alg == "Ed25519":
            from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

            raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}

            def sign(data: bytes) -> bytes:
                return private_key.sign(data)

        else:
            raise ConfigurationError(
                f"dpop_key=: a {type(private_key).__name__} cannot sign {alg}: DPoP takes an "
                "EC P-256 key (ES256), an RSA key (RS256) or an Ed25519 key"
            )
        self._sign = sign
        self.alg = alg
        self.public_jwk: dict[str, str] = jwk
        self.jkt = thumbprint(jwk)
        header = {"typ": "dpop+jwt", "alg": alg, "jwk": jwk}
        self._header = _b64(json.dumps(header, separators=_HEADER_SEPARATORS).encode()) + "."
        self._nonces: dict[str, str] = {}  # the APIs', by origin
        self._server_nonces: dict[str, str] = {}  # the authorization server's, by origin
        self._lock = threading.Lock()
        self._ath: tuple[str, str] = ("", "")  # the last access token and its hash

    def __repr__(self) -> str:
        return f"DPoP(alg={self.alg!r}, jkt={self.jkt!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a DPoP key cannot be pickled")

    @classmethod
    def generated(cls) -> DPoP:
        """A fresh ES256 key, held by this object only."""
        from cryptography.hazmat.primitives.asymmetric import ec

        return cls(ec.generate_private_key(ec.SECP256R1()), "ES256")

    @classmethod
    def load(cls, key: object) -> DPoP:
        """The user's key (PEM text, a PEM or JWK file's path, or a JWK dict), signing
        with ES256 (EC P-256), RS256 (RSA) or Ed25519."""
        from ._assertion import SigningKey

        signing = SigningKey.private(key, option="dpop_key")
        default = {"EC": "ES256", "RSA": "RS256", "OKP": "Ed25519"}[signing.kty]
        return cls(signing.cryptography_key(), default)

    # -- nonces ----------------------------------------------------------------

    def observe(self, url: str, nonce: str | None, *, server: bool = False) -> bool:
        """Keep a ``DPoP-Nonce`` an API gave (``server=True``: the authorization server,
        in answer to a token or revocation call); True when it is new."""
        if not nonce or len(nonce) > 1024 or not nonce.isascii():
            return False
        where = origin(url)
        nonces = self._server_nonces if server else self._nonces
        with self._lock:
            if nonces.get(where) == nonce:
                return False
            nonces[where] = nonce
        return True

    def retry_for_nonce(
        self, url: str, status: int, challenge: Challenge, nonce: str | None
    ) -> bool:
        """Keep the nonce of an API's answer; True when the answer is a 401 whose
        challenge asks for a nonce it has just given (RFC 9449 §9): send the request once
        more, with a new proof. Not a renewal: the token stays."""
        fresh = self.observe(url, nonce)
        return fresh and status == 401 and challenge.asks_for_nonce

    # -- proofs ----------------------------------------------------------------

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        """The ``DPoP`` header of one request (a new ``jti`` each time): with
        ``access_token``, for an API (its ``ath`` and that API's nonce); without, for the
        authorization server (its nonce)."""
        claims: dict[str, object] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": htu(url),
            "iat": int(time.time()),
        }
        nonces = self._nonces if access_token is not None else self._server_nonces
        nonce = nonces.get(origin(url)) if nonces else None
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            last, digest = self._ath
            if last != access_token:
                digest = access_token_hash(access_token)
                self._ath = (access_token, digest)
            claims["ath"] = digest
        payload = _b64(json.dumps(claims, separators=_HEADER_SEPARATORS).encode())
        signing_input = self._header + payload
        return signing_input + "." + _b64(self._sign(signing_input.encode("ascii")))


def present(headers: Any, token: Token, dpop: DPoP | None, method: str, url: object) -> None:
    """Put ``token`` on a request's headers (requests', httpx's or aiohttp's mapping):
    ``Authorization``, and for a DPoP-bound token a fresh proof (a replay gets a new
    one: a proof is single-use). ``url`` is made a string only for a proof."""
    headers["Authorization"] = authorization(token)
    if dpop is None:
        return
    if token.dpop_jkt is not None:
        headers["DPoP"] = dpop.proof(method, str(url), token.access_token)
    elif "DPoP" in headers:
        del headers["DPoP"]
