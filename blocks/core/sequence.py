"""SequenceBlock: tensors in, transformed tensors out, on the whole sentence at once.

Used for the text front end, the encoders and the duration predictor: the parts of a voice that
need the whole sentence before anything can stream.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

from voicestack.blocks.core.base import Block
from voicestack.blocks.errors import Problem

#: Sequence-level data passed between blocks, by name. Tensors are unbatched: `symbols` is
#: (symbols,), `encodings` (symbols, channels), `durations` (symbols,). The front end's
#: input `text` is the one str.
Features = Mapping[str, Any]


class SequenceBlock(Block):
    """Transforms named features into new named features.

    Contract: read only `self.inputs`, return a mapping holding at least `self.outputs`. Pure:
    no state carried from one call to the next.
    """

    @abstractmethod
    def __call__(self, features: Features) -> dict[str, Any]:
        """Return the features this block produces (the caller merges them into its own)."""

    def check(self, available: set[str]) -> tuple[set[str], list[Problem]]:
        """Check the block's inputs against the features produced before it.

        Returns the features available after it and any problems, each naming this block's path.
        """
        problems = self.missing_inputs(available)
        return available | set(self.outputs), problems
