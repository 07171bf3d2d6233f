"""Admission: how many streams a voice's composer plays at once, and what happens to the rest.

A stream that is admitted must stay real-time, so a composer admits at most `max_active`
streams; on shared hardware one more stream slows every stream already playing (16 streams of
the reference voice fill this machine's two cores; at 64 every stream underran). Requests over
the limit wait in order for a free slot, at most `max_waiting` of them and each at most
`max_wait_s`; any other gets a 503 with Retry-After at once, so a client is never left hanging
and can go to another replica or come back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class Overloaded(Exception):
    """No slot now and none soon: the request should be retried after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Admission:
    """A counting gate with a bounded, time-limited queue (first come, first served)."""

    def __init__(
        self,
        max_active: int,
        max_waiting: int,
        max_wait_s: float,
        retry_after_s: int,
        changed: Callable[[int, int], None] | None = None,
    ):
        self.max_active = max_active
        self.max_waiting = max_waiting
        self.max_wait_s = max_wait_s
        self.retry_after_s = retry_after_s
        self._slots = asyncio.Semaphore(max_active)
        self.active = 0
        self.waiting = 0
        #: Called with (active, waiting) whenever either changes (the metrics' gauges).
        self._changed = changed or (lambda active, waiting: None)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the active slots for the body; raise Overloaded if none comes."""
        if self._slots.locked() and self.waiting >= self.max_waiting:
            raise Overloaded(
                f"at capacity: {self.active} streams playing and {self.waiting} waiting",
                self.retry_after_s,
            )
        self.waiting += 1
        self._changed(self.active, self.waiting)
        try:
            await asyncio.wait_for(self._slots.acquire(), self.max_wait_s)
        except TimeoutError:
            raise Overloaded(
                f"at capacity: no stream ended within {self.max_wait_s:g} s "
                f"({self.active} playing, {self.waiting - 1} waiting)",
                self.retry_after_s,
            ) from None
        finally:
            self.waiting -= 1
            self._changed(self.active, self.waiting)
        self.active += 1
        self._changed(self.active, self.waiting)
        try:
            yield
        finally:
            self.active -= 1
            self._slots.release()
            self._changed(self.active, self.waiting)
