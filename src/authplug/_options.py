"""The options every auth class takes, checked once into one frozen value.

:meth:`Options.from_kwargs` validates what a user passed (each mistake is a
:class:`~authplug.errors.ConfigurationError` that says what to give instead) and fills
in the defaults; :class:`~authplug.auth.BaseAuth` then only wires the value into its
parts. Secrets arrive already wrapped in :class:`~authplug._redact.Secret` and stay so:
the value's repr shows none of them.

Every default is defined once: in :class:`~authplug.BaseAuth`'s signature, the one the
API reference shows. :meth:`Options.from_kwargs` takes every option and has no default
of its own, so the two cannot drift apart.

The first auth object built loads this module (``import authplug`` does not: defining
:class:`Options` costs milliseconds). What only some options need (the TLS checks,
signing keys and assertions, DPoP keys, a handed-in token, the loopback test of a
plain-http URL) is imported when such an option is given.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from ._clock import Clock, SystemClock
from ._lazy import regex
from ._option_types import CertOption, ClientAuthMethod, VerifyOption
from ._redact import Secret
from .cache import MemoryTokenCache, TokenCache
from .errors import ConfigurationError
from .spec import ProviderSpec

if TYPE_CHECKING:
    from ._assertion import AssertionSource, SigningKey
    from ._call.derived import DerivedGrant
    from ._call.login import LoginSettings
    from ._call.transport import TokenTransport
    from ._dpop import DPoP
    from .events import Event
    from .token import Token

# Exported beside Options: the two checkers other modules reuse (check_url for
# discovery's endpoints, text for the generic classes' arguments); the other checkers
# are this module's own.
__all__ = ["Options", "check_url", "text"]


def check_url(name: str, url: object) -> str:
    """An https URL, or http on a loopback host; anything else is a ConfigurationError."""
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"{name}= must be a URL string")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"{name}={url!r} is not a valid URL ({exc})") from None
    if not parsed.host:
        raise ConfigurationError(f"{name}={url!r} has no host")
    if parsed.userinfo:
        raise ConfigurationError(f"{name}= must not carry credentials in the URL")
    if parsed.scheme == "https":
        return url
    if parsed.scheme == "http":
        from ._net import is_loopback  # only a plain-http URL needs it

        if is_loopback(parsed.host):
            return url
        raise ConfigurationError(
            f"{name}={url!r} uses plain http: credentials would travel unencrypted. "
            "Use https (http is accepted only for localhost and loopback addresses)"
        )
    raise ConfigurationError(f"{name}={url!r} must be an https URL")


def text(name: str, value: object, *, required: bool) -> str | None:
    """A non-empty string, or None when it is optional and not given."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name}= must be a non-empty string")
    return value


def _secret(name: str, value: object, *, required: bool) -> Secret | None:
    if value is None and not required:
        return None
    if not isinstance(value, Secret) or not value.reveal():
        raise ConfigurationError(f"{name}= must be a non-empty string")
    return value


def _scope(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, Iterable) and all(isinstance(v, str) for v in value):
        return " ".join(value) or None
    raise ConfigurationError("scope= takes a space-separated string or a list of strings")


def _real(value: object) -> float | None:
    """``value`` as a float when it is a real number (a bool is not), else None."""
    if type(value) is int or type(value) is float:  # the usual case, without numbers' ABCs
        return float(value)
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _seconds(name: str, value: object, *, minimum: float, strict: bool = False) -> float:
    number = _real(value)
    if number is None:
        raise ConfigurationError(f"{name}= must be a number of seconds")
    if not math.isfinite(number):
        # NaN passes every comparison below, and neither can time a network call.
        raise ConfigurationError(f"{name}= must be a finite number of seconds, not {number}")
    if number < minimum or (strict and number == minimum):
        relation = ">" if strict else ">="
        raise ConfigurationError(f"{name}= must be {relation} {minimum:g}")
    return number


_URI_SCHEME = regex(r"[A-Za-z][A-Za-z0-9+.-]*:")  # compiled when a resource= is first given


def _resources(value: object) -> tuple[str, ...]:
    """RFC 8707 resource indicators: absolute URIs without a fragment."""
    if value is None:
        return ()
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, Iterable) or isinstance(items, Mapping):
        raise ConfigurationError("resource= takes a URI or a list of URIs")
    resources = tuple(items)
    for item in resources:
        if not isinstance(item, str) or not item:
            raise ConfigurationError("resource= takes a URI or a list of URIs")
        scheme = urlsplit(item).scheme if _URI_SCHEME().match(item) else ""
        if not scheme or "#" in item or any(c.isspace() for c in item):
            raise ConfigurationError(
                f"resource={item!r}: a resource indicator is an absolute URI without a "
                "fragment (RFC 8707), such as 'https://api.example.com/'"
            )
    return resources


