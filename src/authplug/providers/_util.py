"""Small helpers shared by provider modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError

__all__ = ["authenticates_otherwise", "default_url", "join_url"]


def join_url(name: str, base: object, path: str) -> str:
    """``base`` (no trailing slash needed) followed by ``path``."""
    if not isinstance(base, str) or not base:
        raise ConfigurationError(f"{name}= must be a URL string")
    return base.rstrip("/") + path


def default_url(token_url: str | None, options: Mapping[str, Any], default: str) -> str | None:
    """A provider's documented token URL, unless the user gave one or an issuer."""
    if token_url is None and options.get("issuer") is None:
        return default
    return token_url


def authenticates_otherwise(options: Mapping[str, Any]) -> bool:
    """Whether the options name a client authentication that needs no client secret
    (or name a method, whose own needs the options' checks enforce)."""
    return options.get("client_auth") is not None or any(
        options.get(name) is not None for name in ("private_key", "client_assertion")
    )
