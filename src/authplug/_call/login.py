"""A person logs in, as plans: the authorization code flow with PKCE on a loopback redirect
(RFC 6749 §4.1, RFC 7636, RFC 8252) and the device authorization grant (RFC 8628).

Each is the "full grant" of a login object: :class:`~authplug._call.client.TokenClient`
runs it where the other classes send their password or client credentials grant, so a
login gets the cache lock, single flight, events and retries of any token call. What a
login adds is a person, and a person is asked only where one can answer
(:func:`may_ask`): never from a background renewal, and by default only with a
callback given or a terminal to write to; otherwise :class:`LoginRequiredError`.

The person's part runs as a :class:`~authplug._call.plan.Call` effect (blocking under the
sync driver, a cancellable poll under the async one); the waits between two polls of the
device grant are :class:`~authplug._call.plan.Sleep` effects (the loop's sleep under
the async driver): nothing here blocks an event loop.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from .._redact import Scrubber, Secret
from ..errors import AuthError, CredentialsRejectedError, LoginRequiredError, TokenResponseError
from ..spec import describe_body, read_json
from ..token import DeviceCode, parse_number
from .derived import Exchanger
from .loopback import Loopback
from .plan import Call, Plan, Sleep

if TYPE_CHECKING:
    from ..token import Token
    from .messages import RawResponse

__all__ = [
    "AUTHORIZATION_CODE",
    "DEVICE_CODE",
    "LoginCalls",
    "LoginSettings",
    "code_login",
    "device_login",
    "may_ask",
]

log = logging.getLogger("authplug")

AUTHORIZATION_CODE = "authorization_code"
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8628 §3.5: a ``slow_down`` adds this many seconds to the polling interval.
SLOW_DOWN_STEP = 5.0
_DEFAULT_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class LoginSettings:
    """How a login object logs a person in (checked by the login classes).

    Attributes:
        flow: ``"code"`` (authorization code + PKCE) or ``"device"`` (RFC 8628).
        authorization_url: the authorization endpoint, unless discovery gives it.
        device_authorization_url: the device authorization endpoint, unless discovery
            gives it.
        redirect_uri: a fixed loopback redirect URI, or None for an ephemeral port.
        on_authorize: shown the authorization URL (instead of a browser).
        on_user_code: shown the :class:`~authplug.DeviceCode` (instead of stderr).
        interactive: True (always ask), False (never), None (ask with a callback or a
            terminal).
        login_timeout: seconds a login may wait for the person.
        hint: how to log in, for :class:`LoginRequiredError`'s message.
    """

    flow: Literal["code", "device"]
    authorization_url: str | None = None
    device_authorization_url: str | None = None
    redirect_uri: str | None = None
    on_authorize: Callable[[str], object] | None = None
    on_user_code: Callable[[DeviceCode], object] | None = None
    interactive: bool | None = None
    login_timeout: float = 300.0
    hint: str = "call auth.login()"

    @property
    def grant_type(self) -> str:
        return AUTHORIZATION_CODE if self.flow == "code" else DEVICE_CODE


class LoginCalls(Exchanger, Protocol):
    """The token calls a login makes (implemented by :class:`TokenClient`): the code or
    device-code exchange (:class:`~authplug._call.derived.Exchanger`), the device
    authorization request (its 2xx answer; a refusal raised), and the authorization URL."""

    def device_authorization(self, url: str, scrub: Scrubber) -> Plan[RawResponse]: ...

    def authorization_url(
        self, endpoint: str, redirect_uri: str, state: str, verifier: Secret
    ) -> str: ...


def _has_terminal() -> bool:
    """Whether a person may be reading this process's output."""
    streams = (sys.stdin, sys.stderr)
    return any(s is not None and hasattr(s, "isatty") and s.isatty() for s in streams)


def may_ask(settings: LoginSettings, ask: bool | None) -> bool:
    """Whether this login may ask a person: ``ask`` (True for an explicit ``login()``,
    False in the background) wins, then ``interactive=``, then: a callback given, or a
    terminal."""
    if ask is False or settings.interactive is False:
        return False
    if ask or settings.interactive:
        return True
    callback = settings.on_authorize if settings.flow == "code" else settings.on_user_code
    return callback is not None or _has_terminal()


