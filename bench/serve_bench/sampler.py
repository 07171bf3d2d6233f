"""Peak memory of a server's processes while a load level runs.

Memory is sampled in a background thread every 0.2 s rather than read once afterwards, because
what matters under load is the peak (buffers of streams in flight, queued chunks), which is gone
by the time the level ends. A sample sums PSS (shared pages such as torch's libraries split
between the processes that map them: the honest total) and RSS (shared pages counted in every
process: what `top` suggests) over the server's processes, as bench/memory.py does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psutil

ProcessFinder = Callable[[], list[psutil.Process]]

#: How often the list of processes is looked up again, in samples (Ray may start workers).
REFRESH_EVERY = 5


def ray_processes() -> list[psutil.Process]:
    """The processes of the local Ray this process started (GCS, raylet, dashboard, Serve's
    controller, proxy, replicas): its descendants. Not every Ray process on the machine, as
    bench/memory.py counts them: another Ray (a test run, CI) would be added to ours."""
    return process_tree(os.getpid())()[1:]


def process_tree(pid: int) -> ProcessFinder:
    """A finder for a process and all its descendants (a uvicorn server and any workers)."""

    def find() -> list[psutil.Process]:  # the root first
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    return find


@dataclass
class MemoryPeak:
    pss_mib: float = 0.0
    rss_mib: float = 0.0
    processes: int = 0
    samples: int = 0


def sample(processes: list[psutil.Process]) -> tuple[float, float]:
    """(PSS MiB, RSS MiB) summed over `processes`; ones that ended are skipped."""
    pss = rss = 0
    for p in processes:
        try:
            info = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        pss += getattr(info, "pss", info.rss)
        rss += info.rss
    return pss / 2**20, rss / 2**20


class MemorySampler:
    """Samples until stopped; `peak` holds the largest PSS seen (and RSS at its own peak)."""

    def __init__(self, finder: ProcessFinder, interval_s: float = 0.2) -> None:
        self._finder = finder
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self.peak = MemoryPeak()

    def _run(self) -> None:
        processes: list[psutil.Process] = []
        while True:
            if self.peak.samples % REFRESH_EVERY == 0:
                processes = self._finder()
            pss, rss = sample(processes)
            self.peak.samples += 1
            if pss > self.peak.pss_mib:
                self.peak.pss_mib, self.peak.processes = pss, len(processes)
            self.peak.rss_mib = max(self.peak.rss_mib, rss)
            if self._stop.wait(self._interval_s):
                return

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure_once(finder: ProcessFinder) -> MemoryPeak:
    """One sample, for the idle memory of a server before its first level."""
    processes = finder()
    pss, rss = sample(processes)
    return MemoryPeak(pss, rss, len(processes), 1)
