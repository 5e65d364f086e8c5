"""A person at a real browser: Debian's headless chromium, driven by Selenium.

:class:`ChromiumPerson` opens an authorize URL, signs in on oidc-provider's development
login page (``features.devInteractions``: any login and password are accepted), clicks
through its consent page and waits for authplug's loopback landing page, whose ``<title>``
is one of :data:`LANDED`. Selenium talks to the system's chromedriver
(``apt-get install chromium chromium-driver``): Selenium Manager, which would download a
driver, is never asked (:func:`missing` names what is not installed instead).

Only the standard library is imported at module level, so that :func:`missing` answers
where Selenium is not installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

#: The titles of authplug's loopback landing page: success, failure.
LOGGED_IN = "authplug: logged in"
LOGIN_FAILED = "authplug: login failed"
LANDED = (LOGGED_IN, LOGIN_FAILED)

#: Where Debian (and Ubuntu's snap wrapper, and Google's package) put the browser.
BROWSERS = ("chromium", "chromium-browser", "google-chrome")

#: Headless, and quiet on the network: without the background-networking flags chromium
#: keeps opening connections a closed network refuses (updates, sync, safe browsing);
#: the resolver rule fails every name but loopback at once, so that oidc-provider's page,
#: which imports a web font, loads as fast offline as online. No sandbox: CI runs as root
#: in containers, where chromium's sandbox cannot start; the browser visits only the
#: loopback servers of the test.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=800,450",
)


def find_browser() -> str | None:
    """The chromium executable on PATH, or None."""
    return next(filter(None, map(shutil.which, BROWSERS)), None)


def missing() -> str | None:
    """Why a browser test cannot run here (what to install), or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: tox -e browser runs the browser tests"
    if find_browser() is None or shutil.which("chromedriver") is None:
        return (
            "chromium and chromedriver are not on PATH: apt-get install chromium"
            " chromium-driver (.ci/run does this)"
        )
    return None


def _where(url: str) -> str:
    """``url`` without its query and fragment: a callback's carry the authorization code."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class ChromiumPerson:
    """A person who logs in through headless chromium; a context manager.

    Args:
        login: what the person types as login (oidc-provider's account id, the ``sub``).
        password: what the person types as password (the harness's accounts; bare
            devInteractions accepts any).
        timeout: seconds for each page to load, and for each step of the login.
    """

    def __init__(self, *, login: str, password: str, timeout: float = 30) -> None:
        self.login = login
        self._password = password
        self.timeout = timeout
        #: The pages this person acted on, in order: ``"login"``, ``"consent"``, ``"cancel"``.
        self.steps: list[str] = []
        self._profile = ""
        self._driver: WebDriver | None = None

    def __repr__(self) -> str:
        return f"ChromiumPerson(login={self.login!r}, steps={self.steps!r})"

    def __enter__(self) -> ChromiumPerson:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        """Start chromium with a new, empty profile."""
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        reason = missing()
        if reason is not None:
            raise RuntimeError(reason)
        options = webdriver.ChromeOptions()
        options.binary_location = str(find_browser())
        self._profile = tempfile.mkdtemp(prefix="authplug-chromium-")
        for flag in (*FLAGS, f"--user-data-dir={self._profile}"):
            options.add_argument(flag)
        # The system's driver, named: Selenium Manager (a download) is then never started.
        service = Service(
            str(shutil.which("chromedriver")), env={**os.environ, "SE_OFFLINE": "true"}
        )
        self._driver = webdriver.Chrome(options=options, service=service)
        self._driver.set_page_load_timeout(self.timeout)

    def close(self) -> None:
        """Quit chromium and remove its profile."""
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.quit()
        if self._profile:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = ""

    @property
    def driver(self) -> WebDriver:
        if self._driver is None:
            raise RuntimeError(
                "the browser is not running: use ChromiumPerson as a context manager"
            )
        return self._driver

    def forget(self) -> None:
        """Clear every cookie: the next login starts without a provider session."""
        self.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        self.steps.clear()

    def approve(self, url: str) -> str:
        """Open ``url``, sign in and consent; return the landing page's title.

        Usable as ``on_authorize``: it returns once authplug's loopback page is shown.
        """
        return self._visit(url, cancel=False)

    def deny(self, url: str) -> str:
        """Open ``url`` and cancel on the first page; return the landing page's title."""
        return self._visit(url, cancel=True)

    def save_screenshot(self, path: str | os.PathLike[str]) -> Path:
        """The current page as a PNG file at ``path``."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not self.driver.save_screenshot(str(target)):
            raise RuntimeError(f"chromium could not save a screenshot to {target}")
        return target

    def _visit(self, url: str, *, cancel: bool) -> str:
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.wait import WebDriverWait

        driver = self.driver
        first = len(self.steps)
        # One deadline for the whole visit: a provider that keeps showing pages (a refused
        # password answers the sign-in page again) must not keep the person busy forever.
        deadline = time.monotonic() + self.timeout
        driver.get(url)
        while True:
            left = max(deadline - time.monotonic(), 0.0)
            try:
                wait = WebDriverWait(driver, left, poll_frequency=0.05)
                landed, form = wait.until(self._next_page)
                if form is None:
                    return landed
                signed_in = "login" in self.steps[first:]
                self._act(form, cancel=cancel, signed_in=signed_in, left=left)
            except TimeoutException:
                raise TimeoutError(
                    f"the browser did not reach authplug's landing page in {self.timeout} s:"
                    f" it is on {_where(driver.current_url)} titled {driver.title!r}"
                    f" after {self.steps[first:]}"
                ) from None

    def _next_page(self, driver: WebDriver) -> tuple[str, WebElement | None] | Literal[False]:
        """``(the landing page's title, None)``, ``("", an interaction form to act on)``, or
        False: wait."""
        from selenium.webdriver.common.by import By

        if driver.title in LANDED:
            return str(driver.title), None
        forms = driver.find_elements(By.CSS_SELECTOR, "form:has(input[name=prompt])")
        return ("", forms[0]) if forms else False

    def _act(self, form: WebElement, *, cancel: bool, signed_in: bool, left: float) -> None:
        """Fill and submit one of oidc-provider's interaction pages, or cancel it.

        ``signed_in``: this person has signed in during this visit already; ``left``: the
        seconds left for the visit.
        """
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.wait import WebDriverWait

        prompt = str(
            form.find_element(By.CSS_SELECTOR, "input[name=prompt]").get_attribute("value")
        )
        if cancel:
            self.steps.append("cancel")
            self.driver.find_element(By.PARTIAL_LINK_TEXT, "Cancel").click()
        elif prompt == "login" and signed_in:
            raise PermissionError(
                f"oidc-provider asks {self.login!r} to sign in again: it refused the login"
                " or the password"
            )
        elif prompt == "login":
            self.steps.append("login")
            form.find_element(By.NAME, "login").send_keys(self.login)
            form.find_element(By.NAME, "password").send_keys(self._password)
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        elif prompt == "consent":
            self.steps.append("consent")
            form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        else:
            raise RuntimeError(f"oidc-provider asks for {prompt!r}: this person knows no such page")
        # The next page replaces this one: act on it only once this form is gone.
        WebDriverWait(self.driver, left, poll_frequency=0.05).until(
            expected_conditions.staleness_of(form)
        )
