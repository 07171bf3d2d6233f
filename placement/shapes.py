"""Shape policies: run networks at the input's own length, or only at exported static sizes.

Static-shape accelerators (Inferentia/Neuron) compile one graph per input shape. The policy pads
each call up to the smallest allowed size that fits (found by bisect over sizes sorted once) and
says how to split an input longer than the largest size. Padding everything to the maximum would
waste most of the work, hence a few buckets. Switching a network between dynamic and static
shapes is a placement change only.
"""

from __future__ import annotations

import bisect
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class DynamicShapes(BaseModel):
    """Networks run at the input's own length."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["dynamic"] = "dynamic"

    def padded_size(self, n: int) -> int:
        return n

    @property
    def max_size(self) -> int | None:
        return None


class StaticShapes(BaseModel):
    """Networks run only at these lengths along their length axis (symbols or frames).

    For encoders, a few text-length buckets (e.g. 32/64/128 symbols); for a decoder or vocoder,
    one fixed window of frames (context included).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["static"] = "static"
    sizes: tuple[int, ...] = Field(min_length=1)

    @field_validator("sizes")
    @classmethod
    def _sorted_positive(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        if any(s < 1 for s in sizes):
            raise ValueError(f"sizes must be positive, got {list(sizes)}")
        return tuple(sorted(set(sizes)))

    def padded_size(self, n: int) -> int:
        """The smallest allowed size >= n; ValueError past the largest (the caller splits)."""
        i = bisect.bisect_left(self.sizes, n)
        if i == len(self.sizes):
            raise ValueError(f"length {n} exceeds the largest static size {self.sizes[-1]}")
        return self.sizes[i]

    @property
    def max_size(self) -> int | None:
        return self.sizes[-1]


ShapePolicy = Annotated[DynamicShapes | StaticShapes, Field(discriminator="kind")]


def split_at_boundaries(length: int, boundaries: list[int], max_size: int) -> list[tuple[int, int]]:
    """Split [0, length) into pieces of at most `max_size`, cutting only at `boundaries` (word
    starts) where possible, and mid-word only when a single word is longer than `max_size`.

    Returns (start, end) pairs covering [0, length) in order.
    """
    cuts = sorted({b for b in boundaries if 0 < b < length})
    pieces = []
    start = 0
    while length - start > max_size:
        limit = start + max_size
        # the last word start that keeps this piece within max_size
        i = bisect.bisect_right(cuts, limit) - 1
        end = cuts[i] if i >= 0 and cuts[i] > start else limit
        pieces.append((start, end))
        start = end
    pieces.append((start, length))
    return pieces
