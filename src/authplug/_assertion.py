"""Client assertions (RFC 7523 §2.2): the JWT a client authenticates with instead of
sending a secret.

Two sources:

- :class:`SigningKey`: a private key the client holds (``private_key_jwt``), or its
  secret as an HMAC key (``client_secret_jwt``). Each token call attempt gets a fresh
  assertion, signed by Authlib's RFC 7523 helpers: ``iss`` = ``sub`` = the client id,
  ``aud`` = the endpoint it is sent to (the token endpoint; the revocation endpoint for
  a revocation) or what the user gave, a random ``jti``, ``iat`` now and ``exp`` 60
  seconds later.
- :class:`AssertionSource`: an assertion made elsewhere (workload identity federation:
  a Kubernetes projected service-account token, a CI's OIDC token), from a callable
  (sync or async) or a file read again at every token call.

Key material is loaded and checked once, at construction; neither class shows it in a
repr, and neither can be pickled. Text that is no key, assertion or file is described
in the error (:mod:`authplug._inputs`), never repeated, and the frames that read it make
their errors and leave the raising to a frame that no longer holds it, so a traceback's
locals do not show it either. joserfc and Authlib are imported only when a key is given.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ._lazy import regex
from ._redact import Secret, unhidden
from .errors import ConfigurationError

if TYPE_CHECKING:
    from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

    from ._inputs import FileProblem

# authplug._inputs is imported where it is used. This module is imported when an auth
# object is given a key or an assertion (the options' names and defaults, such as
# ``client_auth=``'s methods and ``client_assertion_type=``'s, are authplug._options').

__all__ = ["ASSERTION_LIFETIME", "AssertionSource", "SigningKey"]

ASSERTION_LIFETIME = 60  # seconds (RFC 7523 §3 asks for a short one)

# What each kind of key can sign with (RFC 7518 §3.1, RFC 8037, RFC 9864).
_RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "secp256k1": "ES256K"}
# Ed25519/Ed448 first (RFC 9864's fully-specified names); "EdDSA" signs the same but
# joserfc warns that it is deprecated.
_OKP_ALGS = {"Ed25519": ("Ed25519", "EdDSA"), "Ed448": ("Ed448", "EdDSA")}
_HMAC_ALGS = {"HS256": 32, "HS384": 48, "HS512": 64}  # RFC 7518 §3.2: key >= hash size


def _refuse_pickle(self: object) -> NoReturn:
    raise TypeError(f"a {type(self).__name__} holds key material: it cannot be pickled")


_KEY_ADVICE = "give a PEM string, the path of a PEM or JWK file, or a JWK dict"
_KEY_HINTS = {
    "base64-pem": "give the decoded PEM or a file",
    "pem-body": "give the whole PEM, with its BEGIN and END lines, or a file",
    "damaged-pem": "mend its BEGIN and END lines (five dashes on each side), or give a file",
    "base64-json": "give the decoded JWK or a file",
}


def _key_bytes(private_key: object, option: str) -> bytes | Mapping[str, Any] | ConfigurationError:
    """PEM text, a path to a PEM or JWK file, or a JWK dict, as bytes or a dict; or the
    error to raise (``option`` names the argument in messages).

    Returned, not raised: this frame holds the text, which a traceback's locals would
    show. Text that is neither a key nor a file is described, never repeated.
    """
    from ._inputs import read_small_file

    value = unhidden(private_key)
    if isinstance(value, Mapping):
        return value
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and "-----BEGIN" in value:
        return value.encode("ascii", "replace")
    if isinstance(value, str) and value.lstrip().startswith("{"):
        return _jwk_text(value.encode("utf-8"), f"{option}= (JWK text)")
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        return ConfigurationError(
            f"{option}= takes a PEM string, the path of a PEM or JWK file, or a JWK dict"
        )
    data = read_small_file(value)
    if isinstance(data, bytes):
        if data.lstrip().startswith(b"{"):
            return _jwk_text(data, f"{option}={os.fspath(value)!r}")
        return data
    return ConfigurationError(_not_read(value, data, option))


def _not_read(value: str | os.PathLike[str], problem: FileProblem, option: str) -> str:
    """Why ``value`` gave no key: the file's trouble, or (when nothing by that name is
    there) what the text looks like; it is shown only when it is a plausible path."""
    from ._inputs import kind_of, noun, plausible_path

    shown = os.fspath(value)
    if problem.missing and isinstance(value, str):
        kind = kind_of(value)
        if kind is not None:
            hint = _KEY_HINTS.get(kind)
            if hint is None:
                return f"{option}= is {noun(kind)}, not a key: {_KEY_ADVICE}"
            return f"{option}= is {noun(kind)}: {hint}"
        if not plausible_path(value):
            return f"{option}= is neither a key nor an existing file: {_KEY_ADVICE}"
    return f"{option}={shown!r} cannot be read ({problem.reason}): {_KEY_ADVICE}"


def _jwk_text(data: bytes, where: str) -> Mapping[str, Any] | ConfigurationError:
    import json

    try:
        loaded = json.loads(data)
    except ValueError:
        loaded = None
    if not isinstance(loaded, dict):
        return ConfigurationError(f"{where} is not a JWK (a JSON object)")
    return loaded


def _import(
    material: bytes | Mapping[str, Any], option: str
) -> RSAKey | ECKey | OKPKey | ConfigurationError:
    """The key, or the error to raise (returned: this frame holds the key material)."""
    from joserfc.jwk import import_key

    try:
        if isinstance(material, Mapping):
            key = import_key(dict(material))
        else:
            from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
            from cryptography.hazmat.primitives.serialization import load_pem_private_key

            loaded = load_pem_private_key(material, password=None)
            if isinstance(loaded, rsa.RSAPrivateKey):
                key = import_key(material, "RSA")
            elif isinstance(loaded, ec.EllipticCurvePrivateKey):
                key = import_key(material, "EC")
            elif isinstance(loaded, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
                key = import_key(material, "OKP")
            else:
                raise ValueError(f"unsupported key type {type(loaded).__name__}")
    except Exception as exc:
        # Reported by kind: the exception's frames and arguments hold the key material.
        return ConfigurationError(f"{option}= is not a usable private key{_why(material, exc)}")
    if key.key_type == "oct":
        hint = (
            ': use client_auth="client_secret_jwt" with client_secret= for an HMAC-signed assertion'
            if option == "private_key"
            else ": give an EC, RSA or Ed25519 private key"
        )
        return ConfigurationError(f"{option}= is a symmetric key{hint}")
    if not key.is_private:
        return ConfigurationError(
            f"{option}= is a public key: give the private key (the server holds the public one)"
        )
    return key  # type: ignore[return-value]


_PEM_LABEL = regex(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_PRIVATE_LABELS = (b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY")


def _why(material: bytes | Mapping[str, Any], exc: Exception) -> str:
    """Why a key did not load, in words that quote none of it."""
    from ._inputs import kind_of, noun

    what = f" ({type(exc).__name__})"
    if "encrypted" in str(exc).lower() or "password" in str(exc).lower():
        return f"{what}: an encrypted PEM is not supported: decrypt it, or give a JWK"
    if isinstance(material, bytes):
        label = _PEM_LABEL().search(material)
        kind = kind_of(material.decode("ascii", "replace")) if label is None else None
        if kind is not None and kind != "pem":  # a file of base64, a PEM's body...
            return f"{what}: it is {noun(kind)}"
        if label is None:
            return f"{what}: its BEGIN line is damaged (five dashes on each side)"
        if b"PUBLIC" in label.group(1) or b"CERTIFICATE" in label.group(1):
            return f"{what}: it is a public key or a certificate: give the private key"
        if label.group(1) not in _PRIVATE_LABELS:
            return f"{what}: its BEGIN line names no kind of private key authplug reads"
    return what


def _loaded(
    private_key: object, option: str
) -> tuple[RSAKey | ECKey | OKPKey, str | None] | ConfigurationError:
    """The key and its JWK's ``kid``, or the error to raise (returned: see _key_bytes)."""
    material = _key_bytes(private_key, option)
    if isinstance(material, ConfigurationError):
        return material
    key = _import(material, option)
    if isinstance(key, ConfigurationError):
        return key
    kid = material.get("kid") if isinstance(material, Mapping) else None
    return key, kid if isinstance(kid, str) else None


