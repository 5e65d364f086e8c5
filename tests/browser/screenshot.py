"""Take the documentation's screenshot of authplug's loopback landing page.

Run from the project root, after ``npm ci --prefix tests/servers/oidc`` and with chromium,
chromium-driver and Selenium installed (``tox -e browser`` has them)::

    python -m tests.browser.screenshot docs/_static/login-landing.png

It logs a person in through headless chromium on oidc-provider's pages, exactly as the
browser tests do (:func:`tests.browser.loopback.log_in`), and saves the page the browser
lands on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .chromium import LOGGED_IN, ChromiumPerson, missing
from .loopback import PROVIDER_CONFIG, log_in


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png", type=Path, help="where to write the PNG file")
    target = parser.parse_args(argv).png
    reason = missing()
    if reason is not None:
        print(f"screenshot: {reason}", file=sys.stderr)
        return 2
    from ..servers import PASSWORD, USERNAME
    from ..servers.oidc_provider import OidcProviderServer

    with (
        OidcProviderServer(extra_config=PROVIDER_CONFIG) as server,
        ChromiumPerson(login=USERNAME, password=PASSWORD) as person,
    ):

        def approve_and_capture(url: str) -> str:
            title = person.approve(url)
            if title != LOGGED_IN:
                raise SystemExit(f"screenshot: the browser landed on {title!r}")
            person.save_screenshot(target)
            return title

        log_in(server, approve_and_capture)
    print(f"screenshot: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
