"""StreamableBlock: yields chunks of frames on demand.

A streamable block takes the chunks of the block before it and/or the features that sequence
blocks produced, and yields chunks. Streams are typed by what they carry (`upsampled` encodings,
`mel` frames, `audio` samples) so the registry can refuse a stack whose blocks do not fit.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Hashable, Iterator
from dataclasses import replace
from typing import Any, ClassVar

from voicestack.blocks.core.base import Block
from voicestack.blocks.core.chunk import Chunk, with_context
from voicestack.blocks.core.sequence import Features
from voicestack.blocks.errors import Problem

#: `consumes` value of a block that passes any stream through (effects, diagnostics).
ANY = "any"


class StreamableBlock(Block):
    """Yields chunks on demand.

    `consumes` is the kind of stream it takes from the block before it (None: it is a source and
    takes none); `produces` is the kind it yields (ANY: the same kind it consumed).
    """

    consumes: ClassVar[str | None] = None
    produces: ClassVar[str] = ANY

    @abstractmethod
    def stream(self, features: Features, upstream: Iterator[Chunk] | None) -> Iterator[Chunk]:
        """Yield this block's chunks for one utterance, lazily: nothing is computed before the
        consumer asks for the next chunk."""

    def symbol_frames(self, features: Features) -> list[int] | None:
        """The frames each symbol of the sentence gets in this block's stream, where a source
        knows them before it streams (a duration model's upsampler): what word timestamps are
        made from. None where it does not (this default)."""
        return None

    @property
    def times_symbols(self) -> bool:
        """Whether `symbol_frames` answers (the block overrides it)."""
        return type(self).symbol_frames is not StreamableBlock.symbol_frames

    @property
    def reports_alignment(self) -> bool:
        """Whether its chunks carry `marks`, the symbol each frame was made from (a source that
        learns its alignment as it streams, an attention decoder)."""
        return False

    def check(self, available: set[str], upstream: str | None) -> tuple[str, list[Problem]]:
        """Check this block against what comes before it; return the kind of stream it yields."""
        problems = self.missing_inputs(available)
        if self.consumes is None and upstream is not None:
            problems.append(
                Problem(
                    self.path,
                    f"{self.type_name} starts a stream of its own, but follows a block that yields "
                    f"a {upstream!r} stream; it cannot take it",
                )
            )
        elif self.consumes is not None and upstream is None:
            wanted = "a stream" if self.consumes == ANY else f"a {self.consumes!r} stream"
            problems.append(
                Problem(
                    self.path,
                    f"{self.type_name} consumes {wanted}, but no earlier block yields one",
                )
            )
        elif self.consumes not in (None, ANY) and upstream not in (self.consumes, ANY):
            problems.append(
                Problem(
                    self.path,
                    f"{self.type_name} consumes a {self.consumes!r} stream, but the block before it "
                    f"yields {upstream!r}",
                )
            )
        if problems:  # what a misplaced block yields is unknown: do not report a cascade
            return ANY, problems
        produced = upstream if self.produces == ANY else self.produces
        return produced or ANY, problems


class ChunkwiseBlock(StreamableBlock):
    """A streamable block that maps each upstream chunk on its own, given its context.

    It declares the context it needs (`context`: frames before and after the core, at least its
    receptive field); the stream is re-chunked to carry that much, and `process` returns the
    output core only. Because each call sees everything it depends on, any replica can process
    any chunk, and the stream equals a one-shot run on the whole utterance.
    """

    consumes: ClassVar[str | None] = ANY

    @property
    def context(self) -> tuple[int, int]:
        """Frames of context needed before and after each chunk's core."""
        return (0, 0)

    @property
    def scale(self) -> int:
        """Output units per input frame (a vocoder's hop length; 1 for most blocks)."""
        return 1

    def apply(self, chunk: Chunk, keep: tuple[int, int] = (0, 0)) -> Chunk:
        """Map one chunk and pass on up to `keep` input frames of its context, mapped too.

        This is how a chunk crosses a chain of stateless calls: the source gives each chunk the
        context of every block after it, and each block spends its own and keeps the rest for
        the next. The kept frames are exact (they still have `context` frames around them, or
        the utterance's edge), so the next block's output equals a one-shot run as well.
        """
        widened, kl, kr = self.widen(chunk, keep)
        return self.narrowed(chunk, self.process(widened), kl, kr)

    def batch_key(self) -> Hashable | None:
        """Chunk calls of blocks with equal keys may run as one call (`apply_batch`), where
        `batches_with` allows; None (the default): each chunk runs on its own."""
        return None

    def batches_with(self, chunk: Chunk, other: Chunk) -> bool:
        """Whether `other` (another stream's chunk, for a block of the same `batch_key`) may
        share a call with `chunk` without costing it more than it gains."""
        return False

    @classmethod
    def apply_batch(cls, items: list[tuple[Any, Chunk, tuple[int, int]]]) -> list[Chunk]:
        """`block.apply(chunk, keep)` for (block, chunk, keep) items of one `batch_key`: one
        call for all of them where the block can (a network's batch axis), else in turn."""
        return [block.apply(chunk, keep) for block, chunk, keep in items]

    @staticmethod
    def widen(chunk: Chunk, keep: tuple[int, int]) -> tuple[Chunk, int, int]:
        """The chunk with up to `keep` frames of its context counted as core (to be computed
        and passed on), and how many were taken on each side."""
        kl, kr = min(chunk.left, keep[0]), min(chunk.right, keep[1])
        widened = Chunk(
            chunk.frames,
            start=chunk.start - kl,
            left=chunk.left - kl,
            right=chunk.right - kr,
            is_last=chunk.is_last,
        )
        return widened, kl, kr

    def narrowed(self, chunk: Chunk, out: Chunk, kl: int, kr: int) -> Chunk:
        """The output of a widened chunk, with the taken frames marked as context again."""
        s = self.scale
        return Chunk(
            out.frames,
            start=chunk.start * s,
            left=kl * s,
            right=kr * s,
            is_last=out.is_last,
            marks=chunk.marks,
        )

    @abstractmethod
    def process(self, chunk: Chunk) -> Chunk:
        """Map one chunk (with at least `context` frames around its core, fewer only at the
        utterance edges) to its output core: same `start` (in output units) and `is_last`,
        no context."""

    def stream(self, features: Features, upstream: Iterator[Chunk] | None) -> Iterator[Chunk]:
        if upstream is None:
            raise ValueError(f"{self.path or type(self).__name__}: needs an upstream stream")
        left, right = self.context
        for chunk in with_context(upstream, left, right):
            yield replace(self.process(chunk), marks=chunk.marks)
