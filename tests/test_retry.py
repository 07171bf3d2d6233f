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


def run_tries(work, monkeypatch, delays=(0.0, 0.0), **options) -> list:
    """`work(attempt)` under `attempts`, with `delays` as the waits; returns what on_lost saw
    and the result (or the error raised) as the last item."""
    import asyncio

    from voicestack.serve_app import retry

    monkeypatch.setattr(retry, "RETRY_DELAYS_S", delays)
    seen: list = []

    async def main():
        async for attempt in retry.attempts(on_lost=lambda e, d: seen.append((e, d)), **options):
            with attempt:
                return work(attempt)

    try:
        seen.append(asyncio.run(main()))
    except Exception as e:
        seen.append(e)
    return seen


def test_work_lost_with_a_replica_is_tried_again_after_each_delay(monkeypatch):
    died = exceptions.ActorDiedError()

    def work(attempt):
        if attempt.number < 2:
            raise died
        return "made"

    assert run_tries(work, monkeypatch, delays=(0.0, 0.01, 0.02)) == [
        (died, 0.0),
        (died, 0.01),
        "made",
    ]


def test_an_error_of_the_work_itself_is_raised_at_once(monkeypatch):
    bad = ValueError("bad input")

    def work(attempt):
        raise bad

    assert run_tries(work, monkeypatch) == [bad]


def test_after_the_last_try_the_loss_is_raised(monkeypatch):
    errors = []

    def work(attempt):
        errors.append(exceptions.ActorDiedError())
        raise errors[-1]

    seen = run_tries(work, monkeypatch, delays=(0.0, 0.0))
    assert len(errors) == 3  # one try per delay, and the last
    assert seen == [(errors[0], 0.0), (errors[1], 0.0), errors[2]]


def test_work_whose_results_were_seen_is_not_tried_again(monkeypatch):
    died = exceptions.ActorDiedError()

    def work(attempt):
        raise died

    assert run_tries(work, monkeypatch, may_retry=lambda: False) == [died]
