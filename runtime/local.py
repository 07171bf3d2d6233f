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


def synthesize_stream(
    voice: Voice,
    text: str,
    seed: int | None = None,
    *,
    speaker: str | int | None = None,
    speed: float = 1.0,
) -> Iterator[Chunk]:
    """Audio chunks for `text`, in order: (samples, 1) float32 cores, `start` in samples from
    the start of their sentence, `is_last` on each sentence's last chunk.

    A sentence with nothing to say is skipped, as the service skips it; a text with no
    speakable sentence at all is a ValueError. `seed` fixes the noise of a generative voice
    (one is drawn when it is None); `speaker` and `speed` as a request's (blocks/request.py):
    what the voice cannot do is a RequestError."""
    from voicestack.blocks.frontend import NothingToSayError
    from voicestack.blocks.request import RequestOptions
    from voicestack.runtime.plan import stream_local

    request = voice.request(RequestOptions(seed, speaker, speed))
    spoken = False
    for index, sentence in enumerate(voice.sentences(text)):
        try:
            features = voice.features(sentence, request, index)
        except NothingToSayError:
            continue
        spoken = True
        yield from stream_local(voice.plan, features)
    if not spoken:
        raise ValueError("nothing to say: the text has no speakable sentence")


def synthesize(
    voice: Voice,
    text: str,
    seed: int | None = None,
    *,
    speaker: str | int | None = None,
    speed: float = 1.0,
) -> np.ndarray:
    """The whole waveform for `text`: float32, mono, at `voice.sample_rate`."""
    chunks = synthesize_stream(voice, text, seed, speaker=speaker, speed=speed)
    return np.concatenate([c.core[:, 0].numpy() for c in chunks]).astype(np.float32)
