"""Admission at a voice's composer: at most `max_active` streams play, a bounded number wait in
order for a slot and for a bounded time, and everyone else is told to come back (503 +
Retry-After) at once. Never a hang."""

from __future__ import annotations

import asyncio

import pytest
from voicestack.placement.config import parse_placement
from voicestack.serve_app.admission import Admission, Overloaded
from voicestack.serve_app.deployments import COMPOSER_SPARE, deployment_options


async def _stream(gate: Admission, name: str, log: list[str], release: asyncio.Event) -> str:
    try:
        async with gate.slot():
            log.append(f"start {name}")
            await release.wait()
            log.append(f"end {name}")
    except Overloaded as e:
        log.append(f"rejected {name} (retry after {e.retry_after_s})")
        return "rejected"
    return "played"


def test_streams_over_the_limit_wait_in_order_and_the_rest_are_rejected_at_once():
    async def main():
        gate = Admission(max_active=2, max_waiting=1, max_wait_s=5, retry_after_s=3)
        log: list[str] = []
        release = asyncio.Event()
        tasks = []
        for name in "abcd":
            tasks.append(asyncio.create_task(_stream(gate, name, log, release)))
            await asyncio.sleep(0.01)
        seen = (list(log), gate.active, gate.waiting)
        release.set()
        return seen, await asyncio.gather(*tasks), log

    (early, active, waiting), outcomes, log = asyncio.run(main())
    assert early == ["start a", "start b", "rejected d (retry after 3)"]
    assert (active, waiting) == (2, 1)
    assert outcomes == ["played", "played", "played", "rejected"]
    assert log.index("start c") > log.index("end a")  # c got a's slot, after a ended


def test_a_waiting_stream_gives_up_after_max_wait_s():
    async def main():
        gate = Admission(max_active=1, max_waiting=4, max_wait_s=0.05, retry_after_s=1)
        release = asyncio.Event()
        log: list[str] = []
        first = asyncio.create_task(_stream(gate, "a", log, release))
        await asyncio.sleep(0.01)
        second = await _stream(gate, "b", log, release)
        release.set()
        await first
        return second, gate.active, gate.waiting

    assert asyncio.run(main()) == ("rejected", 0, 0)


def test_a_slot_is_freed_when_its_stream_fails_or_is_cancelled():
    async def main():
        gate = Admission(max_active=1, max_waiting=0, max_wait_s=1, retry_after_s=1)
        with pytest.raises(RuntimeError):
            async with gate.slot():
                raise RuntimeError("the stream broke")
        never = asyncio.Event()
        task = asyncio.create_task(_stream(gate, "x", [], never))
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with gate.slot():
            return gate.active

    assert asyncio.run(main()) == 1


def test_the_composer_takes_its_streams_and_waiters_from_the_placement():
    placement = parse_placement(
        {"blocks": {"Composer": {"streams": {"max_active": 12, "max_waiting": 4}}}}
    )
    options = deployment_options(placement.for_block("Composer"), "Composer", "voice x", "composer")
    assert options["max_ongoing_requests"] == 12 + 4 + COMPOSER_SPARE


def test_a_replica_reads_the_placement_layered_as_the_builder_did(duration_addon):
    """The plan carries the placement to replicas as data; an entry must still fall back
    to the one below it there (a block entry that sets only batching keeps the default's
    device and CPUs), as it does where the app is built."""
    from voicestack.runtime.plan import Plan

    from .conftest import voice_with

    placement = {
        "default": {"num_cpus": 0.5},
        "blocks": {"Decoder": {"batching": {"max_batch_size": 4}}},
        "voices": {"test-duration": {"Composer": {"streams": {"max_active": 3}}}},
    }
    plan = voice_with(duration_addon, placement=placement).plan
    in_replica = Plan.from_dict(plan.to_dict()).placement
    decoder = in_replica.for_block("Decoder", voice="test-duration")
    assert (decoder.num_cpus, decoder.batching.max_batch_size) == (0.5, 4)
    composer = in_replica.for_block("Composer", voice="test-duration")
    assert (composer.num_cpus, composer.streams.max_active) == (0.5, 3)
