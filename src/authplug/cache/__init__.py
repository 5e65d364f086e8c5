"""Where tokens are kept between renewals, and how renewal is serialised across processes.

The manager consults a cache only when its own token is missing, due for renewal or
refused: the hot path of a request never touches it.
"""

from __future__ import annotations

from ._base import TokenCache, cache_key
from ._memory import MemoryTokenCache

__all__ = ["MemoryTokenCache", "TokenCache", "cache_key"]
