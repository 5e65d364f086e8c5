"""The browser tests: a person logs in through headless chromium (``tox -e browser``).

They need Selenium, Debian's ``chromium`` and ``chromium-driver`` and node's oidc-provider.
Only the browser environment installs Selenium, so elsewhere (the default environments)
this folder is not collected at all (and this module imports only the standard library
there); where Selenium is installed but chromium or
chromedriver is missing, the tests are skipped with what to install.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from .chromium import ChromiumPerson, missing

if importlib.util.find_spec("selenium") is None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="module")
def browser_oidc() -> Iterator[Any]:
    """oidc-provider with its login and consent pages and a public native client."""
    from ..servers.oidc_provider import OidcProviderServer
    from .loopback import PROVIDER_CONFIG

    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    with OidcProviderServer(extra_config=PROVIDER_CONFIG) as server:
        yield server


@pytest.fixture(scope="module")
def chromium() -> Iterator[ChromiumPerson]:
    """One headless chromium for the module's tests (each starts with no cookies)."""
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    from ..servers import PASSWORD, USERNAME

    with ChromiumPerson(login=USERNAME, password=PASSWORD) as person:
        yield person


@pytest.fixture
def oidc_server(browser_oidc: Any) -> Any:
    """The module's oidc-provider, its counts at zero."""
    browser_oidc.reset_counts()
    return browser_oidc


@pytest.fixture
def person(chromium: ChromiumPerson) -> ChromiumPerson:
    """The module's browser, with no provider session and no steps taken yet."""
    chromium.forget()
    return chromium
