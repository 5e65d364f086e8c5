"""Workload identity sources: the tokens a platform gives a workload, as callables.

Each source is a callable that returns the current token text, so it goes wherever
authplug takes an assertion callable (``client_assertion=`` of every auth class):

- :class:`KubernetesTokenFile`: a projected service-account token file.
- :class:`AzureFederatedTokenFile`: the file named by ``AZURE_FEDERATED_TOKEN_FILE``
  (Azure workload identity).
- :class:`AWSWebIdentityTokenFile`: the file named by ``AWS_WEB_IDENTITY_TOKEN_FILE``
  (EKS IAM roles for service accounts).
- :class:`GitHubActionsToken`: an OIDC token asked of GitHub Actions
  (``ACTIONS_ID_TOKEN_REQUEST_URL`` / ``ACTIONS_ID_TOKEN_REQUEST_TOKEN``).

A file is read again when it changes: kubelet rotates a projected token by writing it
into a new directory and swapping a ``..data`` symlink, so the file's resolved path,
inode, size and times are looked at (a few system calls) at each call and the text is
read only when one of them differs. A missing variable or file is a
:class:`~authplug.errors.ConfigurationError` naming it, at construction. No repr,
message or log line shows a token: the sources show their paths and variable names.

The sources are plain blocking callables: authplug calls them in a thread of their own
under an event loop (asyncio or trio), never on the loop's thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypeVar

from ._redact import Secret, safe_url
from .errors import (
    AuthError,
    ConfigurationError,
    CredentialsRejectedError,
    TokenEndpointError,
    TokenResponseError,
)

if TYPE_CHECKING:
    from ._inputs import FileProblem

__all__ = [
    "AWSWebIdentityTokenFile",
    "AzureFederatedTokenFile",
    "GitHubActionsToken",
    "KubernetesTokenFile",
]

log = logging.getLogger("authplug")

#: Where kubelet projects a pod's service-account token.
KUBERNETES_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class _Seen(NamedTuple):
    """What identifies one version of a file: a rotation changes at least one of these."""

    target: str
    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int


K = TypeVar("K")


class _Kept(Generic[K]):
    """A token kept with what tells whether it is still current (a file's version, a
    renewal time); threads that find it stale share one renewal."""

    __slots__ = ("_kept", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The token (a Secret: a traceback's locals show ***) with its key.
        self._kept: tuple[K, Secret] | None = None

    def _kept_or_new(self, fits: Callable[[K], bool], new: Callable[[], tuple[K, Secret]]) -> str:
        """The kept token if ``fits`` its key, else the one ``new()`` makes (kept)."""
        kept = self._kept
        if kept is None or not fits(kept[0]):
            with self._lock:
                kept = self._kept
                if kept is None or not fits(kept[0]):
                    kept = self._kept = new()
        return kept[1].reveal()


class _TokenFile(_Kept[_Seen]):
    """A token kept in a file by the platform, read again when the file changes.

    Args:
        path: the file.
        origin: how the path was given, for messages (``"path="``, ``"VARIABLE="``).
    """

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str], origin: str) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigurationError(
                f"{origin}{os.fspath(self.path)!r} is not a file: is the token projected "
                "into this container, and is the path right?"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({os.fspath(self.path)!r})"

    def _version(self) -> _Seen:
        """The file's identity now; ValueError naming it when it cannot be looked at."""
        try:
            # Each follows the links at its own moment: a swap between the two gives a
            # mixed version, which the next call sees as another (one read more), never
            # a failure (kubelet removes the old directory right after the swap).
            target = os.path.realpath(self.path)
            info = os.stat(self.path)
        except OSError as exc:
            raise ValueError(
                f"the token file {os.fspath(self.path)!r} cannot be read "
                f"({exc.strerror or type(exc).__name__})"
            ) from None
        return _Seen(
            target, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns
        )

    def __call__(self) -> str:
        """The token in the file now (read again when the file changed).

        Raises:
            ValueError: the file is gone, unreadable, not UTF-8, or empty; the message
                names the file, never its content.
        """
        version = self._version()
        # Looked at before the read: a rotation during it is seen at the next call. Read
        # by its path (the links followed once, at open), not by the old target.
        return self._kept_or_new(version.__eq__, lambda: (version, self._read_token()))

    def _read_token(self) -> Secret:
        from ._inputs import read_small_file

        token = _token_text(read_small_file(self.path))
        if isinstance(token, str):
            raise ValueError(f"the token file {os.fspath(self.path)!r} {token}")
        return token


