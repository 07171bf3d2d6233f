"""What counts as work lost with a replica (made again elsewhere) and what is the call's own
error (never retried: it would only fail again)."""

from __future__ import annotations

from ray import exceptions
from ray.serve.exceptions import RayServeException
from voicestack.serve_app.retry import UPSTREAM_DIED, lost_work


def test_a_dead_or_unreachable_replica_is_lost_work():
    assert lost_work(exceptions.ActorDiedError())
    assert lost_work(exceptions.ActorUnavailableError("unreachable", None))
    assert lost_work(exceptions.WorkerCrashedError())


def test_a_death_wrapped_by_ray_or_serve_is_lost_work():
    task_error = exceptions.RayTaskError("stream", "traceback", exceptions.ActorDiedError())
    assert lost_work(task_error)
    assert lost_work(task_error.as_instanceof_cause())
    # Serve's error for a call whose argument's maker died, as another process receives it.
    upstream = RayServeException(f"Request to deployment 'Vocoder' failed because {UPSTREAM_DIED}.")
    assert lost_work(exceptions.RayTaskError("apply", "traceback", upstream))
    chained = RuntimeError("outer")
    chained.__cause__ = exceptions.ActorDiedError()
    assert lost_work(chained)


def test_an_error_the_call_raised_itself_is_not_retried():
    assert not lost_work(ValueError("bad input"))
    assert not lost_work(exceptions.RayTaskError("apply", "traceback", ValueError("bad")))
    assert not lost_work(RayServeException("Tried to call a method 'x' that does not exist."))
