"""What an auth object is made of: checked options, a token client and a token manager.

Imported by the first construction of an auth object, not by ``import authplug``: a
program that imports the package (an SDK's command line showing its help, say) pays
for the class definitions only.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from ._adapters.binding import Binding
from ._call.client import TokenClient
from ._call.plan import aperform, perform
from ._net import PlainHttpWarner
from ._options import Options
from ._renew import otel
from ._renew.manager import TokenManager
from ._renew.renewal import Performer, Renewer
from ._renew.report import Reporter
from .cache import MemoryTokenCache, cache_key

__all__ = ["Binding", "Parts", "assemble"]


class Parts(NamedTuple):
    """The working parts of one auth object."""

    warner: PlainHttpWarner
    client: TokenClient
    manager: TokenManager


def assemble(options: Options) -> Parts:
    """The parts of an auth object with ``options`` (already checked)."""
    spec = options.spec
    client = TokenClient(options)
    transport = client.transport
    reporter = Reporter(
        spec.name, [o for o in (options.on_event, otel.observer()) if o is not None]
    )
    manager = TokenManager(
        renewer=Renewer(
            source=client,
            clock=options.clock,
            leeway=options.leeway,
            dpop=options.dpop,
            reporter=reporter,
            grant_type=spec.grant_type,
        ),
        # The token calls' effects go straight to the transport: no TokenClient between.
        performer=Performer(
            functools.partial(perform, transport=transport, clock=options.clock),
            functools.partial(aperform, transport=transport, clock=options.clock),
        ),
        reporter=reporter,
        cache=options.cache,
        key=cache_key(
            # A person's login is the same login whichever flow made it (and never a
            # client credentials token of the same client): one name for both.
            provider="login" if options.login is not None else spec.name,
            # With discovery, the issuer names the server (its endpoint is not known yet).
            token_url=options.token_url or f"issuer:{options.issuer}",
            client_id=options.client_id,
            username=options.username,
            scope=options.scope,
            resource=options.resource,
            audience=options.audience,
            dpop_jkt=options.dpop.jkt if options.dpop is not None else None,
        ),
        clock=options.clock,
        on_token=options.on_token,
        initial=options.token,
        # The longest a renewal may take: the cache's own waits, then the token call.
        wait_limit=client.wait_limit + float(getattr(options.cache, "max_wait", 0.0)) + 5,
        dpop=options.dpop,
        threads=_blocking_ok(options),
        # A cache that outlives the process: a renewal under way is finished at exit.
        persist=None if isinstance(options.cache, MemoryTokenCache) else options.timeout,
    )
    _follow_subjects(options, manager)
    return Parts(PlainHttpWarner(spec.name), client, manager)


def _follow_subjects(options: Options, manager: TokenManager) -> None:
    """A token exchange whose subject (or actor) is another auth object is renewed when
    that object's token is replaced."""
    for source in options.derived.inputs() if options.derived is not None else ():
        if source.upstream is not None:
            source.upstream._manager.follow(manager.subject_changed)  # type: ignore[attr-defined]


def _blocking_ok(options: Options) -> bool:
    """Whether renewals may run in threads, with blocking calls: not with a cache that
    only an event loop can drive (a redis.asyncio client), nor with an async
    ``client_assertion`` callable, or an async callable a token is made from (each then
    runs on the caller's loop)."""
    assertion = options.client_assertion
    if assertion is not None and assertion.kind == "async":
        return False
    inputs = options.derived.inputs() if options.derived is not None else ()
    return bool(getattr(options.cache, "serves_sync", True)) and all(
        source.kind != "async"
        for source in inputs  # made from an async callable
    )
