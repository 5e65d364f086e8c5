"""The values a token call is made of: the request, the answer, the failure to get one.

Plain data, no HTTP library: the plans (:mod:`authplug._call.plan`) and the token brain
pass them around; only :mod:`authplug._call.transport` puts them on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .._redact import Scrubber, StandIn, safe_url

__all__ = ["RawResponse", "TokenRequest", "TransportFailure"]


@dataclass(frozen=True, slots=True, repr=False)
class TokenRequest:
    """A prepared token request, secrets still replaced by stand-ins.

    Its repr shows the method and the URL without its query, nothing else.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    body_kind: Literal["form", "json"] = "form"
    stand_ins: tuple[StandIn, ...] = ()
    scrub: Scrubber = field(default_factory=lambda: Scrubber(()))
    #: A token call, a revocation, the read of the issuer's metadata, or a device
    #: authorization (only a token call's requests are counted as its attempts).
    purpose: Literal["token", "revocation", "metadata", "device"] = "token"

    def __repr__(self) -> str:
        return f"TokenRequest({self.method} {safe_url(self.url)})"


@dataclass(frozen=True, slots=True)
class RawResponse:
    """The token endpoint's answer, read whole (token answers are small)."""

    status_code: int
    headers: Mapping[str, str] = field(repr=False)  # lower-case names
    content: bytes = field(repr=False)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class TransportFailure(Exception):
    """No answer at all: connection refused, TLS failure, timeout…"""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description
