"""A person's login on every client: one prompt for many callers, a loop that keeps
turning while the person decides, and a refused refresh token that asks again only on
the request path.

The emulator is the authorization server (a public client); a
:class:`~authplug.testing.HeadlessPerson` answers. Blocking clients send from 16
threads, each with its own session; async clients from 16 tasks on one event loop.
Everything here is counted: prompts, token calls by grant, statuses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from authplug import (
    BaseAuth,
    LoginRequiredError,
    MemoryTokenCache,
    OAuth2AuthorizationCodeAuth,
    OAuth2DeviceCodeAuth,
)
from authplug.testing import FakeClock, HeadlessPerson, OAuth2Emulator

from ..conftest import CLIENTS, Driver, make_driver

CLIENT_ID = "my-cli"
SCOPE = "openid offline_access api"
CALLERS = 16
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SAFETY = 10.0  # seconds a test waits for something that should come at once
TICKS = 50  # event-loop turns that must complete while a login waits for the person
ASYNC_CLIENTS = [
    kind for kind in CLIENTS if kind.endswith("_async") or kind in ("httpx_trio", "aiohttp")
]


@pytest.fixture
def idp(clock: FakeClock) -> Iterator[OAuth2Emulator]:
    """A public client's server; its clock (expiries, device polls) is the test's."""
    with OAuth2Emulator(client_id=CLIENT_ID, client_secret=None, clock=clock) as emulator:
        yield emulator


def code_auth(idp: OAuth2Emulator, **options: Any) -> OAuth2AuthorizationCodeAuth:
    options.setdefault("login_timeout", SAFETY)
    return OAuth2AuthorizationCodeAuth(
        issuer=idp.issuer, client_id=CLIENT_ID, scope=SCOPE, **options
    )


def device_auth(idp: OAuth2Emulator, **options: Any) -> OAuth2DeviceCodeAuth:
    options.setdefault("login_timeout", SAFETY)
    return OAuth2DeviceCodeAuth(issuer=idp.issuer, client_id=CLIENT_ID, scope=SCOPE, **options)


class AllIn:
    """Holds the person's answer until every caller has started its request, so that the
    callers truly overlap the login (whoever arrives first leads it)."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._started = 0
        self._ready = threading.Condition()

    def start(self) -> None:
        with self._ready:
            self._started += 1
            self._ready.notify_all()

    def wait(self) -> None:
        with self._ready:
            if not self._ready.wait_for(lambda: self._started >= self._count, SAFETY):
                raise AssertionError(f"{self._started} of {self._count} callers started")

    def then(self, answer: Callable[[Any], object]) -> Callable[[Any], object]:
        """``answer`` once every caller started: a callback for the login classes."""

        def held(shown: Any) -> object:
            self.wait()
            return answer(shown)

        return held


async def _one_async(driver: Driver, auth: BaseAuth, url: str) -> int:
    """One request through an async driver's client, on the loop it runs."""
    if driver.kind == "aiohttp":
        driver_: Any = driver
        if driver_.session is None:
            driver_.session = driver_._session()
        context = {"sent": 0}
        async with driver_.session.get(
            url, middlewares=(auth,), ssl=driver_.ssl, trace_request_ctx=context
        ) as response:
            await response.read()
            return int(response.status)
    if driver.kind == "niquests_async":
        niquests: Any = driver
        answer = await niquests.session.get(url, auth=auth, timeout=10, verify=niquests.verify)
        return int(answer.status_code)
    go: Any = driver
    return int((await go._go(auth, "GET", url)).status)


def _on_loop(driver: Driver, work: Callable[[], Any]) -> Any:
    """Run the coroutine function ``work`` on the event loop of an async driver."""
    portal = getattr(driver, "portal", None)
    if portal is not None:  # trio, in a portal thread
        return portal.call(work)
    return driver.loop.run_until_complete(work())  # type: ignore[attr-defined]


def together(
    driver: Driver, auth: BaseAuth, url: str, gate: AllIn, count: int = CALLERS
) -> list[int | Exception]:
    """``count`` concurrent requests: threads, each with a driver of ``driver``'s kind, for
    a blocking client; tasks on ``driver``'s loop for an async one. Each gives its
    status, or the exception it raised."""
    if not driver.is_async:
        drivers = [make_driver(driver.kind) for _ in range(count)]

        def one(index: int) -> int | Exception:
            gate.start()
            try:
                return drivers[index].send(auth, "GET", url).status
            except Exception as exc:
                return exc

        try:
            with ThreadPoolExecutor(count) as pool:
                return list(pool.map(one, range(count)))
        finally:
            for made in drivers:
                made.close()

    async def run() -> list[int | Exception]:
        outcomes: list[int | Exception] = []

        async def one() -> None:
            gate.start()
            try:
                outcomes.append(await _one_async(driver, auth, url))
            except Exception as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tasks:
            for _ in range(count):
                tasks.start_soon(one)
        return outcomes

    return list(_on_loop(driver, run))


