"""The one unit of streamed data: a Chunk of frames with the context its consumer needs.

A chunk is self-contained: it carries `left` frames before and `right` frames after its core,
so a consumer whose receptive field fits in that context computes exactly what it would have
computed on the whole utterance. That property is what keeps clicks out of chunk seams.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True, slots=True)
class Chunk:
    """Frames of one utterance, with context.

    Shape: `frames` is (time, channels): context, then core, then context. For audio the
    channels axis is 1 and time counts samples; for spectrogram-like data it counts frames.
    `start` is the utterance index of the first core frame.
    """

    frames: torch.Tensor
    start: int
    left: int = 0
    right: int = 0
    is_last: bool = False
    marks: tuple[int, ...] | None = None
    """The symbol each core frame was made from, where the source learns it only as it
    streams (an attention decoder's alignment): word timestamps are read from it. Blocks after
    the source pass it on unchanged, per input frame of their core."""

    def __post_init__(self) -> None:
        if self.frames.dim() != 2:
            raise ValueError(
                f"Chunk.frames must be (time, channels), got {tuple(self.frames.shape)}"
            )
        if self.left < 0 or self.right < 0 or self.left + self.right > self.frames.shape[0]:
            raise ValueError(
                f"context left={self.left} right={self.right} does not fit in "
                f"{self.frames.shape[0]} frames"
            )

    @property
    def core(self) -> torch.Tensor:
        """The frames this chunk is responsible for, without context. Shape: (core, channels)."""
        return self.frames[self.left : self.frames.shape[0] - self.right]

    @property
    def length(self) -> int:
        """Number of core frames."""
        return self.frames.shape[0] - self.left - self.right

    @property
    def end(self) -> int:
        """Utterance index one past the last core frame."""
        return self.start + self.length

    def __reduce__(self):
        """Pickled as a numpy array, which Ray's serializer passes out of band (no copy into the
        pickle stream). A torch tensor would go through torch's own reducer (a `torch.save` per
        chunk), the largest serialisation cost per hop in a profile of the service."""
        return _rebuild, (
            self.frames.detach().cpu().numpy(),
            self.start,
            self.left,
            self.right,
            self.is_last,
            self.marks,
        )


def _rebuild(
    frames, start: int, left: int, right: int, is_last: bool, marks: tuple | None = None
) -> Chunk:
    # Ray hands back read-only arrays backed by its object store; torch needs a writable one.
    tensor = torch.from_numpy(frames if frames.flags.writeable else frames.copy())
    return Chunk(tensor, start, left, right, is_last, marks)


def with_context(chunks: Iterable[Chunk], left: int, right: int) -> Iterator[Chunk]:
    """Re-emit a stream of chunks so that each carries `left`/`right` frames of context.

    The cores are unchanged; context comes from the neighbouring chunks, so a chunk is held back
    until enough frames after it have arrived (or the stream has ended). At the utterance edges
    the context is whatever exists, which is what a network sees at the edges of a one-shot run.
    Chunks must arrive in order and be contiguous.
    """
    history: torch.Tensor | None = None  # frames [history_start, history_end)
    history_start = 0
    pending: deque[Chunk] = deque()
    last_seen = False

    def emit(chunk: Chunk) -> Chunk:
        assert history is not None
        history_end = history_start + history.shape[0]
        lo = max(history_start, chunk.start - left)
        hi = min(history_end, chunk.end + right)
        return Chunk(
            frames=history[lo - history_start : hi - history_start],
            start=chunk.start,
            left=chunk.start - lo,
            right=hi - chunk.end,
            is_last=chunk.is_last,
            marks=chunk.marks,
        )

    for chunk in chunks:
        if last_seen:
            raise ValueError("chunk received after the chunk marked is_last")
        core = chunk.core
        if history is None:
            history, history_start = core, chunk.start
        else:
            expected = history_start + history.shape[0]
            if chunk.start != expected:
                raise ValueError(
                    f"chunks are not contiguous: expected start {expected}, got {chunk.start}"
                )
            history = torch.cat([history, core])
        pending.append(chunk)
        last_seen = chunk.is_last
        history_end = history_start + history.shape[0]
        while pending and (pending[0].end + right <= history_end or last_seen):
            yield emit(pending.popleft())
        # Keep only what a pending chunk (or the next one) can still need as left context.
        keep_from = (pending[0].start if pending else history_end) - left
        if keep_from > history_start:
            history = history[keep_from - history_start :]
            history_start = keep_from
    while pending:
        yield emit(pending.popleft())


def split_chunk(chunk: Chunk, max_frames: int, left: int, right: int) -> list[Chunk]:
    """Split a chunk whose frames exceed `max_frames` into pieces that each carry their context.

    Used where a network accepts at most a fixed window (static shapes): each piece keeps up to
    `left`/`right` frames of context taken from the chunk itself, so results are unchanged.
    """
    core_per_piece = max_frames - left - right
    if core_per_piece < 1:
        raise ValueError(f"window {max_frames} cannot hold context {left}+{right} and a core frame")
    pieces = []
    for s in range(0, chunk.length, core_per_piece):
        e = min(chunk.length, s + core_per_piece)
        lo = max(0, chunk.left + s - left)
        hi = min(chunk.frames.shape[0], chunk.left + e + right)
        pieces.append(
            Chunk(
                frames=chunk.frames[lo:hi],
                start=chunk.start + s,
                left=chunk.left + s - lo,
                right=hi - (chunk.left + e),
                is_last=chunk.is_last and e == chunk.length,
            )
        )
    return pieces


def concat_cores(chunks: Iterable[Chunk]) -> torch.Tensor:
    """The whole stream as one tensor: the cores, in order. Shape: (time, channels)."""
    cores = [c.core for c in chunks]
    if not cores:
        raise ValueError("empty stream")
    return torch.cat(cores)
