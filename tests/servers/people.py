"""Headless people who log in on the real servers' own pages, over plain HTTP.

A person is a cookie-keeping :class:`requests.Session` (a browser without JavaScript) that
reads each page's HTML forms with the standard library's :mod:`html.parser` and answers
them as someone at a keyboard would:

* :class:`OidcProviderPerson` on node oidc-provider's pages (``devInteractions``: its login
  form, its consent form with the "[ Cancel ]" link; ``deviceFlow``: its user-code page at
  ``/device`` and the confirmation page after it);
* :class:`DotPerson` on django-oauth-toolkit's (Django's ``LoginView`` form with its
  ``csrfmiddlewaretoken``, then DOT's authorize form with ``allow=Authorize``).

``approve(url)`` takes an authorization URL (as ``on_authorize`` receives it), signs in,
consents, follows the server's redirects until one points at the ``redirect_uri`` the URL
names, and GETs that (where the client's loopback listener waits): it returns that
:class:`Landing`. ``deny(url)`` signs in and refuses at consent, so the redirect carries
``error=access_denied``. ``prompts`` counts the pages the person answered, by kind
(``login``, ``consent``, ``user_code``, ``confirm``). The person keeps its cookies, as a
browser does: a second approval on oidc-provider finds the person signed in and asks only
for consent; :meth:`Person.forget` drops them.

Every request goes to a loopback address only, never through a proxy, and never follows a
redirect by itself (each one is looked at first).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Protocol
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

from . import PASSWORD, USERNAME

#: More steps than any of these logins takes: a loop between pages ends here.
MAX_STEPS = 30
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class PersonError(RuntimeError):
    """The person met a page it cannot answer, or the server answered unexpectedly."""


class LoginRefused(PersonError):
    """The server showed its login form again after the person signed in."""


class UserCodeRefused(PersonError):
    """The device page refused the user code (unknown, expired or used)."""


# -- pages ---------------------------------------------------------------------------------


@dataclass
class Form:
    """One HTML form: its hidden and text fields, and its named submit buttons."""

    id: str
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: dict[str, str] = field(default_factory=dict)


@dataclass
class Page:
    """A page the server answered with (status 200): its title, forms, links and text."""

    url: str
    status: int
    title: str = ""
    forms: list[Form] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # link text -> href
    text: str = field(default="", repr=False)

    def form_with(self, name: str) -> Form | None:
        """The first form holding a field called ``name``."""
        return next((form for form in self.forms if name in form.fields), None)


class _PageParser(HTMLParser):
    """Collects a page's title, forms (with buttons outside them, tied by ``form=``), links
    and visible text."""

    def __init__(self, page: Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self._form: Form | None = None
        self._by_id: dict[str, Form] = {}
        self._loose: list[tuple[str, str, str]] = []  # (form id, name, value) of outside buttons
        self._in: list[str] = []  # open title / a / script / style elements
        self._href = ""
        self._link_text: list[str] = []
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = Form(
                id=attr.get("id", ""),
                action=urljoin(self.page.url, attr.get("action", "")),
                method=attr.get("method", "get").upper(),
            )
            self.page.forms.append(self._form)
            if self._form.id:
                self._by_id[self._form.id] = self._form
        elif tag in {"input", "button"}:
            self._control(tag, attr)
        elif tag in {"title", "script", "style"}:
            self._in.append(tag)
        elif tag == "a":
            self._in.append(tag)
            self._href, self._link_text = attr.get("href", ""), []

    def _control(self, tag: str, attr: dict[str, str]) -> None:
        name = attr.get("name", "")
        kind = attr.get("type", "submit" if tag == "button" else "text").lower()
        if kind == "submit":
            owner = attr.get("form")
            if owner:
                self._loose.append((owner, name, attr.get("value", "")))
            elif self._form is not None and name:
                self._form.buttons[name] = attr.get("value", "")
        elif name and self._form is not None and kind not in {"button", "checkbox", "radio"}:
            self._form.fields[name] = attr.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif self._in and self._in[-1] == tag:
            self._in.pop()
            if tag == "a":
                text = " ".join("".join(self._link_text).split())
                self.page.links[text] = urljoin(self.page.url, self._href)

    def handle_data(self, data: str) -> None:
        if "title" in self._in:
            self.page.title += data.strip()
        elif "a" in self._in:
            self._link_text.append(data)
        if not {"script", "style", "title"} & set(self._in):
            self._text.append(data)

    def close(self) -> None:
        super().close()
        for owner, name, value in self._loose:
            if owner in self._by_id and name:
                self._by_id[owner].buttons[name] = value
        self.page.text = " ".join(" ".join(self._text).split())


def parse_page(response: requests.Response) -> Page:
    """The :class:`Page` of an HTML answer."""
    page = Page(url=response.url, status=response.status_code)
    parser = _PageParser(page)
    parser.feed(response.text)
    parser.close()
    return page


@dataclass(frozen=True)
class Landing:
    """What the redirect URI (the client's loopback listener) answered the person.

    ``url`` holds the authorization code: it stays out of the repr.
    """

    url: str = field(repr=False)
    status: int
    title: str
    text: str = field(repr=False)

    @property
    def params(self) -> dict[str, str]:
        """The redirect's query parameters (``code``, ``state``, ``iss``, ``error``, ...)."""
        return {key: values[0] for key, values in parse_qs(urlsplit(self.url).query).items()}


class DeviceCodeLike(Protocol):
    """What :meth:`OidcProviderPerson.on_user_code` reads (authplug's ``DeviceCode``)."""

    @property
    def verification_uri(self) -> str: ...
    @property
    def verification_uri_complete(self) -> str | None: ...
    @property
    def user_code(self) -> str: ...


# -- the person ----------------------------------------------------------------------------


def _same_endpoint(url: str, endpoint: str) -> bool:
    """Whether ``url`` goes to ``endpoint`` (scheme, host, port, path; any query)."""
    got, want = urlsplit(url), urlsplit(endpoint)
    return (got.scheme, got.netloc, got.path) == (want.scheme, want.netloc, want.path)


class Person:
    """Someone with a browser: a username, a password, a cookie jar, and a count of prompts.

    Subclasses say what each page of their server is (:meth:`kind`) and how to answer it
    (:meth:`answer`).
    """

    #: Kinds of page a person answers (and counts); any other kind is where a walk ends.
    PROMPTS: frozenset[str] = frozenset({"login", "consent"})

    def __init__(self, *, username: str = USERNAME, password: str = PASSWORD) -> None:
        self.username = username
        self.password = password
        self.prompts: Counter[str] = Counter()
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy, no netrc: loopback servers only
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(username={self.username!r}, prompts={dict(self.prompts)})"

    def forget(self) -> None:
        """Drop the cookies: the next login starts signed out."""
        self.session.cookies.clear()

    def close(self) -> None:
        self.session.close()

    # -- flows ---------------------------------------------------------------------------

    def approve(self, url: str) -> Landing:
        """Sign in, consent, and land on the ``redirect_uri`` that ``url`` names."""
        return self._authorize(url, approve=True)

    def deny(self, url: str) -> Landing:
        """Sign in, refuse at consent, and land on the ``redirect_uri`` (with an error)."""
        return self._authorize(url, approve=False)

    def in_background(self, action: Callable[[str], object]) -> Callable[[str], None]:
        """``action`` (``person.approve``...) run in a thread: a callback that returns at once.

        For a caller that must not block where it calls ``on_authorize`` (its listener may
        run on the same thread or event loop). :meth:`wait` joins and re-raises.
        """

        def run(url: str) -> None:
            try:
                action(url)
            except BaseException as error:  # re-raised by wait()
                self._errors.append(error)

        def start(url: str) -> None:
            thread = threading.Thread(target=run, args=(url,), daemon=True)
            self._threads.append(thread)
            thread.start()

        return start

    def wait(self, timeout: float = 30.0) -> None:
        """Join the background actions; raise the first error one of them met."""
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                raise PersonError(f"a background action still runs after {timeout} s")
        self._threads.clear()
        if self._errors:
            error, self._errors = self._errors[0], []
            raise error

    def _authorize(self, url: str, *, approve: bool) -> Landing:
        redirect_uris = parse_qs(urlsplit(url).query).get("redirect_uri")
        if not redirect_uris:
            raise PersonError("the authorization URL names no redirect_uri")
        result = self.walk(url, approve=approve, stop_at=redirect_uris[0])
        if isinstance(result, Landing):
            return result
        raise PersonError(
            f"the login ended on a page, not at the redirect URI: {result.title!r}"
            f" at {urlsplit(result.url).path} ({result.text[:300]!r})"
        )

    # -- the walk ------------------------------------------------------------------------

    def request(
        self, method: str, url: str, data: dict[str, str] | None = None
    ) -> requests.Response:
        """One request, never following a redirect, to a loopback address only."""
        host = urlsplit(url).hostname
        if host not in LOOPBACK_HOSTS:
            raise PersonError(f"refusing to leave the loopback interface for {host!r}")
        return self.session.request(method, url, data=data, allow_redirects=False, timeout=10)

    def submit(self, form: Form, **values: str) -> requests.Response:
        """Send ``form`` with its own fields, ``values`` put over them."""
        return self.request(form.method, form.action, {**form.fields, **values})

    def walk(self, url: str, *, approve: bool, stop_at: str | None = None) -> Landing | Page:
        """GET ``url`` and answer the pages met, until a redirect to ``stop_at`` (GET it:
        the :class:`Landing`) or a page that is no prompt (that :class:`Page`)."""
        response = self.request("GET", url)
        previous = ""
        for _ in range(MAX_STEPS):
            if response.is_redirect:
                target = urljoin(response.url, response.headers["location"])
                if stop_at is not None and _same_endpoint(target, stop_at):
                    landed = self.request("GET", target)
                    page = parse_page(landed)
                    return Landing(target, landed.status_code, page.title, page.text)
                response = self.request("GET", target)
                continue
            page = parse_page(response)
            if response.status_code != 200:
                raise PersonError(
                    f"HTTP {response.status_code} at {urlsplit(page.url).path}:"
                    f" {page.title!r} {page.text[:300]!r}"
                )
            kind = self.kind(page)
            if kind == previous == "login":
                raise LoginRefused(f"{self.username!r} was not signed in: the login form came back")
            if kind is None or (kind == previous and kind not in self.PROMPTS):
                return page
            if kind in self.PROMPTS:
                self.prompts[kind] += 1
            response = self.answer(kind, page, approve=approve)
            previous = kind
        raise PersonError(f"no end after {MAX_STEPS} steps")

    def kind(self, page: Page) -> str | None:
        """What ``page`` asks (``"login"``, ``"consent"``...), or None: the walk ends there."""
        raise NotImplementedError

    def answer(self, kind: str, page: Page, *, approve: bool) -> requests.Response:
        """Answer a page of that kind."""
        raise NotImplementedError


class OidcProviderPerson(Person):
    """A person on node oidc-provider's own pages (``devInteractions`` and ``deviceFlow``).

    Args:
        issuer: the provider's issuer URL (its ``/device`` page is under it).
        username: the account (``findAccount`` knows :data:`~tests.servers.USERNAME`).
        password: checked by the harness (``server.mjs``) before oidc-provider signs in.
    """

    PROMPTS = frozenset({"login", "consent", "user_code", "confirm"})

    def __init__(self, issuer: str, *, username: str = USERNAME, password: str = PASSWORD) -> None:
        super().__init__(username=username, password=password)
        self.issuer = issuer.rstrip("/")
        self._code = ""

    def enter_user_code(
        self, user_code: str, *, approve: bool = True, verification_uri: str | None = None
    ) -> Page:
        """Type ``user_code`` on the device page, then confirm, sign in and consent.

        ``approve=False`` aborts on the confirmation page (the device code then answers
        ``access_denied``). Returns the last page: "Sign-in Success" when approved.

        Raises:
            UserCodeRefused: the page says the code is incorrect (unknown, expired, used).
        """
        self._code = user_code
        try:
            result = self.walk(verification_uri or f"{self.issuer}/device", approve=approve)
        finally:
            self._code = ""
        return self._device_outcome(result)

    def on_user_code(self, code: DeviceCodeLike) -> None:
        """An ``on_user_code`` callback: the person opens ``verification_uri_complete`` (the
        code filled in) when the server gave one, else types the code, and approves."""
        if code.verification_uri_complete:
            self._device_outcome(self.walk(code.verification_uri_complete, approve=True))
        else:
            self.enter_user_code(code.user_code, verification_uri=code.verification_uri)

    def _device_outcome(self, result: Landing | Page) -> Page:
        if isinstance(result, Landing):
            raise PersonError("the device flow redirected to a client")
        if "code you entered is incorrect" in result.text or "already been used" in result.text:
            raise UserCodeRefused(f"the device page refused the code: {result.text[:200]!r}")
        return result

    def kind(self, page: Page) -> str | None:
        form = page.form_with("prompt")
        if form is not None and form.fields["prompt"] in {"login", "consent"}:
            return form.fields["prompt"]
        form = page.form_with("xsrf")
        if form is None:
            return None
        if "confirm" in form.fields:
            return "confirm"
        if form.id == "op.deviceInputForm":
            # Typed once: the page coming back after that is the outcome (an error message).
            return "user_code" if self._code else None
        return "post"  # oidc-provider's auto-submitting form (verification_uri_complete)

    def answer(self, kind: str, page: Page, *, approve: bool) -> requests.Response:
        if kind == "login":
            form = page.form_with("login")
            assert form is not None
            return self.submit(form, login=self.username, password=self.password)
        if kind == "consent":
            if approve:
                form = page.form_with("prompt")
                assert form is not None
                return self.submit(form)
            if "[ Cancel ]" not in page.links:
                raise PersonError(f"no [ Cancel ] link on the consent page: {page.links}")
            return self.request("GET", page.links["[ Cancel ]"])
        form = page.form_with("xsrf")
        assert form is not None
        if kind == "user_code":
            code, self._code = self._code, ""
            return self.submit(form, user_code=code)
        if kind == "confirm" and not approve:
            return self.submit(form, abort="yes")
        return self.submit(form)


class DotPerson(Person):
    """A person on django-oauth-toolkit: Django's login form, then DOT's authorize form.

    Args:
        base_url: the server's root URL (kept as ``base_url``; the walk starts from the
            authorization URL it is given).
        username: a Django user (the harness makes :data:`~tests.servers.USERNAME`).
        password: that user's password.
    """

    def __init__(
        self, base_url: str, *, username: str = USERNAME, password: str = PASSWORD
    ) -> None:
        super().__init__(username=username, password=password)
        self.base_url = base_url.rstrip("/")

    def kind(self, page: Page) -> str | None:
        if any(form.id == "authorizationForm" for form in page.forms):
            return "consent"
        if page.form_with("username") is not None and page.form_with("password") is not None:
            return "login"
        return None

    def answer(self, kind: str, page: Page, *, approve: bool) -> requests.Response:
        if kind == "login":
            form = page.form_with("username")
            assert form is not None
            return self.submit(form, username=self.username, password=self.password)
        form = next(form for form in page.forms if form.id == "authorizationForm")
        # DOT reads the absence of "allow" as a refusal (its Cancel button has no name).
        allow: dict[str, Any] = {"allow": form.buttons["allow"]} if approve else {}
        return self.submit(form, **allow)
