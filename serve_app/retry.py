"""Work lost with a replica, and when to try it again.

Blocks are pure and every call can be made again: a chunk or sentence whose replica died (killed,
out of memory, its node gone) is made again by another replica, or by the one Serve starts in
its place, instead of failing the stream. Errors a call itself raised are not retried: they
would only fail again.
"""

from __future__ import annotations

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
