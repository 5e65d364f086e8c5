"""The emulators' client assertion check (RFC 7523 §3), as strict as a server must be.

An assertion is refused unless it is a JWT signed by the client's key (its public JWK, or
HMAC with its secret for ``HS*``), whose ``iss`` and ``sub`` are the client id, whose
``aud`` names one of the server's URLs, whose ``exp`` is in the future and at most 10
minutes away, and whose ``jti`` was never seen. Needs joserfc (``authplug[testing]``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["AssertionVerifier"]

MAX_LIFETIME = 600.0  # seconds an assertion's exp may lie ahead


class AssertionVerifier:
    """Checks client assertions; remembers every ``jti`` of a validly signed one."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def check(
        self,
        assertion: str,
        *,
        client_id: str | None,
        client_secret: str | None,
        client_key: dict[str, Any] | None,
        audiences: set[str],
    ) -> bool:
        """Whether ``assertion`` authenticates ``client_id`` (RFC 7523 §3).

        Args:
            assertion: the ``client_assertion`` parameter.
            client_id: the client the server knows (None: no assertion passes).
            client_secret: the key of ``HS*`` assertions (None: the empty key).
            client_key: the client's public JWK for the other algorithms.
            audiences: the URLs an ``aud`` may name.

        Returns:
            True when it is valid; a validly signed assertion's ``jti`` is spent
            either way.
        """
        from joserfc import jws, jwt
        from joserfc.jwk import OctKey, import_key

        try:
            alg = str(jws.extract_compact(assertion.encode()).headers().get("alg", ""))
            if alg.startswith("HS"):
                key: Any = OctKey.import_key(client_secret or "")
            else:
                key = import_key(client_key or {})
            claims = jwt.decode(assertion, key, algorithms=[alg]).claims
        except Exception:  # a bad signature, a bad key, not a JWT: all the same answer
            return False
        now = time.time()
        aud = claims.get("aud")
        named = (
            set(aud) if isinstance(aud, list) and all(isinstance(a, str) for a in aud) else {aud}
        )
        with self._lock:
            seen = claims.get("jti") in self._seen
            if isinstance(claims.get("jti"), str):
                self._seen.add(claims["jti"])
        return (
            claims.get("iss") == claims.get("sub") == client_id is not None
            and bool(audiences & named)
            and isinstance(claims.get("exp"), int)
            and now < claims["exp"] <= now + MAX_LIFETIME
            and isinstance(claims.get("jti"), str)
            and not seen
        )
