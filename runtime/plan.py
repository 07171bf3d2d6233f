"""A voice's stack compiled for running: its sequence leaves in order, then its stream as
segments of stateless chunk calls.

The composites (StreamablePipeline, SequenceBlockContainer, StreamableStack) say how blocks
nest; a runtime needs the leaves. Flattened, every stack is: the sequence leaves (each sees the
features of the ones before it), then a chain of streamable leaves. The chain is cut into
segments, each headed by a block that keeps state across chunks (a source such as the Upsampler
or AttentionDecoder, or a stateful consumer such as Diagnostics) and followed by chunkwise steps
(Decoder, Vocoder, effects), which are stateless per chunk.

Context flows backward through a segment once, at compile time: a step needs its own context
plus what the steps after it need, so the head emits chunks carrying all of it and each step
spends its own share (`ChunkwiseBlock.apply`). Each chunk is therefore self-contained all the
way down: any replica can take any chunk, and no consumer has to wait for a neighbour chunk.
The local runtime and the Ray runtime run the same plan; only where each leaf runs differs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from voicestack.blocks.base import Block
from voicestack.blocks.chunk import Chunk, with_context
from voicestack.blocks.container import SequenceBlockContainer
from voicestack.blocks.pipeline import StreamablePipeline
from voicestack.blocks.sequence import Features, SequenceBlock
from voicestack.blocks.stack import StreamableStack
from voicestack.blocks.streamable import ChunkwiseBlock, StreamableBlock


@dataclass(frozen=True)
class ChunkStep:
    """A stateless step: `block.apply(chunk, keep)` on every chunk of its segment."""

    block: ChunkwiseBlock
    keep: tuple[int, int]
    """Input frames of context to pass on to the steps after this one."""


@dataclass(frozen=True)
class Segment:
    """A stateful head, then chunkwise steps.

    The head is a source (first segment) or a consumer of the previous segment's stream; its
    chunks are re-chunked to carry `need` frames of context, what the steps need in all.
    """

    head: StreamableBlock
    need: tuple[int, int]
    steps: tuple[ChunkStep, ...]


@dataclass(frozen=True)
class Plan:
    sequence: tuple[SequenceBlock, ...]
    segments: tuple[Segment, ...]

    def leaves(self) -> list[Block]:
        """Every block that runs, in order: each is one unit of placement (one actor)."""
        out: list[Block] = list(self.sequence)
        for segment in self.segments:
            out.append(segment.head)
            out += [step.block for step in segment.steps]
        return out


def compile_plan(stack: StreamableStack) -> Plan:
    """Flatten a checked stack into its plan."""
    sequence: list[SequenceBlock] = []
    chain: list[StreamableBlock] = []
    _flatten(stack, sequence, chain)
    groups: list[list[StreamableBlock]] = []
    for block in chain:
        if isinstance(block, ChunkwiseBlock) and groups:
            groups[-1].append(block)
        else:
            groups.append([block])
    return Plan(tuple(sequence), tuple(_segment(group) for group in groups))


def _segment(group: list[StreamableBlock]) -> Segment:
    head, *rest = group
    need = (0, 0)
    steps: list[ChunkStep] = []
    for block in reversed(rest):
        assert isinstance(block, ChunkwiseBlock)
        keep = (math.ceil(need[0] / block.scale), math.ceil(need[1] / block.scale))
        steps.append(ChunkStep(block, keep))
        left, right = block.context
        need = (left + keep[0], right + keep[1])
    return Segment(head, need, tuple(reversed(steps)))


def _flatten(block: StreamableBlock, sequence: list, chain: list) -> None:
    if isinstance(block, StreamablePipeline):
        _flatten_sequence(block.sequence_block, sequence)
        _flatten(block.streamable_block, sequence, chain)
    elif isinstance(block, StreamableStack):
        for child in block.stack:
            _flatten(child, sequence, chain)
    else:
        chain.append(block)


def _flatten_sequence(block: SequenceBlock, sequence: list) -> None:
    if isinstance(block, SequenceBlockContainer) and block.composite:
        for child in block.blocks:
            _flatten_sequence(child, sequence)
    else:
        sequence.append(block)


def run_sequence(blocks: tuple[SequenceBlock, ...] | list[SequenceBlock], features: Features):
    """Run sequence leaves in order; return the input features merged with all they made."""
    merged = dict(features)
    for block in blocks:
        merged.update(block(merged))
    return merged


def head_stream(
    segment: Segment, features: Features, upstream: Iterator[Chunk] | None
) -> Iterator[Chunk]:
    """The segment head's chunks, each carrying the context its steps need."""
    return with_context(segment.head.stream(features, upstream), *segment.need)


def stream_segments(
    segments: tuple[Segment, ...] | list[Segment],
    features: Features,
    upstream: Iterator[Chunk] | None,
) -> Iterator[Chunk]:
    """Chain segments lazily: each head re-chunked with its context, then its steps."""
    stream = upstream
    for segment in segments:
        stream = head_stream(segment, features, stream)
        for step in segment.steps:
            stream = _applied(stream, step)
    assert stream is not None
    return stream


def stream_local(plan: Plan, features: Features) -> Iterator[Chunk]:
    """Run the whole plan in this process, lazily: nothing runs until the first chunk is asked
    for, so a later sentence's encoders wait until it is that sentence's turn."""
    features = run_sequence(plan.sequence, features)
    yield from stream_segments(plan.segments, features, None)


def _applied(stream: Iterator[Chunk], step: ChunkStep) -> Iterator[Chunk]:
    for chunk in stream:
        yield step.block.apply(chunk, step.keep)
