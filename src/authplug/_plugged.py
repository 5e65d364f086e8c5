"""What an auth object is to the HTTP clients: the base class httpx asks for, the entry
points each client calls, and the working parts those reach, built on first use.

:class:`~authplug.BaseAuth` (``auth.py``) adds the options and the lifecycle; this class
holds what every client sees of it. Building an object checks its options and stops
there: the token manager, the token client and the adapters' :class:`Binding` wait for
the first use (a request, ``get_token()``, ``.token``, ``revoke()``, ``close()``), so a
program that builds an auth object and never sends (a CLI showing its help) loads none
of the machinery.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Generator
from typing import TYPE_CHECKING, Any, TypeVar, overload

import httpx

if TYPE_CHECKING:
    import aiohttp
    import niquests
    import requests

    from ._adapters.binding import Binding
    from ._call.client import TokenClient
    from ._options import Options
    from ._renew.manager import TokenManager

    _Base = httpx.Auth
else:
    try:  # the maintained fork: the same object serves its clients too
        import httpx2

        _Base = type("_Base", (httpx.Auth, httpx2.Auth), {})
    except ImportError:
        _Base = httpx.Auth

__all__ = ["Plugged", "Siblings"]

_S = TypeVar("_S", bound="Siblings")

#: The working parts of an auth object, assembled on its first use (``_assemble``).
_PARTS = frozenset({"_manager", "_client", "_binding"})
# One lock for every object's assembly (milliseconds, once per object); a forked child
# gets a new one, in case a thread of the parent held it. Re-entrant: a token exchange's
# assembly assembles the auth object its subject token comes from (to follow it).
_assembling = threading.RLock()


def _reset_after_fork() -> None:
    global _assembling, _making
    _assembling = threading.RLock()
    _making = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


class Plugged(_Base):
    """The clients' side of an auth object (its options come from the subclass)."""

    if TYPE_CHECKING:
        options: Options
        refresh_status_codes: Collection[int]

    # The working parts wait for the object's first use: a program that builds an auth
    # object and never sends (a CLI showing its help) loads none of the machinery.
    if TYPE_CHECKING:  # (not at run time: the docs would try to resolve them)
        _manager: TokenManager
        _client: TokenClient
        # What the clients' drivers need, one value: a plain attribute read per request.
        _binding: Binding
    else:  # hidden from mypy, which would then allow any attribute name

        def __getattr__(self, name: str) -> Any:  # only for a name not found
            if name in _PARTS and "options" in self.__dict__:
                self._assemble()
                return self.__dict__[name]
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}", name=name, obj=self
            )

    def _assemble(self) -> None:
        """Build the working parts once, whichever thread asks first; publish them at once
        (another thread sees all of them, or none and waits for the lock)."""
        with _assembling:
            if "_manager" not in self.__dict__:
                from . import _assembly

                parts = _assembly.assemble(self.options)
                self.__dict__.update(
                    _binding=_assembly.Binding(
                        parts.manager, self.refresh_status_codes, parts.warner
                    ),
                    _client=parts.client,
                    _manager=parts.manager,
                )

    # -- requests, niquests and aiohttp -------------------------------------------

    def _bound(self) -> Binding:
        """What the clients' drivers need of this object (the one way the entry points
        reach the manager)."""
        return self._binding

    @overload
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest: ...

    @overload
    def __call__(self, request: niquests.PreparedRequest) -> niquests.PreparedRequest: ...

    @overload
    def __call__(
        self,
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> Awaitable[aiohttp.ClientResponse]: ...

    def __call__(self, request: Any, handler: Any = None) -> Any:
        """requests' and niquests' auth hook, and an aiohttp client middleware.

        requests and niquests call ``auth(request)``; aiohttp calls its middlewares as
        ``middleware(request, handler)`` and awaits the result.

        Args:
            request: the prepared request (requests, niquests), or aiohttp's
                ``ClientRequest``.
            handler: aiohttp's next handler; None for requests and niquests.

        Returns:
            The request, carrying the token and a hook that renews and replays it on a
            refusal (requests, niquests); for aiohttp, an awaitable of the response.
        """
        if handler is not None:
            return self._bound().aiohttp(request, handler)
        if type(request).__module__.startswith("niquests."):
            from ._adapters import niquests_hook

            if niquests_hook.in_async_session():
                return niquests_hook.apply(self._bound(), request)
        return self._bound().requests(request)

    # -- httpx -------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """httpx's and httpx2's auth flow for ``Client``: the request goes with the token;
        on a refusal the token is renewed and the request yielded once more.

        Args:
            request: the request the client is about to send.

        Returns:
            The generator the client drives: it yields requests and is sent their
            responses.
        """
        return self._bound().httpx_sync(request)

    def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """:meth:`sync_auth_flow` for ``AsyncClient``, under asyncio or trio: waiting for
        a token never blocks the event loop.

        Args:
            request: the request the client is about to send.

        Returns:
            The async generator the client drives.
        """
        return self._bound().httpx_async(request)


# -- siblings: many audiences from one credential -----------------------------------
#
# ``auth.for_resource(url)``, ``auth.for_audience(aud)`` and ``auth.with_scope(scope)``
# return an auth object of the same class and credentials that asks for that resource
# (RFC 8707), audience or scope instead: its own token and cache key, the same token
# transport (one connection pool), cache and clock, closed with its parent. The same
# sibling comes back for the same value, whichever thread asks: 100 resources asked for
# by 64 threads are 100 siblings, and one token call each per expiry (azure-identity's
# ``get_token(*scopes)`` serves the same need). Here, not in a module of its own: this
# module is loaded by ``import authplug`` already.

# One lock for every object's siblings: a sibling is made once per value.
_making = threading.Lock()
#: What a sibling never shares with its parent: its working parts, its own siblings.
_OWN = frozenset({"_manager", "_client", "_binding", "_siblings", "options"})


class Siblings:
    """The part of :class:`~authplug.BaseAuth` that makes siblings."""

    if TYPE_CHECKING:
        options: Options
        scope: str | None

        def _assemble(self) -> None: ...

    def for_resource(self: _S, resource: str) -> _S:
        """This object for another API: the same credentials, transport, cache and
        lifecycle, with its own token for the resource indicator ``resource`` (RFC 8707).

        Args:
            resource: an absolute URI, the API's resource indicator.

        Returns:
            The sibling for ``resource`` (the same one each time it is asked for).

        Raises:
            ConfigurationError: ``resource`` is not an absolute URI without a fragment.
        """
        from ._options import _resources

        return self._sibling("resource", _resources(resource))

    def for_audience(self: _S, audience: str) -> _S:
        """This object asking for ``audience`` (its own token; see :meth:`for_resource`).

        Args:
            audience: the ``audience`` parameter to send.

        Returns:
            The sibling for ``audience``.

        Raises:
            ConfigurationError: ``audience`` is not a non-empty string.
        """
        from ._options import text

        return self._sibling("audience", text("audience", audience, required=True))

    def with_scope(self: _S, scope: str | list[str]) -> _S:
        """This object asking for ``scope`` (its own token; see :meth:`for_resource`).

        Args:
            scope: a space-separated string or a list of strings.

        Returns:
            The sibling for ``scope``.

        Raises:
            ConfigurationError: ``scope`` is not a scope.
        """
        from ._options import _scope

        return self._sibling("scope", _scope(scope))

    def _sibling(self: _S, field: str, value: Any) -> _S:
        key = (field, value)
        made = self.__dict__.get("_siblings", {}).get(key)
        if made is not None:  # the usual case, on a request's path: no lock
            return made  # type: ignore[no-any-return]
        with _making:
            family: dict[tuple[str, Any], Any] = self.__dict__.setdefault("_siblings", {})
            made = family.get(key)
            if made is not None:
                return made  # type: ignore[no-any-return]
            # The parent's transport is shared: assemble the parent first (outside the
            # lock would do too, but this is once per value).
            transport = self._client.transport  # type: ignore[attr-defined]
            import dataclasses

            sibling = object.__new__(type(self))
            sibling.__dict__.update({k: v for k, v in self.__dict__.items() if k not in _OWN})
            sibling.options = dataclasses.replace(
                self.options, **{field: value}, shared_transport=transport
            )
            if field == "scope":
                sibling.scope = value
            family[key] = sibling
        from .cache import MemoryTokenCache

        if not isinstance(sibling.options.cache, MemoryTokenCache):
            sibling._assemble()  # as its parent: the SIGTERM guard, from this thread
        return sibling

    def _siblings_now(self) -> list[Siblings]:
        """The siblings made so far (to close them with this object)."""
        with _making:
            return list(self.__dict__.get("_siblings", {}).values())
