"""Where tokens are kept between renewals, and how renewal is serialised across processes.

The manager consults a cache only when its own token is missing, due for renewal or
refused: the hot path of a request never touches it.
"""

from __future__ import annotations

from ._base import CacheError, TokenCache, cache_key
from ._file import FileTokenCache
from ._memory import MemoryTokenCache
from ._redis import RedisTokenCache

__all__ = [
    "CacheError",
    "FileTokenCache",
    "MemoryTokenCache",
    "RedisTokenCache",
    "TokenCache",
    "cache_key",
]
