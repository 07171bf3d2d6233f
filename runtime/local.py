"""The local runtime: a whole voice in one process, streaming audio chunk by chunk.

`synthesize_stream` yields audio chunks as they are made; `synthesize` is built on it. Text is
split into sentences and each sentence is encoded only when the previous one has been streamed,
so the first audio does not wait for the rest of the text.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from voicestack.blocks.chunk import Chunk
from voicestack.runtime.voice import Voice


def synthesize_stream(voice: Voice, text: str) -> Iterator[Chunk]:
    """Audio chunks for `text`, in order: (samples, 1) float32 cores, `start` in samples from
    the start of their sentence, `is_last` on each sentence's last chunk."""
    sentences = voice.sentences(text)
    if not sentences:
        raise ValueError("nothing to say: the text has no speakable sentence")
    for sentence in sentences:
        yield from voice.stream_sentence(sentence)


def synthesize(voice: Voice, text: str) -> np.ndarray:
    """The whole waveform for `text`: float32, mono, at `voice.sample_rate`."""
    return np.concatenate([c.core[:, 0].numpy() for c in synthesize_stream(voice, text)]).astype(
        np.float32
    )