def login_required(settings: LoginSettings, provider: str, background: bool) -> LoginRequiredError:
    """The error that says a person must log in, and how."""
    if background:
        why = "the login must be renewed by a person, and a background renewal asks nobody"
    elif settings.interactive is False:
        why = "a person must log in, and interactive=False"
    else:
        why = (
            "a person must log in, and nobody can be asked here (no terminal, no "
            f"{'on_authorize' if settings.flow == 'code' else 'on_user_code'}=)"
        )
    return LoginRequiredError(f"{why}: {settings.hint}", provider=provider)


# -- the authorization code flow ---------------------------------------------------


def code_login(
    settings: LoginSettings, calls: LoginCalls, token_url: str, endpoint: str, provider: str
) -> Plan[Token]:
    """The authorization code flow: PKCE S256, a fresh state, the loopback redirect."""
    from authlib.common.security import generate_token

    verifier = Secret(generate_token(64))
    state = generate_token(32)
    listener = Loopback(settings.redirect_uri, state, provider)
    try:
        url = calls.authorization_url(endpoint, listener.redirect_uri, state, verifier)
        show = _told(
            functools.partial(_show_url, settings.on_authorize, url), "on_authorize", provider
        )
        limit = settings.login_timeout

        def sync() -> Secret:
            show()
            return listener.wait(limit)

        async def asynchronous() -> Secret:
            from .. import _aio

            await _aio.to_thread(show)  # a user's callback may block: not on the loop
            return await listener.await_code(limit)

        code: Secret = yield Call(sync, asynchronous)
        secrets = {"code": code, "code_verifier": verifier}
        plain = {"redirect_uri": listener.redirect_uri}
        return (yield from calls.exchange(token_url, AUTHORIZATION_CODE, secrets, plain))
    finally:
        listener.close()


def _told(show: Callable[[], None], name: str, provider: str) -> Callable[[], None]:
    """``show``, whose failure (a user's callback raising) ends the login as an AuthError
    that names the callback (the person was never asked)."""

    def told() -> None:
        try:
            show()
        except Exception as exc:
            raise AuthError(
                f"{name} raised {type(exc).__name__}: {exc}", provider=provider, error=name
            ) from exc

    return told


def _show_url(on_authorize: Callable[[str], object] | None, url: str) -> None:
    """Give the person the authorization URL: ``on_authorize``, else a browser and stderr."""
    if on_authorize is not None:
        on_authorize(url)
        return
    opened = _browser_opens(url)
    print(
        ("A browser opened to log you in. If it did not, open this address:\n  " + url)
        if opened
        else ("To log in, open this address in a browser:\n  " + url),
        file=sys.stderr,
        flush=True,
    )