def _token_text(data: bytes | FileProblem) -> Secret | str:
    """The token in a file's content, or what is wrong with it (returned, not raised:
    this frame holds the content, which a traceback's locals would show)."""
    from ._inputs import FileProblem

    if isinstance(data, FileProblem):
        return f"cannot be read ({data.reason})"
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return "is not UTF-8 text"
    if not text:
        return "is empty: has the platform written the token yet?"
    return Secret(text)


class _VariableTokenFile(_TokenFile):
    """A token file named by the environment variable :attr:`variable`."""

    __slots__ = ()
    variable: ClassVar[str]

    def __init__(self) -> None:
        name = self.variable
        path = os.environ.get(name, "")
        if not path:
            raise ConfigurationError(
                f"the environment variable {name} is not set: it names the token file the "
                "platform projects (is workload identity enabled for this workload?)"
            )
        super().__init__(path, f"{name}=")


class KubernetesTokenFile(_TokenFile):
    """A Kubernetes projected service-account token, read again when kubelet rotates it.

    Args:
        path: the token file; by default the pod's service-account token,
            ``/var/run/secrets/kubernetes.io/serviceaccount/token``. A token projected
            for another audience (a ``serviceAccountToken`` volume) has the path its
            volume mount gives.

    Raises:
        ConfigurationError: no file is at ``path``.
    """

    __slots__ = ()

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(KUBERNETES_TOKEN_PATH if path is None else path, "path=")


class AzureFederatedTokenFile(_VariableTokenFile):
    """The token file of Azure workload identity, named by ``AZURE_FEDERATED_TOKEN_FILE``
    (as azure-identity's ``WorkloadIdentityCredential`` reads it), read again on change.

    Raises:
        ConfigurationError: the variable is not set, or names no file.
    """

    __slots__ = ()
    variable = "AZURE_FEDERATED_TOKEN_FILE"


class AWSWebIdentityTokenFile(_VariableTokenFile):
    """The web identity token file of AWS (EKS IAM roles for service accounts), named by
    ``AWS_WEB_IDENTITY_TOKEN_FILE``, read again on change.

    Raises:
        ConfigurationError: the variable is not set, or names no file.
    """

    __slots__ = ()
    variable = "AWS_WEB_IDENTITY_TOKEN_FILE"


_URL = "ACTIONS_ID_TOKEN_REQUEST_URL"
_BEARER = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
#: A token is asked for again this long before its ``exp``: what it authenticates (a
#: token call) must reach the server while it is valid.
EXPIRY_MARGIN = 60.0
_TIMEOUT = 10.0
_PROVIDER = "github-actions"


