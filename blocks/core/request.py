"""What a request adds to each of its sentences' features: the seed, the sentence's index, the
speaker and the speed.

Blocks read these by key, as they read the front end's features: `Encoder` hands `speaker` to
a network that takes it (a multi-speaker VITS voice), `Upsampler` divides its durations by
`speed`, the noise of a generative voice is drawn from `seed` and `sentence`
(blocks/library/noise.py). A voice reads the keys its blocks declare among their inputs, and no others: a request that
asks a voice for what none of its blocks reads (a speaker of a one-speaker voice, a speed
its blocks cannot change) is refused with a `RequestError` naming the voice, never ignored.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from voicestack.blocks.errors import RequestError

SEED = "seed"
SENTENCE = "sentence"
SPEAKER = "speaker"
SPEED = "speed"
#: Every feature key a request sets; blocks may declare any of them as inputs.
REQUEST_KEYS = frozenset({SEED, SENTENCE, SPEAKER, SPEED})

#: The range of speeds a request may ask for (OpenAI's speech API takes the same).
MIN_SPEED, MAX_SPEED = 0.25, 4.0


def new_seed() -> int:
    """A seed for a request that did not give one."""
    return secrets.randbits(63)


@dataclass(frozen=True)
class RequestOptions:
    """How one request wants its text spoken. `speaker` is a name from the voice's speaker
    table or a speaker id; None is the voice's first speaker. `seed` None: one is drawn.
    `first_sentence`: the index of the text's first sentence in a longer text sent in pieces
    (text streamed in as it is written), so that its noise is drawn as in one request."""

    seed: int | None = None
    speaker: str | int | None = None
    speed: float = 1.0
    first_sentence: int = 0

    def seeded(self) -> RequestOptions:
        """These options with a seed: the given one or a new one, so every block of the
        request, in whatever process, draws from the same seed."""
        if self.seed is not None:
            return self
        return replace(self, seed=new_seed())


@dataclass(frozen=True)
class VoiceRequest:
    """A request's options checked against one voice: what each sentence's features get."""

    seed: int
    speaker: int
    speed: float
    first_sentence: int = 0

    def features(self, index: int) -> dict[str, Any]:
        """The request's keys for sentence `index`."""
        import torch

        return {
            SEED: self.seed,
            SENTENCE: self.first_sentence + index,
            SPEAKER: torch.tensor(self.speaker, dtype=torch.long),
            SPEED: self.speed,
        }


def for_voice(
    options: RequestOptions, voice: str, reads: frozenset[str], speakers: Mapping[str, int]
) -> VoiceRequest:
    """`options` checked against a voice whose blocks read the request keys `reads` and whose
    speakers are `speakers` (name -> id; empty for a one-speaker voice). Raises RequestError
    naming the field and the voice."""
    options = options.seeded()
    speed = float(options.speed)
    if not (math.isfinite(speed) and MIN_SPEED <= speed <= MAX_SPEED):
        raise RequestError("speed", f"{options.speed} is outside {MIN_SPEED} to {MAX_SPEED}")
    if speed != 1.0 and SPEED not in reads:
        raise RequestError("speed", f"voice {voice!r} cannot change its speed")
    speaker = _speaker_id(options.speaker, voice, reads, speakers)
    return VoiceRequest(options.seed, speaker, speed, options.first_sentence)  # type: ignore[arg-type]


def _speaker_id(
    speaker: str | int | None, voice: str, reads: frozenset[str], speakers: Mapping[str, int]
) -> int:
    if speaker is None:
        return 0
    if SPEAKER not in reads:
        raise RequestError("speaker", f"voice {voice!r} has one speaker; it takes no speaker")
    known = ", ".join(sorted(speakers, key=speakers.__getitem__)) or "none named"
    ids = set(speakers.values())
    if isinstance(speaker, int) and not isinstance(speaker, bool) and speaker in ids:
        return speaker
    if isinstance(speaker, str) and speaker in speakers:
        return speakers[speaker]
    raise RequestError(
        "speaker", f"voice {voice!r} has no speaker {speaker!r} (its speakers: {known})"
    )
