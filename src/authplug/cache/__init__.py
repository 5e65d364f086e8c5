"""Where tokens are kept between renewals, and how renewal is serialised across processes.

The manager consults a cache only when its own token is missing, due for renewal or
refused: the hot path of a request never touches it.

The file, keyring and Redis back ends are imported when first named (``authplug.cache``
stays cheap to import for programs that keep tokens in memory).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import exports
from ._base import CacheError, TokenCache, cache_key
from ._memory import MemoryTokenCache

if TYPE_CHECKING:
    from ._file import FileTokenCache
    from ._keyring import KeyringTokenCache
    from ._redis import RedisTokenCache

__all__ = [
    "CacheError",
    "FileTokenCache",
    "KeyringTokenCache",
    "MemoryTokenCache",
    "RedisTokenCache",
    "TokenCache",
    "cache_key",
]

__getattr__, __dir__ = exports(
    __name__,
    globals(),
    {
        "FileTokenCache": "._file",
        "KeyringTokenCache": "._keyring",
        "RedisTokenCache": "._redis",
    },
    __all__,
)
