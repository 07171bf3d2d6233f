"""What a server's processes use while a load level runs: peak memory and CPU time.

Memory is sampled in a background thread every 0.2 s rather than read once afterwards, because
what matters under load is the peak (buffers of streams in flight, queued chunks), which is gone
by the time the level ends. A sample sums PSS (shared pages such as torch's libraries split
between the processes that map them: the honest total) and RSS (shared pages counted in every
process: what `top` suggests) over the server's processes, as bench/memory.py does. CPU time
(user + system, summed over the processes, from the first sample of each to its last) says what
a second of audio costs each server: on 2 shared cores that, more than wall time, is the limit.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

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
class Usage:
    """Peak memory and CPU seconds of a server's processes over one level."""

    pss_mib: float = 0.0
    rss_mib: float = 0.0
    processes: int = 0
    samples: int = 0
    cpu_s: float = 0.0
    _cpu_first: dict[int, float] = field(default_factory=dict, repr=False)
    _cpu_last: dict[int, float] = field(default_factory=dict, repr=False)

    def add(self, processes: list[psutil.Process]) -> None:
        """Take one sample of `processes`; ones that ended are skipped."""
        pss = rss = 0
        for p in processes:
            try:
                with p.oneshot():
                    info = p.memory_full_info()
                    times = p.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            pss += getattr(info, "pss", info.rss)
            rss += info.rss
            self._cpu_first.setdefault(p.pid, times.user + times.system)
            self._cpu_last[p.pid] = times.user + times.system
        self.samples += 1
        if pss / 2**20 > self.pss_mib:
            self.pss_mib, self.processes = pss / 2**20, len(processes)
        self.rss_mib = max(self.rss_mib, rss / 2**20)
        self.cpu_s = sum(self._cpu_last[pid] - first for pid, first in self._cpu_first.items())


class UsageSampler:
    """Samples until stopped, and once more then; `usage` holds what was seen."""

    def __init__(self, finder: ProcessFinder, interval_s: float = 0.2) -> None:
        self._finder = finder
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="usage-sampler", daemon=True)
        self.usage = Usage()

    def _run(self) -> None:
        processes: list[psutil.Process] = []
        while True:
            if self.usage.samples % REFRESH_EVERY == 0:
                processes = self._finder()
            self.usage.add(processes)
            if self._stop.wait(self._interval_s):
                self.usage.add(processes)
                return

    def __enter__(self) -> UsageSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure_idle(finder: ProcessFinder, seconds: float = 2.0) -> Usage:
    """The server at rest before its first level: its memory, and the CPU its background work
    (for Ray: GCS, raylet, controller, health checks) burns without any request."""
    with UsageSampler(finder) as sampler:
        time.sleep(seconds)
    return sampler.usage
