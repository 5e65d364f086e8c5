"""The emulator's protected resource (the API) and the records of what it received.

The API, any path under ``api_url()``, accepts the tokens issued while they are valid and
not revoked (a DPoP-bound token only with a valid proof by its key), and answers JSON;
``/api/deny`` answers 401 whatever the token, ``/api/redirect?to=URL`` a redirect.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._server import Request, Response

if TYPE_CHECKING:
    from .._clock import Clock
    from ._dpop import DPoPVerifier

__all__ = ["ApiHit", "JournalEntry", "ResourceServer"]


@dataclass(frozen=True, slots=True)
class ApiHit:
    """One request the protected resource received.

    Attributes:
        method: the HTTP method.
        path: the path, as received.
        authorization: the ``Authorization`` header, or None.
        body_sha256: the SHA-256 of the body, in hex.
        status: the status the API answered.
        cookie: the ``Cookie`` header, or None.
    """

    method: str
    path: str
    authorization: str | None
    body_sha256: str
    status: int
    cookie: str | None = None


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One request the emulator answered, token endpoint or API, in arrival order.

    Attributes:
        kind: ``"token"`` or ``"api"``.
        request: what the emulator received.
        status: the status it answered.
        issued: the access token a token call issued, or None.
    """

    kind: str  # "token" or "api"
    request: Request
    status: int
    issued: str | None = None  # the access token a token call issued


@dataclass(slots=True)
class _Issued:
    expires: float | None  # server monotonic time
    revoked: bool = False
    jkt: str | None = None  # the DPoP key it is bound to
    sub: str | None = None  # whom it was issued for
    aud: tuple[str, ...] = ()  # the audiences and resources it was issued for
    scope: str | None = None
    act: str | None = None  # the subject of the actor token of an exchange


def _grant_of(issued: _Issued) -> dict[str, object]:
    """What ``issued`` was issued for: ``sub``, ``act``, ``aud`` and ``scope``."""
    return {"sub": issued.sub, "act": issued.act, "aud": list(issued.aud), "scope": issued.scope}


class ResourceServer:
    """The API: checks the access token (and its DPoP proof) each request carries."""

    if TYPE_CHECKING:
        _lock: threading.Lock
        _access: dict[str, _Issued]
        api_calls: int
        api_log: list[ApiHit]
        journal: list[JournalEntry]
        dpop_verifier: DPoPVerifier
        api_dpop_verifier: DPoPVerifier | None
        clock: Clock

        @property
        def server_url(self) -> str: ...

    def bound_key(self, access: str) -> str | None:
        """The thumbprint of the DPoP key ``access`` is bound to, or None."""
        with self._lock:
            issued = self._access.get(access)
        return issued.jkt if issued is not None else None

    def issued_for(self, access: str) -> dict[str, object] | None:
        """What ``access`` was issued for, as the API answers it: ``sub`` (whom),
        ``act`` (the actor of an exchange), ``aud`` (the audiences and resources asked
        for) and ``scope``; None for a token not issued here."""
        with self._lock:
            issued = self._access.get(access)
        return _grant_of(issued) if issued is not None else None

    def token_valid(self, access: str) -> bool:
        """Whether the API accepts ``access``: issued here, not revoked, not expired."""
        with self._lock:
            issued = self._access.get(access)
        if issued is None or issued.revoked:
            return False
        return issued.expires is None or self.clock.monotonic() < issued.expires

    def _api(self, request: Request, path: str) -> Response:
        header = request.headers.get("authorization")
        scheme, _, access = (header or "").partition(" ")
        bound = self.bound_key(access)
        ok = scheme == "Bearer" and self.token_valid(access) and bound is None
        if scheme == "DPoP" and self.token_valid(access) and bound is not None:
            verifier = self.api_dpop_verifier or self.dpop_verifier
            check = verifier.check(
                request.headers.get("dpop"), request.method, self.server_url + request.path, access
            )
            if check.error is not None or check.jkt != bound:
                refusal = check.refusal(401, verifier.nonce, token_endpoint=False)
                return self._log_api(request, header, refusal)
            ok = True
        if path == "/deny":
            ok = False  # refuses every token: a replay that fails again
        if path == "/redirect" and ok:
            target = request.args().get("to", "/")
            response = Response(302, b"", {"Location": target})
        elif ok:
            with self._lock:
                issued = self._access[access]
            response = Response.json(
                200,
                {
                    "ok": True,
                    "path": request.path,
                    "body_sha256": hashlib.sha256(request.body).hexdigest(),
                    "body_length": len(request.body),
                    # what the token was issued for: a resource server checks these
                    **{k: v for k, v in _grant_of(issued).items() if v},
                },
            )
        else:
            response = Response(
                401,
                json.dumps({"error": "invalid_token"}).encode(),
                {
                    "WWW-Authenticate": 'Bearer error="invalid_token"',
                    "Content-Type": "application/json",
                    "Set-Cookie": "seen401=yes; Path=/",
                },
            )
        return self._log_api(request, header, response)

    def _log_api(self, request: Request, header: str | None, response: Response) -> Response:
        with self._lock:
            self.api_calls += 1
            self.journal.append(JournalEntry("api", request, response.status))
            self.api_log.append(
                ApiHit(
                    request.method,
                    request.path,
                    header,
                    hashlib.sha256(request.body).hexdigest(),
                    response.status,
                    request.headers.get("cookie"),
                )
            )
        return response
