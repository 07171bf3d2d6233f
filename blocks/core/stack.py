"""StreamableStack: a chain of StreamableBlocks, each consuming the stream of the one before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from voicestack.blocks.core.base import BlockConfig, BuildEnv, ChildArity
from voicestack.blocks.core.chunk import Chunk
from voicestack.blocks.core.sequence import Features
from voicestack.blocks.core.streamable import StreamableBlock
from voicestack.blocks.errors import Problem, StackError


class StreamableStack(StreamableBlock):
    """Chains streamable blocks: block i+1 consumes the chunks block i yields.

    An addon's top-level `stack` list is built as one of these.
    """

    children: ClassVar[dict[str, ChildArity]] = {"stack": "many"}

    def __init__(
        self,
        config: BlockConfig,
        env: BuildEnv,
        path: str = "",
        *,
        stack: list[StreamableBlock] | None = None,
    ):
        super().__init__(config, env, path)
        self.stack: list[StreamableBlock] = list(stack or [])
        wrong = [b for b in self.stack if not isinstance(b, StreamableBlock)]
        if wrong:
            raise StackError(
                [
                    Problem(
                        b.path,
                        f"expected a StreamableBlock, got {b.type_name} (a SequenceBlock; "
                        "put sequence blocks in a StreamablePipeline's sequence_block)",
                    )
                    for b in wrong
                ]
            )

    @property
    def consumes(self) -> str | None:  # type: ignore[override]
        return self.stack[0].consumes if self.stack else None

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for b in self.stack for n in b.inputs))

    def stream(self, features: Features, upstream: Iterator[Chunk] | None) -> Iterator[Chunk]:
        current = upstream
        for block in self.stack:
            current = block.stream(features, current)
        assert current is not None
        return current

    def check(self, available: set[str], upstream: str | None) -> tuple[str, list[Problem]]:
        problems: list[Problem] = []
        kind = upstream
        for block in self.stack:
            kind, found = block.check(available, kind)
            problems += found
        return kind or "any", problems

    def walk(self):
        yield self
        for block in self.stack:
            yield from block.walk()

    def describe(self) -> dict[str, Any]:
        node = super().describe()
        node["stack"] = [b.describe() for b in self.stack]
        return node
