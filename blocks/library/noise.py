"""Noise a generative voice samples (a VITS voice's duration predictor and prior), drawn as a
function of the request's seed, the sentence and what it is for.

A block draws one sentence's noise at once, in the order of its frames, so frame t's noise
depends only on (seed, sentence, purpose, t): a stream cut into chunks gets the same noise as
one call on the whole sentence, and the same request with the same seed the same audio. A
request without a seed gets one drawn by the runtime (and reported), so that the encoders and
the upsampler, which may run in different processes, still draw from one seed.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from voicestack.blocks.core.request import SEED, SENTENCE, new_seed

if TYPE_CHECKING:
    import torch


def standard_normal(
    features: Mapping[str, Any], purpose: str, shape: Sequence[int]
) -> torch.Tensor:
    """float32 noise of `shape`, N(0, 1), for this sentence and `purpose` (a network input's
    or a block's name). Without a seed in the features (a caller outside the runtimes), the
    noise is fresh."""
    import numpy as np
    import torch

    seed = features.get(SEED)
    if seed is None:
        seed = new_seed()
    key = [int(seed), int(features.get(SENTENCE, 0)), zlib.crc32(purpose.encode())]
    generator = np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))
    return torch.from_numpy(generator.standard_normal(tuple(shape), dtype=np.float32))
