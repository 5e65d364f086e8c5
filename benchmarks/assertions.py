"""What a client assertion costs a token call (``private_key_jwt``, ``client_secret_jwt``).

A signed assertion is made once per token call attempt, never per API request. This
measures preparing a whole client-credentials token request with each key (assertion
signed, form encoded, secrets behind stand-ins), side by side with Authlib's own
``PrivateKeyJWT``/``ClientSecretJWT`` client-auth methods applied to the same request,
which is what an Authlib ``OAuth2Session`` does. Median of 7 runs of 200.

    pip install -r benchmarks/requirements.txt
    python benchmarks/assertions.py
"""

from __future__ import annotations

import functools
import statistics
import timeit
from collections.abc import Callable
from typing import Any

from _common import table
from authlib.oauth2.rfc7523 import ClientSecretJWT, PrivateKeyJWT
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from authplug import OAuth2ClientCredentialsAuth

TOKEN_URL = "https://login.example.com/oauth2/token"
SECRET = "a-client-secret-of-forty-bytes-01234567"
BODY = "grant_type=client_credentials"


class _AuthlibClient:
    """What Authlib's client-auth methods read of their client: an id and a key."""

    def __init__(self, key: Any) -> None:
        self.client_id = "client"
        self.client_secret = key


def _microseconds(call: Callable[[], object]) -> float:
    runs = [timeit.timeit(call, number=200) / 200 * 1e6 for _ in range(7)]
    return statistics.median(runs)


def main() -> None:
    keys: list[tuple[str, Any, str | None]] = [
        ("RS256, RSA 2048", RSAKey.generate_key(2048), None),
        ("PS256, RSA 2048", RSAKey.generate_key(2048), "PS256"),
        ("ES256, P-256", ECKey.generate_key("P-256"), None),
        ("Ed25519", OKPKey.generate_key("Ed25519"), None),
    ]
    rows = []
    for name, key, alg in keys:
        auth = OAuth2ClientCredentialsAuth(
            token_url=TOKEN_URL,
            client_id="client",
            private_key=key.as_dict(private=True),
            signing_alg=alg,
        )
        method = PrivateKeyJWT(TOKEN_URL, alg=auth.options.signing_key.alg)  # type: ignore[union-attr]
        peer = _AuthlibClient(key)
        ours = _microseconds(auth._client.prepare_grant)
        theirs = _microseconds(functools.partial(method, peer, "POST", TOKEN_URL, {}, BODY))
        rows.append((name, f"{ours:.0f}", f"{theirs:.0f}", f"{ours / theirs:.2f}"))
    hmac = OAuth2ClientCredentialsAuth(
        token_url=TOKEN_URL,
        client_id="client",
        client_secret=SECRET,
        client_auth="client_secret_jwt",
    )
    ours = _microseconds(hmac._client.prepare_grant)
    peer = _AuthlibClient(OctKey.import_key(SECRET))
    method = ClientSecretJWT(TOKEN_URL)
    theirs = _microseconds(lambda: method(peer, "POST", TOKEN_URL, {}, BODY))
    rows.append(
        ("HS256 (client_secret_jwt)", f"{ours:.0f}", f"{theirs:.0f}", f"{ours / theirs:.2f}")
    )
    plain = OAuth2ClientCredentialsAuth(
        token_url=TOKEN_URL, client_id="client", client_secret=SECRET
    )
    rows.append(
        ("none (client_secret_post)", f"{_microseconds(plain._client.prepare_grant):.0f}", "", "")
    )
    print(
        table(
            ["assertion", "authplug: whole request, µs", "Authlib method alone, µs", "ratio"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
