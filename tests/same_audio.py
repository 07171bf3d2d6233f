"""How close two requests for the same text must be: what batching with other requests' chunks
may change, and no more. Shared by the service tests and bench/faults.py."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

#: Two requests for the same text need not get bit-identical audio: the Decoder and Vocoder
#: replicas run the chunks of whichever streams are in flight as one network call, padded to a
#: common length (serve_app/batching.py), and another batch is another float computation. Measured
#: (tests/test_serve.py's two-sentence text, sent 8 at a time beside 4 of its LONG, 40 rounds, idle and beside two CPU-bound
#: processes: batches of 1 to 8) against the same text sent alone, over 320 requests: at most
#: 1 LSB apart, SNR >= 103.8 dB: the float difference is far below an LSB (3e-5), and only flips
#: samples that sit near a rounding boundary. 2 LSB (6e-5 of full scale, the bound the
#: local-runtime comparisons use) leaves margin; a real fault is thousands of LSB (this audio
#: shifted by one sample differs by up to 28,000).
SAME_TEXT_LSB = 2

#: An iterative vocoder's (Griffin-Lim) audio is compared by SNR instead: its iterations carry
#: the decoder's float differences from being batched with other streams' chunks into the
#: phase, tens of LSB where a neural vocoder keeps them under one. 40 dB (a relative error of 1%) is ten times below the error
#: Griffin-Lim's own chunking is allowed (tests/test_griffin_lim.py: 10%), and a fault is far
#: beyond it (another request's audio, or this one shifted by a sample, is near 0 dB).
#: tests/test_reference_voices.py measures a batched stream against it.
ITERATIVE_SAME_TEXT_SNR_DB = 40.0


def snr_db(got: np.ndarray, reference: np.ndarray) -> float:
    """The reference's power over the difference's, in dB (inf when they are equal)."""
    ref, diff = reference.astype(float), got.astype(float) - reference.astype(float)
    noise = float(np.sum(diff**2))
    return float("inf") if noise == 0 else 10 * float(np.log10(np.sum(ref**2) / noise))


def same_audio(got: np.ndarray, reference: np.ndarray, iterative_vocoder: bool = False) -> bool:
    """Whether `got` is the audio of the same request as `reference` (int16 samples), within
    what batching with other requests may change."""
    if got.shape != reference.shape:
        return False
    if iterative_vocoder:
        return snr_db(got, reference) >= ITERATIVE_SAME_TEXT_SNR_DB
    return int(np.abs(got.astype(int) - reference.astype(int)).max()) <= SAME_TEXT_LSB


def batch_beside_other_streams(block: Any, seed: int = 0) -> list[int]:
    """Make `block` (a network chunk block, such as a Decoder) run each of its chunks in one
    call with 1 to 7 random other chunks, at a random place among them, as a replica batches
    the streams in flight. Returns the list to which each call's batch size is appended."""
    import torch
    from voicestack.blocks.core.chunk import Chunk
    from voicestack.blocks.library.network_chunks import apply_batch

    rng, sizes = random.Random(seed), []

    def beside_others(chunk: Chunk, keep: tuple[int, int]) -> Chunk:
        need = block.context[0] + keep[0]
        width = chunk.frames.shape[1]
        items = [
            (
                block,
                Chunk(torch.randn(rng.randint(3, 60) + 2 * need, width), need, need, need),
                keep,
            )
            for _ in range(rng.randint(1, 7))
        ]
        at = rng.randint(0, len(items))
        items.insert(at, (block, chunk, keep))
        sizes.append(len(items))
        return apply_batch(items)[at]

    block.apply = beside_others
    return sizes
