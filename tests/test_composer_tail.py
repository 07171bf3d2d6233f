"""The composer runs the segments after a stateful consumer (Diagnostics) in a thread of its
own; when the client leaves mid-stream, that thread must end, not wait forever for a chunk
that will never come. Driven without Ray: the composer's tail on a real voice's plan."""

from __future__ import annotations

import asyncio
import threading
import time

from voicestack.runtime.plan import run_sequence, stream_local
from voicestack.serve_app.composer import Composer

from .conftest import voice_with


def tail_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("tail-")]


def test_a_client_leaving_mid_stream_ends_the_tail_thread(duration_addon):
    stack = duration_addon.config.stack
    voice = voice_with(duration_addon, stack=[stack[0], {"type": "Diagnostics"}, *stack[1:]])
    first, *rest = voice.plan.segments
    assert rest, "the Diagnostics block heads a segment of its own"
    composer = Composer.__new__(Composer)  # only what _through_tail needs
    composer.name, composer.tail = "leaving", list(rest)
    sentence = voice.features("Hello there, this is a long enough sentence to stream.")
    features = run_sequence(voice.plan.sequence, sentence)

    async def first_segment():
        from voicestack.runtime.plan import stream_segments

        for chunk in stream_segments([first], features, None):
            yield chunk, None
            await asyncio.sleep(0.2)  # chunks arrive over time, as from the replicas

    async def listen_then_leave():
        tail = composer._through_tail(first_segment(), features)
        await tail.__anext__()  # some audio, then the client hangs up
        await tail.aclose()

    before = len(tail_threads())
    asyncio.run(listen_then_leave())
    deadline = time.monotonic() + 10
    while len(tail_threads()) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(tail_threads()) == before
    assert list(stream_local(voice.plan, sentence))  # the voice itself still streams
