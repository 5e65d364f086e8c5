"""Counts, not clocks, on node oidc-provider: a chain of exchanges (3 hops) makes exactly
one token call per hop per expiry under 64 threads and under 200 tasks; one credential for
100 resources under 64 threads makes exactly 100 token calls per expiry."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from authplug import OAuth2ClientCredentialsAuth, OAuth2TokenExchangeAuth
from authplug.testing import FakeClock
from tests.servers import PLAIN_SECRET
from tests.servers.oidc_provider import (
    EXCHANGE_CLIENT_IDS,
    TOKEN_EXCHANGE_GRANT,
    OidcProviderServer,
)

CLIENT = EXCHANGE_CLIENT_IDS["client_secret_post"]
HOPS = ("https://hop1.test", "https://hop2.test", "https://hop3.test")
FAN = tuple(f"https://api{i}.test" for i in range(100))
EXPIRIES = 2


@pytest.fixture(scope="module")
def server() -> Iterator[OidcProviderServer]:
    targets = {url: {"scope": "read", "accessTokenFormat": "opaque"} for url in (*HOPS, *FAN)}
    with OidcProviderServer(
        exchange=True, logins=False, extra_config={"resource_servers": targets}
    ) as running:
        yield running


def _chain(server: OidcProviderServer, clock: FakeClock) -> list[OAuth2TokenExchangeAuth]:
    root = OAuth2ClientCredentialsAuth(
        token_url=server.token_url, client_id=CLIENT, client_secret=PLAIN_SECRET, clock=clock
    )
    hops: list[OAuth2TokenExchangeAuth] = []
    subject: object = root
    for target in HOPS:
        hop = OAuth2TokenExchangeAuth(
            token_url=server.token_url,
            client_id=CLIENT,
            client_secret=PLAIN_SECRET,
            subject_token=subject,
            resource=target,
            clock=clock,
        )
        hops.append(hop)
        subject = hop
    return hops


def _per_hop(server: OidcProviderServer, before: Counter[str]) -> list[int]:
    after = server.stats()
    return [after[f"token-exchange:ok:{hop}"] - before[f"token-exchange:ok:{hop}"] for hop in HOPS]


def _past_expiry(clock: FakeClock, hops: list[OAuth2TokenExchangeAuth]) -> None:
    token = hops[-1].token
    assert token is not None
    assert token.expires_at is not None
    clock.advance(token.expires_at - clock.time() + 1)


def test_a_three_hop_chain_under_64_threads(server: OidcProviderServer) -> None:
    clock = FakeClock()
    hops = _chain(server, clock)
    before = server.stats()
    for expiry in range(EXPIRIES):
        barrier = threading.Barrier(64)

        def one(_: int, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            return hops[-1].get_token().access_token

        with ThreadPoolExecutor(64) as pool:
            tokens = set(pool.map(one, range(64)))
        assert len(tokens) == 1  # every thread got the one token of this expiry
        assert _per_hop(server, before) == [expiry + 1] * 3
        assert server.introspect(tokens.pop())["aud"] == HOPS[-1]
        _past_expiry(clock, hops)


def test_a_three_hop_chain_under_200_tasks(server: OidcProviderServer) -> None:
    clock = FakeClock()
    hops = _chain(server, clock)
    before = server.stats()

    async def main() -> None:
        for expiry in range(EXPIRIES):
            tokens = await asyncio.gather(*(hops[-1].aget_token() for _ in range(200)))
            assert len({t.access_token for t in tokens}) == 1
            assert _per_hop(server, before) == [expiry + 1] * 3
            _past_expiry(clock, hops)

    asyncio.run(main())


def test_one_credential_for_100_resources_under_64_threads(server: OidcProviderServer) -> None:
    """for_resource siblings share the subject and the client: one exchange per resource
    per expiry, and one subject token for all of them."""
    clock = FakeClock()
    root = OAuth2ClientCredentialsAuth(
        token_url=server.token_url, client_id=CLIENT, client_secret=PLAIN_SECRET, clock=clock
    )
    auth = OAuth2TokenExchangeAuth(
        token_url=server.token_url,
        client_id=CLIENT,
        client_secret=PLAIN_SECRET,
        subject_token=root,
        resource=FAN[0],
        clock=clock,
    )
    before = server.stats()
    for expiry in range(EXPIRIES):
        barrier = threading.Barrier(64)

        def sweep(index: int, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            for offset in range(len(FAN)):  # each thread starts at another resource
                auth.for_resource(FAN[(index + offset) % len(FAN)]).get_token()

        with ThreadPoolExecutor(64) as pool:
            list(pool.map(sweep, range(64)))
        after = server.stats()
        calls = sum(
            after[f"token-exchange:ok:{url}"] - before[f"token-exchange:ok:{url}"] for url in FAN
        )
        assert calls == 100 * (expiry + 1)
        assert after["client_credentials:ok"] - before["client_credentials:ok"] == expiry + 1
        token = auth.for_resource(FAN[1]).token
        assert token is not None
        assert token.expires_at is not None
        clock.advance(token.expires_at - clock.time() + 1)
    assert server.stats()[f"{TOKEN_EXCHANGE_GRANT}:ok"] >= 200