def _retries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError("retries= must be a whole number >= 0")
    return value


def _token_endpoint(token_url: object, issuer: object) -> str | None:
    if issuer is not None and token_url is not None:
        raise ConfigurationError(
            "give issuer= (the token endpoint is then read from the server's metadata) or "
            "token_url=, not both"
        )
    if issuer is None and token_url is None:
        raise ConfigurationError(
            "token_url= is required (or issuer=, to read it from the server's metadata)"
        )
    return check_url("token_url", token_url) if token_url is not None else None


def _issuer(value: object) -> str | None:
    """RFC 8414 §2: an https URL with no query or fragment."""
    if value is None:
        return None
    issuer = check_url("issuer", value)
    if "?" in issuer or "#" in issuer:
        raise ConfigurationError(
            f"issuer={issuer!r}: an issuer identifier has no query or fragment (RFC 8414), "
            "such as 'https://login.example.com' or 'https://login.example.com/tenant'"
        )
    return issuer


def _cert(value: object) -> CertOption:
    if value is None:
        return None
    from ._connect_options import cert_option

    return cert_option(value)


def _verify(value: object, cert: CertOption) -> VerifyOption:
    if isinstance(value, (bool, ssl.SSLContext)):
        return value
    from ._connect_options import verify_option

    return verify_option(value, cert)


def _proxy_url(value: object) -> str | None:
    if value is None:
        return None
    from ._connect_options import proxy_option

    return proxy_option(value)


def _initial_token(value: Token | Mapping[str, Any] | None, clock: Clock) -> Token | None:
    if value is None:
        return None
    from .token import Token

    return Token.coerce(value, now=clock.time())


def _dpop(dpop: object, dpop_key: object) -> DPoP | None:
    """``dpop=True``: a fresh ES256 key; ``dpop_key=``: the user's (and DPoP on)."""
    if not isinstance(dpop, bool):
        raise ConfigurationError("dpop= must be True or False")
    if dpop_key is None and not dpop:
        return None
    from ._dpop import DPoP

    return DPoP.load(dpop_key) if dpop_key is not None else DPoP.generated()


def _codes(value: Iterable[int]) -> frozenset[int]:
    codes = tuple(value)
    if not all(isinstance(c, int) and 100 <= c <= 599 for c in codes):
        raise ConfigurationError("refresh_status_codes= takes HTTP status codes (100-599)")
    return frozenset(codes)


