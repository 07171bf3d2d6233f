"""Cross-request batching: chunks of different streams run as one network call and each gets
exactly what it would have got alone; a new stream's first chunk goes ahead of later chunks."""

from __future__ import annotations

import asyncio

import pytest
import torch
from voicestack.blocks.core.chunk import Chunk
from voicestack.blocks.library.network_chunks import apply_batch
from voicestack.serve_app.batching import Batcher, apply_items

from .conftest import voice_with


def _steps(addon, placement=None):
    """The (block, keep) steps of the duration voice's plan: Decoder, then Vocoder."""
    voice = voice_with(addon, placement=placement)
    return [(s.block, s.keep) for s in voice.plan.segments[0].steps]


def _chunks(channels: int, lengths: list[int], context: int, seed: int = 0) -> list[Chunk]:
    """Chunks of different streams: their own frames, starts and context."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(lengths):
        frames = torch.randn(n + 2 * context, channels, generator=g)
        out.append(Chunk(frames, start=context + 7 * i, left=context, right=context))
    return out


@pytest.mark.parametrize(
    "placement",
    [
        None,
        {
            "blocks": {
                "Decoder": {"shapes": {"kind": "static", "sizes": [96]}},
                "Vocoder": {"shapes": {"kind": "static", "sizes": [64]}},
            }
        },
    ],
    ids=["dynamic", "static"],
)
def test_a_batch_gives_each_chunk_what_it_gets_alone(duration_addon, placement):
    (decoder, keep_d), (vocoder, keep_v) = _steps(duration_addon, placement)
    for block, keep, channels in [(decoder, keep_d, 32), (vocoder, keep_v, 80)]:
        need = block.context[0] + keep[0]
        chunks = _chunks(channels, [5, 32, 17, 40], need)
        alone = [block.apply(c, keep) for c in chunks]
        together = apply_batch([(block, c, keep) for c in chunks])
        for a, b in zip(alone, together, strict=True):
            assert (a.start, a.left, a.right, a.is_last) == (b.start, b.left, b.right, b.is_last)
            assert torch.allclose(a.frames, b.frames, atol=1e-5), (a.frames - b.frames).abs().max()


def test_a_batch_is_one_network_call(duration_addon):
    (decoder, keep), _ = _steps(duration_addon)
    decoder.network.recording, decoder.network.calls = True, []
    try:
        apply_batch([(decoder, c, keep) for c in _chunks(32, [8, 16, 24], 9)])
        batch_dims = {call.shapes["frames"][0] for call in decoder.network.calls}
    finally:
        decoder.network.recording = False
    assert batch_dims == {3}


def test_items_of_blocks_with_different_networks_are_each_run_with_their_own(duration_addon):
    (decoder, keep_d), (vocoder, keep_v) = _steps(duration_addon)
    d = _chunks(32, [10], 9)[0]
    v = _chunks(80, [10], 3)[0]
    out_d, out_v = apply_items([(decoder, d, keep_d), (vocoder, v, keep_v)])
    assert torch.equal(out_d.frames, decoder.apply(d, keep_d).frames)
    assert torch.equal(out_v.frames, vocoder.apply(v, keep_v).frames)


def _run_async(coro):
    return asyncio.run(coro)


def test_items_that_arrive_together_are_run_together():
    seen: list[list[int]] = []

    def run(items):
        seen.append(list(items))
        return [x * 10 for x in items]

    async def main():
        sizes: list[int] = []
        batcher = Batcher(
            run, max_size=8, wait_s=0.05, formed=lambda now, arrived: sizes.append(len(arrived))
        )
        results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
        return results, sizes

    results, sizes = _run_async(main())
    assert results == [0, 10, 20, 30, 40]
    assert sizes == [5] and seen == [[0, 1, 2, 3, 4]]


def test_a_first_chunk_goes_ahead_of_later_chunks_of_running_streams():
    seen: list[list[str]] = []

    def run(items):
        seen.append(list(items))
        return items

    async def main():
        batcher = Batcher(run, max_size=2, wait_s=0.05)
        later = [batcher.submit(f"later{i}", priority=1) for i in range(3)]
        first = batcher.submit("first", priority=0)
        await asyncio.gather(*later, first)

    _run_async(main())
    assert seen[0][0] == "first"
    assert sorted(x for batch in seen for x in batch) == ["first", "later0", "later1", "later2"]


def test_a_small_first_chunk_is_not_batched_with_large_ones_that_would_pad_it():
    seen: list[list[int]] = []

    def run(items):
        seen.append(list(items))
        return items

    async def main():
        # Items are chunk lengths; only lengths within 1.25x of the batch's first go together.
        batcher = Batcher(
            run, max_size=8, wait_s=0.05, together=lambda a, b: max(a, b) <= 1.25 * min(a, b)
        )
        await asyncio.gather(
            batcher.submit(80, priority=0),  # a stream's first chunk, earliest deadline
            batcher.submit(340, priority=1),
            batcher.submit(90, priority=2),  # another stream's first chunk
            batcher.submit(330, priority=3),
        )

    _run_async(main())
    assert seen[0] == [80, 90]  # the first chunks, padded to 90 at most, run first
    assert seen[1] == [340, 330]


def test_chunk_calls_batch_only_with_the_same_network_at_close_lengths(duration_addon):
    from voicestack.blocks.core.chunk import Chunk
    from voicestack.serve_app.batching import batch_together

    plan = voice_with(duration_addon).plan
    decoder = next(leaf.block for leaf in plan.leaves() if leaf.type == "Decoder")

    def item(frames: int):
        return (
            decoder,
            Chunk(torch.zeros(frames, decoder.network.spec.inputs[0].shape[-1]), 0),
            (0, 0),
        )

    assert batch_together(item(100), item(120))
    assert not batch_together(item(100), item(200))  # would pad the first to twice its work


def test_one_bad_item_does_not_cost_the_others_their_results():
    def run(items):
        if "bad" in items:
            raise ValueError("cannot do 'bad'")
        return [x.upper() for x in items]

    async def main():
        batcher = Batcher(run, max_size=4, wait_s=0.05)
        return await asyncio.gather(
            batcher.submit("a"), batcher.submit("bad"), batcher.submit("c"), return_exceptions=True
        )

    a, bad, c = _run_async(main())
    assert (a, c) == ("A", "C")
    assert isinstance(bad, ValueError) and "bad" in str(bad)


def test_a_network_exported_for_one_item_at_a_time_is_called_once_per_item(duration_addon):
    voice = voice_with(duration_addon)
    encoder = voice.plan.sequence[0].block.blocks[0].network  # exported with a fixed batch of 1
    assert encoder.max_batch == 1
    items = [{"symbols": torch.tensor([3, 4, 5, 6])}, {"symbols": torch.tensor([7, 8])}]
    batched = encoder.run_batch(items)
    for inputs, out in zip(items, batched, strict=True):
        assert torch.equal(out["encodings"], encoder.run(inputs)["encodings"])


def _order_behind_a_busy_thread(waves: list[list[tuple[str, float]]]) -> list[str]:
    """The order a one-thread batcher runs items in that arrive, wave after wave, while its
    thread is busy with an earlier item."""
    import threading

    seen: list[str] = []
    busy = threading.Event()

    def run(items):
        if items == ["busy"]:
            busy.wait(5)
        seen.extend(items)
        return items

    async def main():
        batcher = Batcher(run, max_size=1, wait_s=0, concurrent=1)
        futures = [asyncio.ensure_future(batcher.submit("busy", priority=0.0))]
        await asyncio.sleep(0.05)
        for wave in waves:
            futures += [asyncio.ensure_future(batcher.submit(n, priority=p)) for n, p in wave]
            await asyncio.sleep(0.01)
        busy.set()
        await asyncio.gather(*futures)

    _run_async(main())
    return seen


def test_a_first_chunk_arriving_while_the_replica_is_busy_runs_next():
    """One thread, busy: chunks of running streams queue; a new stream's first chunk that
    arrives after them still runs before them (Griffin-Lim is not batched, TTFA must hold)."""
    later = [(f"later{i}", 1.0) for i in range(3)]
    order = _order_behind_a_busy_thread([later, [("first", 0.0)]])
    assert order == ["busy", "first", "later0", "later1", "later2"]


@pytest.mark.parametrize(
    ("entry", "threads"),
    [({}, 1), ({"num_cpus": 2}, 2), ({"num_cpus": 0.1, "threads": 3}, 3)],
)
def test_a_chunk_replica_runs_one_call_per_reserved_cpu_unless_told(duration_addon, entry, threads):
    from voicestack.serve_app.leaf import ChunkServer

    plan = voice_with(duration_addon, placement={"blocks": {"Decoder": entry}}).plan
    decoder = plan.segments[0].steps[0].leaf
    server = ChunkServer([(plan.to_dict(), decoder.path)])
    assert server.threads == threads
    assert server._pool._max_workers == threads


def test_a_chunk_is_due_when_the_listener_has_played_the_chunks_before_it():
    from voicestack.serve_app.composer import Playback

    playback = Playback()
    first, second = playback.next_chunk(), playback.next_chunk()  # both in flight
    assert first == playback.requested  # nothing sent yet: due at once
    assert second == pytest.approx(playback.requested + Playback.FIRST_CHUNK_S)
    playback.sent(0.5)
    playback.sent(1.5)
    started = playback.first
    assert started is not None and started >= playback.requested
    assert playback.next_chunk() == pytest.approx(started + 2.0)  # none ahead of it
    assert playback.next_chunk() == pytest.approx(started + 2.0 + 1.0)  # one ahead: ~1 s


def test_waiting_chunks_run_earliest_deadline_first():
    # Streams with 3 s, 0.2 s and 1 s of audio left; a new stream, due now.
    waiting = [("buffered", 103.0), ("nearly dry", 100.2), ("some", 101.0), ("new stream", 100.0)]
    order = _order_behind_a_busy_thread([waiting])
    assert order == ["busy", "new stream", "nearly dry", "some", "buffered"]
