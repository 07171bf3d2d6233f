"""What cross-request batching can gain at most: each chunk step of a voice alone, one chunk
per call against a batch of chunks from different streams per call, on one torch thread.

    .venv/bin/python bench/batch_gain.py [addons/voices/espeak-duration ...]

A replica's batched call is `apply_items` (serve_app/batching.py): network blocks that share a
network run as one padded call, any other block (Griffin-Lim) one chunk at a time. The chunks
are the voice's own: the plan's steps applied to a real sentence, the largest chunk of each
step. Prints, per step and batch size, the CPU milliseconds per chunk and per second of audio;
the ratio to batch 1 is the most batching can give that step, before any serving overhead.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

BATCHES = (1, 4, 8, 16)
TEXT = "The quick brown fox jumps over the lazy dog, and nobody saw it happen at nine fifteen."


def steps_and_chunks(addon):
    """(step name, block, keep, its largest input chunk) for the first segment's steps."""
    from voicestack.blocks.core.chunk import with_context
    from voicestack.runtime.plan import run_sequence
    from voicestack.runtime.voice import build_voice

    voice = build_voice(addon)
    segment = voice.plan.segments[0]
    features = run_sequence(voice.plan.sequence, voice.frontend({"text": TEXT}))
    largest: list = [None] * len(segment.steps)
    for chunk in with_context(segment.head_block.stream(features, None), *segment.need):
        for i, step in enumerate(segment.steps):
            if largest[i] is None or chunk.frames.shape[0] > largest[i].frames.shape[0]:
                largest[i] = chunk
            chunk = step.block.apply(chunk, step.keep)
    return [
        (type(s.block).__name__, s.block, s.keep, c)
        for s, c in zip(segment.steps, largest, strict=True)
    ]


def per_chunk_ms(block, keep, chunk, batch: int, repeats: int = 5) -> float:
    from voicestack.serve_app.batching import apply_items

    items = [(block, chunk, keep)] * batch
    apply_items(items)
    t = time.process_time()
    for _ in range(repeats):
        apply_items(items)
    return (time.process_time() - t) / repeats / batch * 1000


def main() -> int:
    from voicestack.addons.loader import load_addon

    torch.set_num_threads(1)
    paths = sys.argv[1:] or ["addons/voices/espeak-duration"]
    print(
        "| voice | step | chunk in (frames) | audio per chunk s | batch | ms per chunk |"
        " ms per audio s | vs batch 1 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for path in paths:
        addon = load_addon(path)
        steps = steps_and_chunks(addon)
        hop = addon.audio.hop_length
        for name, block, keep, chunk in steps:
            # Steps here consume frames (upsampled encodings, mel): hop samples of audio each.
            audio_s = chunk.length * hop / addon.audio.sample_rate
            base = None
            for batch in BATCHES:
                ms = per_chunk_ms(block, keep, chunk, batch)
                base = base or ms
                print(
                    f"| {addon.name} | {name} | {chunk.frames.shape[0]} | {audio_s:.2f} | {batch} |"
                    f" {ms:.2f} | {ms / audio_s:.1f} | {base / ms:.2f}x |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
