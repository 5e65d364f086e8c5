"""A provider's base URL joins its paths with one slash, and must be a non-empty string."""

from __future__ import annotations

import pytest

from authplug import ConfigurationError
from authplug.providers._util import join_url


def test_the_path_follows_the_base_with_one_slash() -> None:
    """A trailing slash on the base is not doubled."""
    assert join_url("base_url", "https://api.test/", "/token") == "https://api.test/token"
    assert join_url("base_url", "https://api.test", "/token") == "https://api.test/token"


@pytest.mark.parametrize("base", ["", None, 42])
def test_a_base_that_is_not_a_url_string_is_named(base: object) -> None:
    """An empty or non-string base is a ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError, match=r"^base_url= must be a URL string$"):
        join_url("base_url", base, "/token")
