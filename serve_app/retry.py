"""Work lost with a replica, and when to try it again.

Blocks are pure and every call can be made again: a chunk or sentence whose replica died (killed,
out of memory, its node gone) is made again by another replica, or by the one Serve starts in
its place, instead of failing the stream. Errors a call itself raised are not retried: they
would only fail again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import TracebackType

#: Waits before each new try of work lost with a replica: Serve starts a new replica and its
#: routers stop choosing the dead one, within seconds on an idle machine and tens of seconds on
#: a loaded one (a replica is a process that imports torch). Short waits first, then one every
#: 4 s, for up to a minute in all: a stream paused that long and then whole is better than one
#: failed; past that it fails, and says so.
RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, *[4.0] * 13)


def lost_work(error: BaseException) -> bool:
    """Whether `error` says a replica (or its process) died under a call: work that any other
    replica can do again, unlike an error the call itself raised. Ray may wrap the death: a
    task error whose cause it is, or Serve's error for a call whose argument's maker died
    ("an upstream actor died"), which reaches another process as its message only."""
    from ray import exceptions
    from ray.serve.exceptions import RayServeException

    died = (
        exceptions.RayActorError,  # died, or unreachable (ActorUnavailableError)
        exceptions.WorkerCrashedError,
        exceptions.ObjectLostError,
        exceptions.NodeDiedError,
    )
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, died):
            return True
        if isinstance(current, RayServeException) and UPSTREAM_DIED in str(current):
            return True
        cause = getattr(current, "cause", None)  # RayTaskError: the error the task raised
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return False


#: Serve's words (router.py, `_make_upstream_crash_error`) for a call whose argument's maker died.
UPSTREAM_DIED = "an upstream actor died before finishing a dependent task"


class Attempt:
    """One try of work a replica's death may lose: a context manager that swallows such a loss
    (so that `attempts` tries again) unless it is the last try or `may_retry` says no; any other
    error passes through."""

    def __init__(self, number: int, last: bool, may_retry: Callable[[], bool]):
        #: 0 for the first try; a try after a loss makes its inputs again where they were lost.
        self.number = number
        self.last = last
        self.lost: BaseException | None = None
        self._may_retry = may_retry

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if not isinstance(error, Exception) or self.last or not lost_work(error):
            return False
        if not self._may_retry():
            return False
        self.lost = error
        return True


async def attempts(
    on_lost: Callable[[BaseException, float], None] | None = None,
    may_retry: Callable[[], bool] = lambda: True,
) -> AsyncIterator[Attempt]:
    """Tries of one piece of work, spaced by `RETRY_DELAYS_S`, until one ends without losing
    its work to a replica's death:

        async for attempt in attempts():
            with attempt:
                ...  # the work; a lost replica's error ends this try, the next one starts

    The last try's loss is raised, as is every error the work raised itself. `on_lost(error,
    delay)` is told of each loss before the wait (to log or count it); `may_retry()` can refuse
    another try (work whose results a client already has)."""
    for number, delay in enumerate((*RETRY_DELAYS_S, None)):
        attempt = Attempt(number, last=delay is None, may_retry=may_retry)
        yield attempt
        if attempt.lost is None or delay is None:
            return
        if on_lost is not None:
            on_lost(attempt.lost, delay)
        await asyncio.sleep(delay)
