"""Credentials made from other credentials: token exchange (RFC 8693) and the JWT bearer
grant (RFC 7523 §2.1).

:class:`OAuth2TokenExchangeAuth` trades a subject token (the caller's, another auth
object's, a Kubernetes service-account token...) for a token for another audience;
:class:`OAuth2JWTBearerAuth` presents a JWT as the grant itself. Both are auth objects
like the others: their tokens are renewed ahead of expiry, off the request path, on 401,
single flight across threads, tasks and processes; the credential they are made from is
obtained afresh at each token call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._option_types import PrivateKeyOption
from .auth import BaseAuth
from .errors import ConfigurationError
from .spec import ProviderSpec

__all__ = ["OAuth2JWTBearerAuth", "OAuth2TokenExchangeAuth", "SubjectToken"]

_EXCHANGE_SPEC = ProviderSpec(
    name="oauth2", grant_type="urn:ietf:params:oauth:grant-type:token-exchange"
)
_BEARER_SPEC = ProviderSpec(name="oauth2", grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer")
_TYPE_PREFIX = "urn:ietf:params:oauth:token-type:"

#: What a subject, actor or assertion may be: another auth object (its current token), a
#: file's path (read again at each token call), a callable (sync or async) returning the
#: token, or the token itself as a string.
SubjectToken = Any


def _token_type(name: str, value: object, default: str) -> str:
    """A token type URI (RFC 8693 §3); a short name (``"jwt"``, ``"access_token"``) is
    completed with the RFC's prefix."""
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name}= must be a token type URI, e.g. {default!r}")
    return value if ":" in value else _TYPE_PREFIX + value


class OAuth2TokenExchangeAuth(BaseAuth):
    """A token made from another (RFC 8693): on behalf of a caller, for another audience.

    Args:
        token_url: the token endpoint; or give ``issuer=`` instead.
        subject_token: what the new token is for: an authplug auth object (its current
            token, renewed by it; the exchanged token never outlives it), the path of a
            file (read again at each token call: a projected token that rotates), a
            callable (sync or async) returning the token, or the token itself.
        subject_token_type: its type (RFC 8693 §3); default ``...:access_token`` for an
            auth object, ``...:jwt`` otherwise. A short name (``"id_token"``) is
            completed with ``urn:ietf:params:oauth:token-type:``.
        actor_token: who acts (delegation), given as ``subject_token`` is.
        actor_token_type: its type (default as ``subject_token_type``).
        requested_token_type: the type of token asked for, when not the server's default.
        audience: the ``audience`` asked for (the service the token is for).
        resource: resource indicators (RFC 8707): one URI or several.
        scope: the scope asked for.
        client_id: the client's identifier, when it authenticates (any client
            authentication of :class:`~authplug.BaseAuth`: ``client_secret=``,
            ``private_key=``, ``client_assertion=``, ``cert=``).
        client_secret: the client's secret.
        **options: any option of :class:`~authplug.BaseAuth`.

    The answer's ``issued_token_type`` is kept on the token
    (``token.extra["issued_token_type"]``).

    Raises:
        ConfigurationError: an argument is wrong or missing.
    """

    def __init__(
        self,
        *,
        subject_token: SubjectToken,
        subject_token_type: str | None = None,
        actor_token: SubjectToken | None = None,
        actor_token_type: str | None = None,
        requested_token_type: str | None = None,
        token_url: str | None = None,
        audience: str | None = None,
        resource: str | Iterable[str] | None = None,
        scope: str | Iterable[str] | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        **options: Any,
    ) -> None:
        from ._call.derived import ACCESS_TOKEN_TYPE, JWT_TYPE, Exchange, TokenInput

        subject = TokenInput(subject_token, "subject_token")
        del subject_token  # a traceback's locals must not show it
        actor = TokenInput(actor_token, "actor_token") if actor_token is not None else None
        del actor_token

        def default_type(source: TokenInput) -> str:
            return ACCESS_TOKEN_TYPE if source.kind == "auth" else JWT_TYPE

        self._derived = Exchange(
            subject=subject,
            subject_type=_token_type(
                "subject_token_type", subject_token_type, default_type(subject)
            ),
            actor=actor,
            actor_type=(
                _token_type("actor_token_type", actor_token_type, default_type(actor))
                if actor is not None
                else None
            ),
            requested_token_type=(
                _token_type("requested_token_type", requested_token_type, "")
                if requested_token_type is not None
                else None
            ),
        )
        super().__init__(
            spec=_EXCHANGE_SPEC,
            token_url=token_url,
            audience=audience,
            resource=resource,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
            **options,
        )

    def _own_options(self) -> dict[str, Any]:
        return {"derived": self._derived}


class OAuth2JWTBearerAuth(BaseAuth):
    """A JWT as the grant itself (RFC 7523 §2.1): service accounts, federated identities.

    Args:
        token_url: the token endpoint; or give ``issuer=`` instead.
        assertion: the JWT: a file's path (read again at each token call), a callable
            (sync or async) returning one, or the JWT itself (it expires: prefer the other
            two). Or give ``private_key=`` and authplug signs one for each token call.
        private_key: the key authplug signs the assertions with (PEM text, a PEM or JWK
            file's path, or a JWK dict), with a fresh ``jti`` each time.
        key_id: the assertions' ``kid`` (default: the JWK's ``kid``).
        signing_alg: their algorithm (default by the key: RS256, ES256..., Ed25519).
        assertion_issuer: the ``iss`` claim (required with ``private_key=``).
        assertion_subject: the ``sub`` claim (default: the issuer).
        assertion_audience: the ``aud`` claim (default: the token endpoint).
        client_id: the client's identifier, when it authenticates (RFC 7523 §2.1 allows
            both); with ``client_secret=`` or none.
        scope: the scope asked for.
        **options: any option of :class:`~authplug.BaseAuth` but ``client_assertion=``.

    Raises:
        ConfigurationError: an argument is wrong or missing.
    """

    def __init__(
        self,
        *,
        token_url: str | None = None,
        assertion: SubjectToken | None = None,
        private_key: PrivateKeyOption | None = None,
        key_id: str | None = None,
        signing_alg: str | None = None,
        assertion_issuer: str | None = None,
        assertion_subject: str | None = None,
        assertion_audience: str | None = None,
        client_id: str | None = None,
        scope: str | Iterable[str] | None = None,
        **options: Any,
    ) -> None:
        from ._call.derived import Bearer, TokenInput
        from ._options import text

        if (assertion is None) == (private_key is None):
            raise ConfigurationError(
                "give assertion= (a file, a callable or the JWT) or private_key= (authplug "
                "signs one for each token call), one of the two"
            )
        text("assertion_issuer", assertion_issuer, required=private_key is not None)
        text("assertion_subject", assertion_subject, required=False)
        text("assertion_audience", assertion_audience, required=False)
        if private_key is not None:
            from ._assertion import SigningKey
            from ._redact import hidden

            signer = SigningKey.private(hidden(private_key), key_id=key_id, signing_alg=signing_alg)
            del private_key
            self._derived = Bearer(
                assertion=None,
                signer=signer,
                issuer=assertion_issuer,
                subject=assertion_subject,
                audience=assertion_audience,
            )
        else:
            self._derived = Bearer(assertion=TokenInput(assertion, "assertion"))
            del assertion
        super().__init__(
            spec=_BEARER_SPEC, token_url=token_url, client_id=client_id, scope=scope, **options
        )

    def _own_options(self) -> dict[str, Any]:
        return {"derived": self._derived}