def one_prompt_for_all(driver: Driver, idp: OAuth2Emulator, **options: Any) -> None:
    """16 concurrent first requests through ``driver`` ask once and exchange one code."""
    person = HeadlessPerson(idp)
    gate = AllIn(CALLERS)
    auth = code_auth(idp, on_authorize=gate.then(person.approve), **options)
    assert together(driver, auth, idp.api_url(), gate) == [200] * CALLERS
    assert person.prompts == 1
    assert person.last_status == 200  # authplug's landing page
    assert idp.authorize_requests == 1
    assert idp.token_calls == {"authorization_code": 1}
    assert idp.api_calls == CALLERS  # each request went out once, with the new token


def test_concurrent_first_requests_make_one_prompt_and_one_code_exchange(
    driver: Driver, idp: OAuth2Emulator
) -> None:
    """16 concurrent first requests of one authorization-code object ask the person once
    and exchange one code; all 16 get a 200."""
    one_prompt_for_all(driver, idp)


def test_a_login_led_on_the_event_loop_is_one_prompt_too(
    async_driver: Driver, idp: OAuth2Emulator
) -> None:
    """With a cache only the event loop can drive (the login then leads in a task on
    the caller's loop), 16 concurrent first tasks still make one prompt and one
    exchange."""
    one_prompt_for_all(async_driver, idp, cache=LoopOnlyCache())


def test_concurrent_first_requests_where_nobody_may_be_asked_all_raise(
    driver: Driver, idp: OAuth2Emulator
) -> None:
    """With interactive=False and no login, 16 concurrent first requests each raise
    LoginRequiredError, and nothing reaches the server's login or token endpoints."""
    auth = code_auth(idp, interactive=False)
    outcomes = together(driver, auth, idp.api_url(), AllIn(CALLERS))
    assert [type(outcome) for outcome in outcomes] == [LoginRequiredError] * CALLERS
    assert (idp.authorize_requests, idp.token_calls.total(), idp.api_calls) == (0, 0, 0)


def test_concurrent_first_requests_make_one_device_login(
    driver: Driver, idp: OAuth2Emulator, clock: FakeClock
) -> None:
    """16 concurrent first requests of one device-code object make one device
    authorization, show one user code and make one successful device-code exchange."""
    person = HeadlessPerson(idp)
    gate = AllIn(CALLERS)
    # The polls' waits advance the emulator's clock: nothing sleeps.
    auth = device_auth(idp, on_user_code=gate.then(person.on_user_code), clock=clock)
    assert together(driver, auth, idp.api_url(), gate) == [200] * CALLERS
    assert person.prompts == 1
    assert idp.device_authorizations == 1
    # The person approved before the first poll: one poll, and it got the tokens.
    assert idp.token_calls == {DEVICE_GRANT: 1}
    assert idp.api_calls == CALLERS


@pytest.fixture(params=ASYNC_CLIENTS)
def async_driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    """Each async client in turn (a blocking client has no loop to keep turning)."""
    made = make_driver(request.param)
    yield made
    made.close()


def beside(
    driver: Driver, auth: BaseAuth, url: str, other_work: Callable[[], Coroutine[Any, Any, None]]
) -> int:
    """One request through an async driver, and ``other_work`` as a task on the same
    loop at the same time; the request's status."""

    async def run() -> int:
        statuses: list[int] = []

        async def request() -> None:
            statuses.append(await _one_async(driver, auth, url))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(request)
            tasks.start_soon(other_work)
        return statuses[0]

    return int(_on_loop(driver, run))


class LoopOnlyCache(MemoryTokenCache):
    """A cache only an event loop can drive (as a redis.asyncio client): the login then
    leads in a task on the caller's loop, not in a thread of its own."""

    serves_sync = False


