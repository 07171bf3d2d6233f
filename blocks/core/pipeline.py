"""StreamablePipeline: exactly one SequenceBlock, then one StreamableBlock fed by its outputs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from voicestack.blocks.core.base import BlockConfig, BuildEnv, ChildArity
from voicestack.blocks.core.chunk import Chunk
from voicestack.blocks.core.sequence import Features, SequenceBlock
from voicestack.blocks.core.streamable import StreamableBlock
from voicestack.blocks.errors import Problem, StackError


class StreamablePipeline(StreamableBlock):
    """Runs its sequence block on the whole sentence, then streams its streamable block.

    This is how an acoustic model is wrapped: encoders (sequence) then upsampler and decoder
    (streamable). To the blocks around it, the pipeline is just another StreamableBlock.
    """

    children: ClassVar[dict[str, ChildArity]] = {"sequence_block": "one", "streamable_block": "one"}

    def __init__(
        self,
        config: BlockConfig,
        env: BuildEnv,
        path: str = "",
        *,
        sequence_block: SequenceBlock,
        streamable_block: StreamableBlock,
    ):
        super().__init__(config, env, path)
        problems: list[Problem] = []
        if not isinstance(sequence_block, SequenceBlock):
            problems.append(
                Problem(
                    sequence_block.path,
                    f"expected a SequenceBlock, got {sequence_block.type_name} (a StreamableBlock)",
                )
            )
        if not isinstance(streamable_block, StreamableBlock):
            problems.append(
                Problem(
                    streamable_block.path,
                    f"expected a StreamableBlock, got {streamable_block.type_name} (a SequenceBlock)",
                )
            )
        if problems:
            raise StackError(problems)
        self.sequence_block = sequence_block
        self.streamable_block = streamable_block

    @property
    def consumes(self) -> str | None:  # type: ignore[override]
        return self.streamable_block.consumes

    @property
    def inputs(self) -> tuple[str, ...]:
        own = set(self.sequence_block.outputs)
        later = tuple(n for n in self.streamable_block.inputs if n not in own)
        return tuple(dict.fromkeys(self.sequence_block.inputs + later))

    def stream(self, features: Features, upstream: Iterator[Chunk] | None) -> Iterator[Chunk]:
        # A generator, so the sequence block runs when the first chunk is asked for, not before:
        # a later sentence's encoders do not run while an earlier sentence is still streaming.
        merged = {**features, **self.sequence_block(features)}
        yield from self.streamable_block.stream(merged, upstream)

    def check(self, available: set[str], upstream: str | None) -> tuple[str, list[Problem]]:
        after_sequence, problems = self.sequence_block.check(available)
        kind, found = self.streamable_block.check(after_sequence, upstream)
        return kind, problems + found

    def walk(self):
        yield self
        yield from self.sequence_block.walk()
        yield from self.streamable_block.walk()

    def describe(self) -> dict[str, Any]:
        node = super().describe()
        node["sequence_block"] = self.sequence_block.describe()
        node["streamable_block"] = self.streamable_block.describe()
        return node