def _algorithms(key: RSAKey | ECKey | OKPKey) -> tuple[str, ...]:
    if key.key_type == "RSA":
        return _RSA_ALGS
    curve = str(getattr(key, "curve_name", ""))
    if key.key_type == "EC":
        return (_EC_ALGS[curve],) if curve in _EC_ALGS else ()
    return _OKP_ALGS.get(curve, ())


class SigningKey:
    """A key that signs client assertions: a private key, or a client secret (HMAC).

    Its repr shows the key type, the algorithm and the key id, never the key.
    """

    __slots__ = ("_key", "alg", "kid", "kty")
    __reduce__ = _refuse_pickle

    def __init__(self, key: RSAKey | ECKey | OKPKey | OctKey, alg: str, kid: str | None) -> None:
        self._key = key
        self.alg = alg
        self.kid = kid
        self.kty: str = key.key_type

    def __repr__(self) -> str:
        return f"SigningKey(kty={self.kty!r}, alg={self.alg!r}, kid={self.kid!r})"

    @classmethod
    def private(
        cls,
        private_key: object,
        *,
        key_id: str | None = None,
        signing_alg: str | None = None,
        option: str = "private_key",
    ) -> SigningKey:
        """A private key (PEM text, a path, or a JWK dict), checked against the algorithm.

        The algorithm defaults to RS256 for RSA, ES256/ES384/ES512 by curve for EC and
        Ed25519 for Ed25519 keys (``"EdDSA"`` also, for servers that know only that
        name); the key id to the JWK's ``kid``.
        """
        loaded = _loaded(private_key, option)
        del private_key  # a traceback's locals must not show it (it may be plain text)
        if isinstance(loaded, ConfigurationError):
            raise loaded from None  # nothing to chain: the error was made, not caught
        key, jwk_kid = loaded
        allowed = _algorithms(key)
        if not allowed:
            raise ConfigurationError(
                f"{option}= is a key authplug cannot sign with ({key.key_type})"
            )
        alg = signing_alg if signing_alg is not None else allowed[0]
        if alg not in allowed:
            raise ConfigurationError(
                f"signing_alg={alg!r} does not fit this {key.key_type} key: use one of "
                f"{', '.join(allowed)}"
            )
        return cls(key, alg, key_id if key_id is not None else jwk_kid)

    @classmethod
    def hmac(cls, secret: Secret, *, signing_alg: str | None = None) -> SigningKey:
        """The client secret as the HMAC key of ``client_secret_jwt`` (HS256 by default)."""
        from joserfc.jwk import OctKey

        alg = signing_alg or "HS256"
        if alg not in _HMAC_ALGS:
            raise ConfigurationError(
                f'signing_alg={alg!r}: client_auth="client_secret_jwt" signs with '
                f"{', '.join(_HMAC_ALGS)}"
            )
        size = len(secret.reveal().encode("utf-8"))
        if size < _HMAC_ALGS[alg]:
            raise ConfigurationError(
                f"client_secret= is {size} bytes long; {alg} needs a secret of at least "
                f"{_HMAC_ALGS[alg]} bytes (RFC 7518 §3.2): ask the provider for a longer "
                "one, or use private_key_jwt"
            )
        return cls(OctKey.import_key(secret.reveal()), alg, None)

    def cryptography_key(self) -> Any:
        """The private key as a ``cryptography`` object (DPoP signs with it directly)."""
        return self._key.private_key

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK (what the server registers); empty for HMAC."""
        if self.kty == "oct":
            return {}
        jwk: dict[str, Any] = dict(self._key.as_dict(private=False))
        jwk["alg"] = self.alg
        if self.kid is not None:
            jwk["kid"] = self.kid
        return jwk

    def assertion(self, client_id: str, audience: str) -> Secret:
        """A fresh client assertion for one token request, by Authlib's RFC 7523 signer."""
        from authlib.oauth2.rfc7523 import client_secret_jwt_sign, private_key_jwt_sign

        sign = client_secret_jwt_sign if self.kty == "oct" else private_key_jwt_sign
        header = {"kid": self.kid} if self.kid is not None else None
        now = int(time.time())  # the server's clock judges it: wall time, not a test clock
        signed = sign(
            self._key,
            client_id,
            audience,
            alg=self.alg,
            header=header,
            issued_at=now,
            expires_at=now + ASSERTION_LIFETIME,
        )
        return Secret(signed if isinstance(signed, str) else signed.decode("ascii"))

    def grant_assertion(self, issuer: str, subject: str, audience: str) -> Secret:
        """A fresh assertion that is itself the grant (RFC 7523 §2.1): these claims, a
        new ``jti`` each call, signed by joserfc."""
        from joserfc import jwt

        header: dict[str, Any] = {"alg": self.alg, "typ": "JWT"}
        if self.kid is not None:
            header["kid"] = self.kid
        claims = _grant_claims(issuer, subject, audience, int(time.time()))
        return Secret(jwt.encode(header, claims, self._key, algorithms=[self.alg]))


