"""Upsampler: repeats each symbol's encoding for its predicted number of frames, in chunks.

The duration-based (FastSpeech-like) acoustic model's bridge from symbols to frames. It is a
stream source: the whole upsampled sequence is cheap, so it is made at once and handed out in
chunks; the first chunk may be smaller so the first audio leaves sooner.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field
from voicestack.blocks.core.base import BlockConfig
from voicestack.blocks.core.chunk import Chunk
from voicestack.blocks.core.request import SPEED
from voicestack.blocks.core.sequence import Features
from voicestack.blocks.core.streamable import StreamableBlock


class Prior(BlockConfig):
    """Frames drawn from a normal prior, as a VITS model does before its flow: each encoding
    holds a mean and a log standard deviation (the two halves of its channels), and each frame
    is mean + noise * exp(log std) * noise_scale, the noise drawn per sentence from the
    request's seed (blocks/library/noise.py)."""

    noise_scale: float = Field(default=0.667, ge=0)
    carry: int = Field(
        default=0,
        ge=0,
        description="channels at the end of each encoding passed through unchanged, after "
        "the mean and log std (a multi-speaker voice's speaker, which its decoder reads)",
    )


class Upsampler(StreamableBlock):
    consumes = None
    produces = "upsampled"

    class Config(BlockConfig):
        chunk_frames: int = Field(default=32, ge=1)
        first_chunk_frames: int | None = Field(default=None, ge=1)
        growth: float | None = Field(
            default=None,
            ge=1,
            description="each chunk this many times the one before, from first_chunk_frames up "
            "to chunk_frames (none: straight to chunk_frames after the first)",
        )
        speed: float = Field(default=1.0, gt=0, description="> 1 speaks faster")
        max_frames: int = Field(default=20000, ge=1, description="cap on one sentence's frames")
        rounding: Literal["round", "ceil"] = Field(
            default="round",
            description="predicted durations to whole frames: 'round', or 'ceil' as VITS does",
        )
        prior: Prior | None = Field(
            default=None, description="sample frames from a prior (VITS); none: the encodings"
        )

    config: Config

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("encodings", "durations", SPEED)

    def frame_counts(self, durations, speed: float = 1.0):
        """Integer frames per symbol from predicted (float) durations, at the voice's speed
        times the request's."""
        import torch

        rounded = torch.ceil if self.config.rounding == "ceil" else torch.round
        whole = rounded(durations.float() / (self.config.speed * speed))
        if speed != 1.0:
            # A faster request keeps every phoneme the voice would say: one frame at least
            # (rounded away, the short ones vanish and the words with them).
            said = rounded(durations.float() / self.config.speed) > 0
            whole = torch.where(said, torch.clamp(whole, min=1), whole)
        return torch.clamp(whole, min=0).long()

    def symbol_frames(self, features: Features) -> list[int]:
        """Each symbol's frames in the stream: what `stream` repeats it for, and what word
        timestamps are read from (at most `max_frames` in all; a sentence whose every
        duration rounds to 0 gets one frame, its first symbol's)."""
        import torch

        counts = self.frame_counts(features["durations"], float(features.get(SPEED, 1.0)))
        ends = torch.clamp(torch.cumsum(counts, 0), max=self.config.max_frames)
        frames = torch.diff(ends, prepend=ends.new_zeros(1)).tolist()
        if frames and not any(frames):
            frames[0] = 1
        return frames

    def stream(self, features: Features, upstream: Iterator[Chunk] | None) -> Iterator[Chunk]:
        import torch

        encodings, durations = features["encodings"], features["durations"]
        if encodings.shape[0] != durations.shape[0]:
            raise ValueError(
                f"{self.path}: {encodings.shape[0]} encodings but {durations.shape[0]} durations"
            )
        counts = torch.tensor(self.symbol_frames(features), dtype=torch.long)
        frames = torch.repeat_interleave(encodings, counts, dim=0)
        if self.config.prior is not None:
            frames = self._sample(frames, features, self.config.prior)
        total = frames.shape[0]
        start = 0
        size = self.config.first_chunk_frames or self.config.chunk_frames
        while start < total:
            end = min(total, start + size)
            yield Chunk(frames[start:end], start=start, is_last=end == total)
            start, size = end, self._next_size(size)

    def _sample(self, frames, features: Features, prior: Prior):
        """The whole sentence's frames from the prior at once, so chunks cannot change them."""
        import torch
        from voicestack.blocks.library.noise import standard_normal

        carried = frames[:, frames.shape[-1] - prior.carry :]
        mean, log_std = frames[:, : frames.shape[-1] - prior.carry].chunk(2, dim=-1)
        noise = standard_normal(features, "prior", mean.shape)
        sampled = mean + noise * torch.exp(log_std) * prior.noise_scale
        return torch.cat([sampled, carried], dim=-1) if prior.carry else sampled

    def _next_size(self, size: int) -> int:
        """Small first chunks for an early first sound, then larger ones: every chunk costs
        hops and its consumers' context (Griffin-Lim reconstructs 16 frames either side), so
        96-frame chunks cost a third less CPU per second of audio than 32-frame ones."""
        if self.config.growth is None:
            return self.config.chunk_frames
        return min(self.config.chunk_frames, max(size + 1, round(size * self.config.growth)))
