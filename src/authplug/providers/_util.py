"""Small helpers shared by provider modules."""

from __future__ import annotations

from ..errors import ConfigurationError


def join_url(name: str, base: object, path: str) -> str:
    """``base`` (no trailing slash needed) followed by ``path``."""
    if not isinstance(base, str) or not base:
        raise ConfigurationError(f"{name}= must be a URL string")
    return base.rstrip("/") + path