def _browser_opens(url: str) -> bool:
    """Open ``url`` in a graphical browser where there is one (never a text browser that
    would take over the terminal the URL is printed to)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("BROWSER")
    ):
        return False  # SSH, a container, a CI runner: print the address only
    import webbrowser

    try:
        return webbrowser.open(url)
    except Exception:  # a broken browser set-up is no reason to fail the login
        return False


# -- the device authorization grant ---------------------------------------------------


def device_login(
    settings: LoginSettings,
    calls: LoginCalls,
    token_url: str,
    endpoint: str,
    provider: str,
    scrub: Scrubber,
    now: Callable[[], float],
) -> Plan[Token]:
    """RFC 8628: ask for a user code, show it, poll the token endpoint until the person
    decides (``interval`` honoured, 5 s more after each ``slow_down``)."""
    raw = yield from calls.device_authorization(endpoint, scrub)
    device_code, shown = read_device_answer(raw, scrub, provider)
    tell = _told(
        functools.partial(_show_user_code, settings.on_user_code, shown), "on_user_code", provider
    )

    def sync() -> Secret:
        tell()
        return device_code

    async def asynchronous() -> Secret:
        from .. import _aio

        await _aio.to_thread(tell)
        return device_code

    yield Call(sync, asynchronous)
    deadline = now() + min(shown.expires_in, settings.login_timeout)
    interval = shown.interval
    while True:
        yield Sleep(interval)
        try:
            return (
                yield from calls.exchange(token_url, DEVICE_CODE, {"device_code": device_code}, {})
            )
        except CredentialsRejectedError as exc:
            if exc.error == "slow_down":
                interval += SLOW_DOWN_STEP
            elif exc.error != "authorization_pending":
                raise _device_refusal(exc, provider) from None
        if now() + interval > deadline:
            raise AuthError(
                "the person did not complete the device login in time (the user code "
                "expired or login_timeout= passed): log in again",
                provider=provider,
                error="expired_token",
            )


def _device_refusal(exc: CredentialsRejectedError, provider: str) -> AuthError:
    """The end of a device login the server refused, said plainly."""
    if exc.error == "access_denied":
        what = "the person denied the device login (access_denied)"
    elif exc.error == "expired_token":
        what = "the user code expired before the person completed the login: log in again"
    else:
        return exc
    return AuthError(what, provider=provider, status_code=exc.status_code, error=exc.error)


def read_device_answer(
    raw: RawResponse, scrub: Scrubber, provider: str
) -> tuple[Secret, DeviceCode]:
    """The device authorization endpoint's 2xx answer: the device code (a secret) and
    what the person sees.

    Raises:
        TokenResponseError: the answer lacks the fields RFC 8628 §3.2 requires.
    """
    data = read_json(raw.content)
    device = data.get("device_code") if isinstance(data, dict) else None
    if isinstance(device, str) and device:
        scrub.learn((Secret(device),))  # before any message could quote the answer
    if not isinstance(data, dict):
        what = describe_body(raw.status_code, raw.content_type, raw.content, excerpt=False)
        raise TokenResponseError(f"the device authorization answer is {what}", provider=provider)
    uri = data.get("verification_uri", data.get("verification_url"))  # Google's older name
    user_code = data.get("user_code")
    complete = data.get("verification_uri_complete")
    expires_in = parse_number(data.get("expires_in"))
    interval = parse_number(data.get("interval", _DEFAULT_INTERVAL))
    problems = [
        name
        for name, ok in (
            ("device_code", isinstance(device, str) and bool(device)),
            ("user_code", isinstance(user_code, str) and bool(user_code)),
            ("verification_uri", isinstance(uri, str) and uri.startswith(("https://", "http://"))),
            ("expires_in", expires_in is not None and expires_in > 0),
            ("interval", interval is not None and 0 <= interval <= 3600),
        )
        if not ok
    ]
    if complete is not None and not isinstance(complete, str):
        problems.append("verification_uri_complete")
    if problems:
        raise TokenResponseError(
            "the device authorization answer lacks or garbles "
            f"{', '.join(problems)} (RFC 8628 §3.2)",
            provider=provider,
        )
    assert isinstance(device, str)  # noqa: S101 - checked above, for mypy
    assert isinstance(user_code, str)  # noqa: S101
    assert isinstance(uri, str)  # noqa: S101
    shown = DeviceCode(
        verification_uri=uri,
        verification_uri_complete=complete,
        user_code=user_code,
        expires_in=float(expires_in or 0),
        interval=float(interval if interval is not None else _DEFAULT_INTERVAL),
    )
    return Secret(device), shown


def _show_user_code(on_user_code: Callable[[DeviceCode], object] | None, code: DeviceCode) -> None:
    """Tell the person where to go and what to type: ``on_user_code``, else stderr."""
    if on_user_code is not None:
        on_user_code(code)
        return
    lines = [f"To log in, open {code.verification_uri} and enter the code {code.user_code}"]
    if code.verification_uri_complete:
        lines.append(f"(or open {code.verification_uri_complete})")
    print("\n".join(lines), file=sys.stderr, flush=True)
