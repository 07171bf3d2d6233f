"""SequenceBlockContainer: nested SequenceBlocks run in order, as one SequenceBlock."""

from __future__ import annotations

from typing import Any, ClassVar

from voicestack.blocks.core.base import BlockConfig, BuildEnv, ChildArity
from voicestack.blocks.core.sequence import Features, SequenceBlock
from voicestack.blocks.errors import Problem


class SequenceBlockContainer(SequenceBlock):
    """Runs its blocks in order; each sees the features of the ones before it."""

    children: ClassVar[dict[str, ChildArity]] = {"blocks": "many"}
    #: Whether a runtime runs its blocks as leaves of their own: they come from config nodes,
    #: so each can be rebuilt alone in another process. A container that makes its blocks
    #: itself (Encoders, from the addon's networks) runs as one leaf.
    composite: ClassVar[bool] = True

    def __init__(
        self,
        config: BlockConfig,
        env: BuildEnv,
        path: str = "",
        *,
        blocks: list[SequenceBlock] | None = None,
    ):
        super().__init__(config, env, path)
        self.blocks: list[SequenceBlock] = list(blocks or [])
        _require_sequence_blocks(self.blocks)

    @property
    def inputs(self) -> tuple[str, ...]:
        produced: set[str] = set()
        needed: list[str] = []
        for block in self.blocks:
            needed += [n for n in block.inputs if n not in produced and n not in needed]
            produced |= set(block.outputs)
        return tuple(needed)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for b in self.blocks for n in b.outputs))

    def __call__(self, features: Features) -> dict[str, Any]:
        current = dict(features)
        produced: dict[str, Any] = {}
        for block in self.blocks:
            out = block(current)
            current.update(out)
            produced.update(out)
        return produced

    def check(self, available: set[str]) -> tuple[set[str], list[Problem]]:
        problems: list[Problem] = []
        for block in self.blocks:
            available, found = block.check(available)
            problems += found
        return available, problems

    def walk(self):
        yield self
        for block in self.blocks:
            yield from block.walk()

    def describe(self) -> dict[str, Any]:
        node = super().describe()
        node["blocks"] = [b.describe() for b in self.blocks]
        return node


def _require_sequence_blocks(blocks: list[Any]) -> None:
    from voicestack.blocks.errors import StackError

    wrong = [b for b in blocks if not isinstance(b, SequenceBlock)]
    if wrong:
        raise StackError(
            [
                Problem(b.path, f"expected a SequenceBlock, got {b.type_name} (a StreamableBlock)")
                for b in wrong
            ]
        )