def _grant_claims(issuer: str, subject: str, audience: str, now: int) -> dict[str, Any]:
    """RFC 7523 §3: the claims of a JWT bearer grant's assertion, a fresh ``jti`` each."""
    import secrets

    return {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
        "jti": secrets.token_urlsafe(24),
    }


def _checked(value: object, where: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise ValueError(f"{where} gave {type(value).__name__}, not a string")
    value = value.strip()
    if not value:
        raise ValueError(f"{where} gave an empty assertion")
    if any(c.isspace() for c in value):
        raise ValueError(f"{where} gave text with spaces or line breaks, not one assertion")
    return value


# What an assertion given as text is called in the message ("" for the usual JWS).
_ASSERTIONS: dict[str | None, str] = {"jws": "", "jwe": " (a JWE)", "base64-xml": " (base64 SAML)"}
_FRESH = (
    "it expires, so give a callable that returns a fresh one, or the path of a file "
    "that is kept fresh"
)


def _source_problem(source: object, option: str) -> Path | ConfigurationError:
    """The file of ``client_assertion=`` (or ``option``), or the error to raise (returned:
    this frame holds the text, which may be an assertion or a key; it is described, never
    shown)."""
    from ._inputs import kind_of, noun, plausible_path

    value = unhidden(source)
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        return ConfigurationError(
            f"{option}= takes a callable returning an assertion (sync or async) "
            "or the path of a file holding one"
        )
    path = Path(value)
    if os.path.isfile(path):
        return path
    kind = kind_of(value) if isinstance(value, str) else None
    if kind in _ASSERTIONS:
        return ConfigurationError(
            f"{option}= looks like an assertion itself{_ASSERTIONS[kind]}; {_FRESH}"
        )
    if kind is not None:
        return ConfigurationError(
            f"{option}= is {noun(kind)}, not an assertion: a private key goes in "
            "private_key= (authplug then signs the assertions)"
        )
    if isinstance(value, str) and not plausible_path(value):
        return ConfigurationError(
            f"{option}= is neither an assertion nor an existing file: give a callable "
            "that returns one (sync or async), or the path of a file holding one"
        )
    return ConfigurationError(
        f"{option}={os.fspath(path)!r} is not a file (give the path of the "
        "file your platform keeps the assertion in)"
    )


class AssertionSource:
    """A client assertion made elsewhere: ``obtain()``/``aobtain()`` at each token call.

    A file is read again each time (projected tokens are rotated in place); it must be
    a regular file of at most 64 KiB. Under an event loop a sync callable or a file is
    read in a thread of its own, given at most the token call's ``timeout``; an async
    callable serves async clients only.
    """

    __slots__ = ("_option", "_source", "kind")
    __reduce__ = _refuse_pickle

    def __init__(self, source: object, option: str = "client_assertion") -> None:
        self._option = option  # named in the messages
        if callable(source):
            self._source: Path | Callable[[], Any] = source
            self.kind = "async" if inspect.iscoroutinefunction(source) else "sync"
            return
        path = _source_problem(source, option)
        del source  # a traceback's locals must not show it
        if isinstance(path, ConfigurationError):
            raise path from None  # nothing to chain: the error was made, not caught
        self._source = path
        self.kind = "file"

    def __repr__(self) -> str:
        # getattr: a traceback's locals may show one whose __init__ raised (Python 3.10
        # does not catch a failing repr there).
        source = getattr(self, "_source", None)
        if isinstance(source, Path):
            return f"AssertionSource({os.fspath(source)!r})"
        return f"AssertionSource({getattr(self, 'kind', 'unread')} callable)"

    def obtain(self) -> Secret:
        """The assertion now (blocking). Raises ValueError with a safe message."""
        from ._inputs import FileProblem, read_small_file

        source = self._source
        if isinstance(source, Path):
            where = f"the file {os.fspath(source)!r}"
            data = read_small_file(source)
            if isinstance(data, FileProblem):
                raise ValueError(f"{where} cannot be read ({data.reason})")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{where} is not UTF-8 text") from None
            return Secret(_checked(text, where))
        if self.kind == "async":
            raise ValueError(
                f"{self._option}= is an async function, which a sync client cannot await: "
                "give a plain function (it may serve async clients too)"
            )
        return Secret(_checked(source(), f"the {self._option} callable"))

    def obtain_within(self, limit: float) -> Secret:
        """:meth:`obtain` in a thread of its own: a sync callable or a file that takes
        longer than ``limit`` seconds is left behind (ValueError)."""
        from ._inputs import Overdue, run_within

        try:
            return run_within(self.obtain, limit)
        except Overdue:
            raise self._overdue(limit) from None

    async def aobtain(self, limit: float) -> Secret:
        """:meth:`obtain` without blocking the event loop; a sync callable or a file that
        takes longer than ``limit`` seconds is left behind (ValueError)."""
        from ._inputs import Overdue, call_within

        source = self._source
        if self.kind == "async" and not isinstance(source, Path):
            return Secret(_checked(await source(), f"the {self._option} callable"))
        try:
            return await call_within(self.obtain, limit)
        except Overdue:
            raise self._overdue(limit) from None

    def _overdue(self, limit: float) -> ValueError:
        what = "file" if isinstance(self._source, Path) else "callable"
        return ValueError(
            f"the {self._option} {what} did not return within {limit:g}s (the token call's timeout)"
        )