@pytest.mark.parametrize("leader", ["thread", "loop"])
def test_an_async_login_never_blocks_the_event_loop(
    async_driver: Driver, idp: OAuth2Emulator, leader: str
) -> None:
    """While the first request of an async client waits for the person (in
    ``on_authorize``, then for the redirect), the loop completes other work: here the
    person answers only after another task ran TICKS turns in each wait."""
    person = HeadlessPerson(idp)
    shown: list[str] = []
    asked, let_go, returned = threading.Event(), threading.Event(), threading.Event()

    def on_authorize(url: str) -> None:  # blocks until the loop turned TICKS times
        shown.append(url)
        asked.set()
        if not let_go.wait(SAFETY):
            raise AssertionError("the loop stood still while on_authorize ran")
        returned.set()

    options = {"cache": LoopOnlyCache()} if leader == "loop" else {}
    auth = code_auth(idp, on_authorize=on_authorize, **options)
    turns = {"in on_authorize": 0, "waiting for the redirect": 0}

    async def other_work() -> None:
        assert await anyio.to_thread.run_sync(asked.wait, SAFETY)
        for _ in range(TICKS):
            await anyio.lowlevel.checkpoint()
            turns["in on_authorize"] += 1
        let_go.set()
        # Once on_authorize has returned, the login waits for the redirect, which
        # comes only after this task has turned TICKS times more. (The approval runs in
        # a thread: the loop's turns before it are the evidence.)
        assert await anyio.to_thread.run_sync(returned.wait, SAFETY)
        for _ in range(TICKS):
            await anyio.lowlevel.checkpoint()
            turns["waiting for the redirect"] += 1
        await anyio.to_thread.run_sync(person.approve, shown[0])

    assert beside(async_driver, auth, idp.api_url(), other_work) == 200
    assert turns == {"in on_authorize": TICKS, "waiting for the redirect": TICKS}
    assert (person.prompts, idp.token_calls) == (1, {"authorization_code": 1})


def test_a_refused_refresh_token_asks_again_on_the_request_path_only(
    driver: Driver, idp: OAuth2Emulator, clock: FakeClock
) -> None:
    """When the server refuses the refresh token, the background renewal asks nobody
    (prompts stay 1); the first request after the expiry asks the person again."""
    person = HeadlessPerson(idp)
    auth = code_auth(idp, on_authorize=person.approve, clock=clock)
    assert driver.send(auth, "GET", idp.api_url()).status == 200
    idp.reject_refresh = True
    clock.advance(3580)  # due for renewal, not expired: renewed in the background
    assert driver.send(auth, "GET", idp.api_url()).status == 200
    assert idp.token_calls["refresh_token"] >= 1  # tried, and refused
    assert person.prompts == 1
    clock.advance(25)  # expired: the request needs a login
    assert driver.send(auth, "GET", idp.api_url()).status == 200
    assert person.prompts == 2
    assert idp.token_calls["authorization_code"] == 2


def test_a_refused_refresh_token_raises_login_required_where_nobody_may_be_asked(
    driver: Driver, idp: OAuth2Emulator, clock: FakeClock
) -> None:
    """With interactive=False, a login whose refresh token is refused ends, after the
    expiry, in LoginRequiredError saying how to log in, with no secret in it."""
    person = HeadlessPerson(idp)
    cache = MemoryTokenCache()
    options: dict[str, Any] = {"clock": clock, "cache": cache}
    token = code_auth(idp, on_authorize=person.approve, **options).login()
    auth = code_auth(idp, interactive=False, **options)  # the same login, from the cache
    assert driver.send(auth, "GET", idp.api_url()).status == 200
    idp.reject_refresh = True
    clock.advance(3580)  # due: the background renewal is refused, and raises nothing
    assert driver.send(auth, "GET", idp.api_url()).status == 200
    assert idp.token_calls["refresh_token"] >= 1
    clock.advance(25)  # expired
    with pytest.raises(LoginRequiredError) as raised:
        driver.send(auth, "GET", idp.api_url())
    message = str(raised.value)
    assert "auth.login()" in message
    assert "authplug login --issuer " + idp.issuer in message
    assert token.access_token not in message
    assert token.refresh_token is not None
    assert token.refresh_token not in message
    assert (person.prompts, idp.token_calls["authorization_code"]) == (1, 1)


@pytest.mark.parametrize("leader", ["thread", "loop"])
def test_an_async_device_login_never_blocks_the_event_loop(
    async_driver: Driver, idp: OAuth2Emulator, clock: FakeClock, leader: str
) -> None:
    """While ``on_user_code`` of an async client's first request waits, the loop
    completes other work: the person types the code only after another task ran TICKS
    turns."""
    person = HeadlessPerson(idp)
    asked, let_go = threading.Event(), threading.Event()

    def on_user_code(code: Any) -> None:
        asked.set()
        if not let_go.wait(SAFETY):
            raise AssertionError("the loop stood still while on_user_code ran")
        person.on_user_code(code)

    options = {"cache": LoopOnlyCache()} if leader == "loop" else {}
    auth = device_auth(idp, on_user_code=on_user_code, clock=clock, **options)
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        assert await anyio.to_thread.run_sync(asked.wait, SAFETY)
        for _ in range(TICKS):
            await anyio.lowlevel.checkpoint()
            turns += 1
        let_go.set()

    assert beside(async_driver, auth, idp.api_url(), other_work) == 200
    assert turns == TICKS
    assert (person.prompts, idp.token_calls) == (1, {DEVICE_GRANT: 1})
