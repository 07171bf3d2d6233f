"""The local runtime: a whole voice in one process, streaming audio chunk by chunk.

`synthesize_stream` yields audio chunks as they are made; `synthesize` is built on it. Text is
split into sentences and each sentence is encoded only when the previous one has been streamed,
so the first audio does not wait for the rest of the text.
"""

from __future__ import annotations

import functools
from collections.abc import Generator, Iterator

import numpy as np
from voicestack.blocks.core.chunk import Chunk
from voicestack.runtime.voice import Voice


def synthesize_stream(
    voice: Voice,
    text: str,
    seed: int | None = None,
    *,
    speaker: str | int | None = None,
    speed: float = 1.0,
) -> Generator[Chunk, None, None]:
    """Audio chunks for `text`, in order: (samples, 1) float32 cores, `start` in samples from
    the start of their sentence, `is_last` on each sentence's last chunk.

    A sentence with nothing to say is skipped, as the service skips it; a text with no
    speakable sentence at all is a ValueError. `seed` fixes the noise of a generative voice
    (one is drawn when it is None); `speaker` and `speed` as a request's (blocks/core/request.py):
    what the voice cannot do is a RequestError."""
    for item in synthesize_events(voice, text, seed, speaker=speaker, speed=speed, words=False):
        assert isinstance(item, Chunk)
        yield item


def synthesize_events(
    voice: Voice,
    text: str,
    seed: int | None = None,
    *,
    speaker: str | int | None = None,
    speed: float = 1.0,
    words: bool = True,
) -> Iterator[Chunk | dict]:
    """`synthesize_stream`'s chunks and each sentence's words with their times in the audio
    (blocks/text/words.py): a duration voice's before the sentence's first chunk (`timed_words`),
    an attention voice's each before the chunk its end is in (`AlignedWords`, from the
    alignment the chunks carry)."""
    from voicestack.blocks.core.request import RequestOptions
    from voicestack.blocks.text.frontend import NothingToSayError
    from voicestack.blocks.text.words import AlignedWords, TextSpans, timed_words
    from voicestack.runtime.plan import run_sequence, stream_segments

    request = voice.request(RequestOptions(seed, speaker, speed))
    sentences = voice.sentences(text)
    source = voice.plan.segments[0].head_block
    timed = words and source.times_symbols
    aligned = words and not timed and source.reports_alignment
    spans = (
        TextSpans(text, sentences, voice.frontend.rewrite)  # type: ignore[attr-defined]
        if timed or aligned
        else None
    )
    seconds_per_frame = voice.addon.audio.hop_length / voice.sample_rate
    made = 0  # samples before this sentence
    spoken = False
    for index, sentence in enumerate(sentences):
        try:
            features = voice.features(sentence, request, index)
        except NothingToSayError:
            continue
        spoken = True
        features = run_sequence(voice.plan.sequence, features)
        offset_s = made / voice.sample_rate
        where = functools.partial(spans.span, index) if spans is not None else _no_span
        if timed:
            frames = source.symbol_frames(features)
            assert frames is not None  # a source that times symbols answers
            yield from timed_words(
                features["words"], frames, seconds_per_frame, offset_s, where, text
            )
        align = (
            AlignedWords(features["words"], seconds_per_frame, offset_s, where, text)
            if aligned
            else None
        )
        for chunk in stream_segments(voice.plan.segments, features, None):
            if align is not None and chunk.marks is not None:
                yield from align.feed(chunk.marks)
            if align is not None and chunk.is_last:
                yield from align.finish()
            made += chunk.core.shape[0]
            yield chunk
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


def _no_span(index: int) -> None:
    """Where a sentence's word is in the text, when words are not asked for: never read."""
    return None
