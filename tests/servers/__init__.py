"""Real OAuth2 servers nobody here wrote, started by the tests on free loopback ports.

Each harness starts its server (in this process or a child process), registers the
clients and the user the tests need, counts token calls *on the server side*, and
stops everything afterwards. The shared suite in ``tests/endpoint/test_real_servers.py`` runs
the same scenarios against each of them through requests, httpx and httpx async.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol

#: A secret of the kind ``openssl rand -base64`` makes, plus a percent sign and a space:
#: RFC 6749 §2.3.1 form-encodes it before Basic authentication. ASCII only: a client
#: secret is printable ASCII (RFC 6749 Appendix A.2), and oidc-provider refuses others.
TRICKY_SECRET = "q+Z/7r=%41 x~"
PLAIN_SECRET = "plain-secret-0123456789"
USERNAME = "alice"
PASSWORD = "wonderland-pw+/=%41"

AUTH_METHODS = ("client_secret_post", "client_secret_basic")


@dataclass(frozen=True)
class Client:
    """A confidential client registered on a real server."""

    client_id: str
    client_secret: str
    auth_method: str  # "client_secret_post" or "client_secret_basic"
    grant: str  # "client_credentials" or "password" (refresh_token comes with password)


class RealServer(Protocol):
    """What the shared suite needs of a running server."""

    name: str
    token_url: str
    api_url: str  # a protected resource: 200 for a valid token, an RFC 6750 401 otherwise
    grants: frozenset[str]  # the full grants it serves: "client_credentials", "password"
    rotates_refresh_tokens: bool

    def client(self, grant: str, auth_method: str, *, tricky: bool = False) -> Client:
        """A registered client for ``grant`` authenticating with ``auth_method``.

        ``tricky`` picks the one whose secret is :data:`TRICKY_SECRET`, else
        :data:`PLAIN_SECRET`.
        """

    def token_calls(self) -> Counter[str]:
        """Token requests the server itself received, by ``grant_type``, since the last reset."""

    def reset_counts(self) -> None:
        """Start counting token calls from zero."""

    def revoke(self, token: str, client: Client) -> None:
        """Revoke a token at the server's RFC 7009 endpoint, as ``client``."""
