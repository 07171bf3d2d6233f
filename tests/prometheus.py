"""Reading the service's Prometheus metrics as an operator does: from Ray's metrics export
port. Tests that count what a replica did read it here, not from methods on the deployment."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx

#: Ray's processes export their metrics every 10 s by default; every second here.
REPORT_INTERVAL = {"RAY_metrics_report_interval_ms": "1000"}
SCRAPE_TIMEOUT_S = 60

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of each sample Ray exports on `port`."""
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples = []
    for line in body.splitlines():
        if (m := _LINE.match(line)) is not None:
            samples.append((m[1], dict(_LABEL.findall(m[2] or "")), float(m[3])))
    return samples


def value(samples, name: str, **labels: str) -> float | None:
    """The sum of `name`'s samples that carry `labels` (None: there is none)."""
    found = [v for n, tags, v in samples if n == name and labels.items() <= tags.items()]
    return sum(found) if found else None


def settled(
    port: int, read: Callable[[list], float | None], timeout_s: float = SCRAPE_TIMEOUT_S
) -> float:
    """`read(samples)` once it stops changing: the same over three report intervals, so that
    every process has reported what it did before the call (0 while it was never exported)."""
    interval_s = int(REPORT_INTERVAL["RAY_metrics_report_interval_ms"]) / 1000
    deadline = time.monotonic() + timeout_s
    last: float | None = None
    while time.monotonic() < deadline:
        try:
            now = read(scrape(port)) or 0.0
        except httpx.HTTPError:  # the agent's exporter not up yet
            now = None
        if now is not None and now == last:
            return now
        last = now
        time.sleep(3 * interval_s)
    raise AssertionError(f"the metric did not settle within {timeout_s} s (last: {last})")
