"""The checks of the options about how the client authenticates at the token endpoint:
``client_auth``, ``private_key``, ``key_id``, ``signing_alg``, ``client_assertion``.

Part of :meth:`authplug._options.Options.from_kwargs`, apart for size; the signing keys
and assertions themselves (:mod:`authplug._assertion`) are loaded only when one is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._option_types import CLIENT_AUTH, ClientAuthMethod
from ._options import text
from ._redact import Secret
from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._assertion import AssertionSource, SigningKey
    from ._option_types import CertOption

__all__ = ["assertion_source", "client_auth_method", "signing_key"]


def client_auth_method(
    value: object,
    *,
    client_id: str | None,
    secret: Secret | None,
    private_key: object,
    assertion: object,
    cert: CertOption,
) -> ClientAuthMethod:
    """The client authentication method: the one named, else what the credentials imply.

    Left unset (None), it is ``private_key_jwt`` with a key or an assertion,
    ``client_secret_post`` with a secret, else ``none``. Named, it must have what it needs.
    """
    if value is not None and value not in CLIENT_AUTH:
        raise ConfigurationError(f"client_auth= must be one of {', '.join(CLIENT_AUTH)}")
    if private_key is not None and assertion is not None:
        raise ConfigurationError(
            "give private_key= (authplug signs the assertion) or client_assertion= (you "
            "provide it), not both"
        )
    by_key = private_key is not None or assertion is not None
    if value is None:
        value = "private_key_jwt" if by_key else "client_secret_post" if secret else "none"
    method: ClientAuthMethod = value  # type: ignore[assignment]  # checked above
    if value in ("private_key_jwt", "client_secret_jwt", "tls_client_auth") and client_id is None:
        raise ConfigurationError(f'client_auth="{value}" needs client_id=')
    if value == "private_key_jwt":
        if not by_key:
            raise ConfigurationError(
                'client_auth="private_key_jwt" needs private_key= (a PEM string, the path of '
                "a PEM or JWK file, or a JWK dict) or client_assertion="
            )
        return method
    if by_key:
        given = "private_key=" if private_key is not None else "client_assertion="
        raise ConfigurationError(
            f"{given} authenticates the client with a signed assertion: leave client_auth= "
            f'unset or give client_auth="private_key_jwt", not "{value}"'
        )
    if value == "tls_client_auth":
        if not cert:
            raise ConfigurationError(
                'client_auth="tls_client_auth" needs cert=: the client certificate (a PEM '
                "file with the key, or a (certfile, keyfile) pair) is what authenticates it"
            )
        if secret is not None:
            raise ConfigurationError(
                'client_auth="tls_client_auth" sends no secret: leave client_secret= out'
            )
        return method
    if value == "client_secret_jwt" and secret is None:
        raise ConfigurationError(
            'client_auth="client_secret_jwt" needs client_secret= (the HMAC key of the assertion)'
        )
    if secret is None and value != "none":
        if value == "client_secret_post":
            return "none"  # the default of the generic classes, with no secret given
        raise ConfigurationError(f'client_auth="{value}" needs client_secret=')
    return method


def signing_key(
    method: ClientAuthMethod,
    secret: Secret | None,
    private_key: object,
    key_id: object,
    signing_alg: object,
) -> SigningKey | None:
    key_id = text("key_id", key_id, required=False)
    alg = text("signing_alg", signing_alg, required=False)
    if method == "client_secret_jwt" and secret is not None:
        if key_id is not None:
            raise ConfigurationError(
                'key_id= names a private key: it has no use with "client_secret_jwt"'
            )
        from ._assertion import SigningKey

        return SigningKey.hmac(secret, signing_alg=alg)
    if private_key is not None:
        from ._assertion import SigningKey

        return SigningKey.private(private_key, key_id=key_id, signing_alg=alg)
    if key_id is not None or alg is not None:
        raise ConfigurationError(
            "key_id= and signing_alg= go with private_key= (private_key_jwt) or "
            'client_auth="client_secret_jwt"'
        )
    return None


def assertion_source(value: object) -> AssertionSource | None:
    if value is None:
        return None
    from ._assertion import AssertionSource

    return AssertionSource(value)
