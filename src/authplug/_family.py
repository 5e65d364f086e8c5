"""Many audiences from one credential: an auth object's siblings.

``auth.for_resource(url)``, ``auth.for_audience(aud)`` and ``auth.with_scope(scope)``
return an auth object of the same class and credentials that asks for that resource
(RFC 8707), audience or scope instead: its own token and cache key, the same token
transport (one connection pool), cache and clock, closed with its parent. The same
sibling comes back for the same value, whichever thread asks: 100 resources asked for by
64 threads are 100 siblings, and one token call each per expiry (azure-identity's
``get_token(*scopes)`` serves the same need).
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ._options import Options

__all__ = ["Siblings"]

_S = TypeVar("_S", bound="Siblings")
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
        with _making:
            family: dict[tuple[str, Any], Any] = self.__dict__.setdefault("_siblings", {})
            made = family.get(key)
            if made is not None:
                return made  # type: ignore[no-any-return]
            # The parent's transport is shared: assemble the parent first (outside the
            # lock would do too, but this is once per value).
            transport = self._client.transport  # type: ignore[attr-defined]
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
