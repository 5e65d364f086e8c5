"""Shared helpers: a loopback emulator and a Markdown table."""

from __future__ import annotations

import multiprocessing
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _serve(options: dict[str, Any], urls: Any, stop: Any) -> None:
    from authplug.testing import OAuth2Emulator

    with OAuth2Emulator(**options) as emulator:
        urls.put(emulator.base_url)
        stop.wait()
        urls.put(dict(emulator.token_calls))


@contextmanager
def emulator_process(**options: Any) -> Iterator[tuple[str, dict[str, int]]]:
    """An OAuth2Emulator in its own process, so it does not share our GIL.

    Yields the base URL and a dict that is filled with the token-call counts when the
    block ends.
    """
    context = multiprocessing.get_context("spawn")
    urls = context.Queue()
    stop = context.Event()
    process = context.Process(target=_serve, args=(options, urls, stop), daemon=True)
    process.start()
    counts: dict[str, int] = {}
    try:
        yield urls.get(timeout=30), counts
    finally:
        stop.set()
        counts.update(urls.get(timeout=30))
        process.join(timeout=30)
