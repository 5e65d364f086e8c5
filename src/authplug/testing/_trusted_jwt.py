"""The emulators' check of JWTs signed by issuers they trust (RFC 7523 §3, RFC 7519).

A JWT presented as an authorization grant (``jwt-bearer``) or as a token exchange's
subject or actor token is accepted only when its ``iss`` is a trusted issuer, it is signed
by one of that issuer's public keys with an asymmetric algorithm (``none`` and the HMAC
ones are refused: a trusted issuer shares no secret), its ``exp`` is a number in the
future, its ``nbf`` and ``iat`` (when present) are not in the future, and it has a
``sub``. The grant's further checks (``aud``, ``jti`` replay) are
:meth:`TrustedIssuers.check_grant`'s. Times are read on the emulator's clock. Needs
joserfc (``authplug[testing]``).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._clock import Clock

__all__ = ["ASYMMETRIC", "JWTRefused", "TrustedIssuers", "VerifiedJWT"]

#: The signature algorithms a trusted issuer's JWT may use.
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}
    | {"EdDSA", "Ed25519", "Ed448"}
)
LEEWAY = 5.0  # seconds of clock skew forgiven on nbf and iat, never on exp


class JWTRefused(Exception):
    """A JWT that is not valid; the message says why (and never holds the JWT)."""


@dataclass(frozen=True, slots=True)
class VerifiedJWT:
    """The claims of a JWT whose signature and times were checked.

    Attributes:
        issuer: its ``iss``.
        subject: its ``sub``.
        expires_at: its ``exp``, in epoch seconds.
        claims: all its claims.
    """

    issuer: str
    subject: str
    expires_at: float
    claims: Mapping[str, Any]


def _key_set(keys: Mapping[str, Any]) -> list[Any]:
    """The joserfc keys of a JWKS (``{"keys": [...]}``) or of one JWK."""
    from joserfc.jwk import import_key

    members = keys.get("keys", [keys])
    return [import_key(dict(member)) for member in members]


def _unb64(part: str) -> bytes:
    """A base64url part of a compact JWS, decoded (no padding is sent)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", part):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _signed_by(
    keys: list[Any], alg: str, kid: object, signing_input: bytes, signature: bytes
) -> bool:
    """Whether one of ``keys`` (those with the header's ``kid``, when it names one) made
    ``signature``. The algorithm is called directly: joserfc's registry would warn about
    "EdDSA" (RFC 9864), which a strict server still accepts."""
    from joserfc.jws import JWSRegistry

    model = JWSRegistry.algorithms[alg]
    for key in keys:
        if key.key_type != model.key_type or (kid is not None and key.kid != kid):
            continue
        try:
            if model.verify(signing_input, signature, key):
                return True
        except Exception:  # noqa: S112  (a key of the wrong curve or size: try the next)
            continue
    return False


class TrustedIssuers:
    """The issuers whose JWTs an emulator accepts, each with its public keys.

    Args:
        issuers: each trusted ``iss`` with its public keys, as a JWKS
            (``{"keys": [...]}``) or one JWK; private members are ignored.
        clock: where the time is read (the emulator's).
    """

    def __init__(self, issuers: Mapping[str, Mapping[str, Any]], clock: Clock) -> None:
        self._keys = {iss: _key_set(keys) for iss, keys in issuers.items()}
        self._clock = clock
        self._lock = threading.Lock()
        self._spent: dict[str, float] = {}  # "iss jti" -> its exp: kept until then

    def __repr__(self) -> str:
        return f"TrustedIssuers({sorted(self._keys)!r})"

    def trust(self, issuer: str, keys: Mapping[str, Any]) -> None:
        """Trust ``issuer`` from now on, with these public keys (a JWKS or one JWK),
        in place of any it had."""
        key_set = _key_set(keys)
        with self._lock:
            self._keys[issuer] = key_set

    def verify(self, token: str) -> VerifiedJWT:
        """Check a JWT's issuer, signature, ``sub`` and times.

        Args:
            token: the compact JWT.

        Returns:
            Its checked claims.

        Raises:
            JWTRefused: when any check fails; the message names which.
        """
        parts = token.split(".")
        try:
            if len(parts) != 3:
                raise ValueError("not three parts")
            header, claims = (json.loads(_unb64(part)) for part in parts[:2])
            signature = _unb64(parts[2])
        except (ValueError, UnicodeError) as exc:
            raise JWTRefused("not a signed JWT") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise JWTRefused("the JWT's header or payload is not a JSON object")
        issuer, alg = claims.get("iss"), header.get("alg")
        with self._lock:
            keys = self._keys.get(issuer) if isinstance(issuer, str) else None
        if keys is None:
            raise JWTRefused("the JWT's iss is not a trusted issuer")
        if alg not in ASYMMETRIC:
            raise JWTRefused(f"the JWT's alg is not one of {sorted(ASYMMETRIC)}")
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
        if not _signed_by(keys, str(alg), header.get("kid"), signing_input, signature):
            raise JWTRefused("the JWT's signature is not by a key of its issuer")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise JWTRefused("the JWT has no sub")
        return VerifiedJWT(str(issuer), subject, self._check_times(claims), claims)

    def _check_times(self, claims: Mapping[str, Any]) -> float:
        """The JWT's ``exp``, once ``exp``, ``nbf`` and ``iat`` were found sane."""
        now = self._clock.time()
        times = {name: claims.get(name) for name in ("exp", "nbf", "iat")}
        for name, value in times.items():
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not number:
                raise JWTRefused(f"the JWT's {name} is not a number")
        exp, nbf, iat = times["exp"], times["nbf"], times["iat"]
        if exp is None:
            raise JWTRefused("the JWT has no exp")
        if now >= exp:
            raise JWTRefused("the JWT expired")
        if nbf is not None and nbf > now + LEEWAY:
            raise JWTRefused("the JWT is not valid yet (nbf)")
        if iat is not None and (iat > now + LEEWAY or iat > exp):
            raise JWTRefused("the JWT's iat is in the future")
        return float(exp)

    def check_grant(self, token: str, audiences: set[str], *, refuse_replay: bool) -> VerifiedJWT:
        """Check a JWT authorization grant (RFC 7523 §2.1, §3).

        Besides :meth:`verify`: its ``aud`` must name one of ``audiences``, and a ``jti``
        seen before (until its ``exp``) is a replay.

        Args:
            token: the ``assertion``.
            audiences: the values that identify this server (token URL, issuer).
            refuse_replay: whether a ``jti`` may be presented only once.

        Returns:
            Its checked claims.

        Raises:
            JWTRefused: when any check fails; the message names which.
        """
        verified = self.verify(token)
        aud = verified.claims.get("aud")
        named = set(aud) if isinstance(aud, list) else {aud}
        if not audiences & named:
            raise JWTRefused("the JWT's aud does not name this server's token endpoint")
        jti = verified.claims.get("jti")
        if jti is not None and not isinstance(jti, str):
            raise JWTRefused("the JWT's jti is not a string")
        if jti is not None and refuse_replay:
            key = f"{verified.issuer} {jti}"
            now = self._clock.time()
            with self._lock:
                self._spent = {k: exp for k, exp in self._spent.items() if exp > now}
                replayed = key in self._spent
                self._spent[key] = verified.expires_at
            if replayed:
                raise JWTRefused("the JWT's jti was used already (a replay)")
        return verified