class GitHubActionsToken(_Kept[float]):
    """An OIDC token of the running GitHub Actions job, asked for again near its expiry.

    GitHub gives a job with the ``id-token: write`` permission the variables
    ``ACTIONS_ID_TOKEN_REQUEST_URL`` and ``ACTIONS_ID_TOKEN_REQUEST_TOKEN``; the token is
    a GET of that URL with ``audience`` added, authenticated by the request token. It is
    kept until a minute before its ``exp`` (read, not verified: the server that receives
    it verifies it), and threads share one request.

    Args:
        audience: the ``aud`` the token is issued for (what the receiving server
            expects); None: GitHub's default, the URL of the repository's owner.

    Raises:
        ConfigurationError: a variable is missing (the job lacks ``id-token: write``).
    """

    __slots__ = ("_bearer", "_url", "audience")

    def __init__(self, audience: str | None = None) -> None:
        missing = [name for name in (_URL, _BEARER) if not os.environ.get(name)]
        if missing:
            raise ConfigurationError(
                f"{' and '.join(missing)} not set: run in a GitHub Actions job with "
                "`permissions: id-token: write`"
            )
        if audience is not None and (not isinstance(audience, str) or not audience):
            raise ConfigurationError("audience= takes a non-empty string, or None")
        super().__init__()
        self.audience = audience
        self._url = os.environ[_URL]
        self._bearer = Secret(os.environ[_BEARER])

    def __repr__(self) -> str:
        # getattr: a traceback's locals may show one whose __init__ raised.
        return f"GitHubActionsToken(audience={getattr(self, 'audience', None)!r})"

    def __call__(self) -> str:
        """The job's OIDC token: the kept one, or a new one near its expiry.

        Raises:
            CredentialsRejectedError: GitHub refused the request token (400, 401, 403).
            TokenEndpointError: no answer, or another error status, after one retry.
            TokenResponseError: an answer without a usable token.
        """
        # Kept with when to ask again (wall time: the token's exp is wall time).
        return self._kept_or_new(lambda renew_at: time.time() < renew_at, self._ask_github)

    def _request_url(self) -> str:
        from urllib.parse import quote

        if self.audience is None:
            return self._url
        joiner = "&" if "?" in self._url else "?"
        return f"{self._url}{joiner}audience={quote(self.audience, safe='')}"

    def _ask_github(self) -> tuple[float, Secret]:
        import httpx

        url = self._request_url()
        where = f"GitHub Actions' OIDC token endpoint ({safe_url(url)})"
        with httpx.Client(timeout=_TIMEOUT) as client:
            answer = self._attempt(client, url)
            if isinstance(answer, str) or answer[0] >= 500:  # one retry: it may pass
                answer = self._attempt(client, url)
        if isinstance(answer, str):
            raise TokenEndpointError(f"{where} could not be reached ({answer})", provider=_PROVIDER)
        kept = _kept_token(answer[0], answer[1], where)
        del answer  # the body: a traceback's locals must not show it
        if isinstance(kept, AuthError):
            raise kept from None  # nothing to chain: the error was made, not caught
        return kept

    def _attempt(self, client: Any, url: str) -> tuple[int, bytes] | str:
        """The answer's status and body, or the name of the network failure.

        Returned, not raised: this frame holds the request token, which a traceback's
        locals would show, and httpx's exception holds the request and its headers.
        """
        import httpx

        headers = {"Authorization": f"Bearer {self._bearer.reveal()}", "Accept": "application/json"}
        try:
            response = client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return response.status_code, response.content


def _kept_token(status: int, body: bytes, where: str) -> tuple[float, Secret] | AuthError:
    """The token of a GitHub answer and when to ask again; or the error to raise
    (returned, not raised: this frame holds the body, which may hold a token)."""
    import json

    if status in (400, 401, 403):
        return CredentialsRejectedError(
            f"{where} refused the request token (does the job have `id-token: write`?)",
            provider=_PROVIDER,
            status_code=status,
        )
    if status != 200:
        return TokenEndpointError(
            f"{where} answered an error", provider=_PROVIDER, status_code=status
        )
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        answer = None
    value = answer.get("value") if isinstance(answer, dict) else None
    if not isinstance(value, str) or value.count(".") != 2 or any(c.isspace() for c in value):
        return TokenResponseError(
            f'{where} answered without a JWT in "value"', provider=_PROVIDER, status_code=status
        )
    expiry = _expiry(value)
    log.debug("authplug: GitHub Actions issued an OIDC token (exp %s)", expiry)
    # No readable exp: kept for no time at all, asked for at each call.
    return (expiry - EXPIRY_MARGIN if expiry is not None else 0.0), Secret(value)


def _expiry(jwt: str) -> float | None:
    """The ``exp`` of a JWT's payload, unverified (only to know when to ask again)."""
    import base64
    import json

    payload = jwt.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None