# eq=False: one object's settings, compared by identity (nothing compares two), and a
# quarter of the class's definition cost, paid by the first auth object (cold start).
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Options:
    """Every option of an auth object, checked (see :class:`~authplug.BaseAuth`)."""

    spec: ProviderSpec
    token_url: str | None  # None: found by discovery from the issuer
    issuer: str | None
    refresh_url: str | None
    revocation_url: str | None
    client_id: str | None
    client_secret: Secret | None = field(repr=False)
    username: str | None
    password: Secret | None = field(repr=False)
    scope: str | None
    resource: tuple[str, ...]
    audience: str | None
    leeway: float
    timeout: float
    verify: VerifyOption
    cert: CertOption
    proxy: str | None = field(repr=False)  # its URL may hold the proxy's credentials
    client_auth: ClientAuthMethod
    signing_key: SigningKey | None  # private_key_jwt's key, or client_secret_jwt's secret
    client_assertion: AssertionSource | None
    client_assertion_type: str
    assertion_audience: str | None  # None: the endpoint each assertion is sent to
    revoke_on_close: bool
    close_timeout: float
    dpop: DPoP | None  # its repr shows the algorithm and the key's thumbprint only
    retries: int
    refresh_status_codes: frozenset[int]
    token: Token | None = field(repr=False)
    on_token: Callable[[Token], object] | None
    on_event: Callable[[Event], object] | None
    cache: TokenCache
    clock: Clock
    #: How a person logs in: set by the login classes (not a BaseAuth option); else None.
    login: LoginSettings | None = None
    #: What a token exchange or JWT bearer grant is made from (authplug.exchange); else None.
    derived: DerivedGrant | None = None
    #: The token transport of the object this one is a sibling of (``for_resource()``).
    shared_transport: TokenTransport | None = None

    @classmethod
    def from_kwargs(
        cls,
        *,
        spec: ProviderSpec,
        token_url: object,
        issuer: object,
        refresh_url: object,
        revocation_url: object,
        client_id: object,
        client_secret: Secret | None,
        username: object,
        password: Secret | None,
        scope: object,
        resource: object,
        audience: object,
        leeway: object,
        timeout: object,
        verify: VerifyOption,
        cert: CertOption,
        proxy: object,
        client_auth: object,
        private_key: object,
        key_id: object,
        signing_alg: object,
        client_assertion: object,
        client_assertion_type: object,
        assertion_audience: object,
        revoke_on_close: object,
        close_timeout: object,
        dpop: object,
        dpop_key: object,
        retries: object,
        refresh_status_codes: Iterable[int],
        token: Token | Mapping[str, Any] | None,
        on_token: Callable[[Token], object] | None,
        on_event: Callable[[Event], object] | None,
        cache: object,
        clock: Clock | None,
    ) -> Options:
        """Check each option in turn; the first mistake raises ConfigurationError.

        Every option is given: the defaults are BaseAuth's (its signature shows them).
        """
        password_grant = spec.grant_type == "password"
        secret = _secret("client_secret", client_secret, required=False)
        if on_token is not None and not callable(on_token):
            raise ConfigurationError("on_token= must be callable")
        if on_event is not None and not callable(on_event):
            raise ConfigurationError("on_event= must be callable (it receives authplug.events)")
        if cache is not None and not isinstance(cache, TokenCache):
            raise ConfigurationError(
                "cache= takes a token cache (MemoryTokenCache, FileTokenCache, RedisTokenCache)"
            )
        cert = _cert(cert)
        verify = _verify(verify, cert)
        clock = clock or SystemClock()
        holder = _dpop(dpop, dpop_key)
        initial = _initial_token(token, clock)
        bound = initial.dpop_jkt if initial is not None else None
        if bound is not None and (holder is None or holder.jkt != bound):
            raise ConfigurationError(
                "token= is bound to a DPoP key (dpop_jkt) this object does not hold: "
                "give that key as dpop_key="
            )
        client_id = text("client_id", client_id, required=False)
        from ._client_auth_options import assertion_source, client_auth_method, signing_key

        method = client_auth_method(
            client_auth,
            client_id=client_id,
            secret=secret,
            private_key=private_key,
            assertion=client_assertion,
            cert=cert,
        )
        if not isinstance(revoke_on_close, bool):
            raise ConfigurationError("revoke_on_close= must be True or False")
        if revoke_on_close and revocation_url is None and issuer is None:
            raise ConfigurationError(
                "revoke_on_close=True needs revocation_url=, or issuer= of a server whose "
                "metadata names its revocation endpoint"
            )
        options = cls(
            spec=spec,
            token_url=_token_endpoint(token_url, issuer),
            issuer=_issuer(issuer),
            refresh_url=check_url("refresh_url", refresh_url) if refresh_url else None,
            revocation_url=(
                check_url("revocation_url", revocation_url) if revocation_url is not None else None
            ),
            client_id=client_id,
            client_secret=secret,
            username=text("username", username, required=password_grant),
            password=_secret("password", password, required=password_grant),
            scope=_scope(scope),
            resource=_resources(resource),
            audience=text("audience", audience, required=False),
            leeway=_seconds("leeway", leeway, minimum=0),
            timeout=_seconds("timeout", timeout, minimum=0, strict=True),
            verify=verify,
            cert=cert,
            proxy=_proxy_url(proxy),
            client_auth=method,
            signing_key=signing_key(method, secret, private_key, key_id, signing_alg),
            client_assertion=assertion_source(client_assertion),
            client_assertion_type=str(
                text("client_assertion_type", client_assertion_type, required=True)
            ),
            assertion_audience=text("assertion_audience", assertion_audience, required=False),
            revoke_on_close=revoke_on_close,
            close_timeout=_seconds("close_timeout", close_timeout, minimum=0),
            dpop=holder,
            retries=_retries(retries),
            refresh_status_codes=_codes(refresh_status_codes),
            token=initial,
            on_token=on_token,
            on_event=on_event,
            cache=cache if cache is not None else MemoryTokenCache(),
            clock=clock,
        )
        if options.cert is not None or options.verify is False:
            from ._connect_options import check_tls

            check_tls(options)
        return options
