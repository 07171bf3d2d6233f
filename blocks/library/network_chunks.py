"""A chunkwise block backed by one network with a bounded receptive field (decoder, vocoder).

Each chunk arrives with at least the network's receptive field of context on each side; the
network runs on core and context, and the context is trimmed from its output. The addon declares
the receptive field and the block refuses a context smaller than it, because only then does the
stream equal a one-shot run. Under a static shape policy the window is fixed: a chunk longer than
the window is split into pieces that each carry their own context, and shorter ones are padded.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, ClassVar

from pydantic import Field
from voicestack.blocks.core.base import BlockConfig, BuildEnv
from voicestack.blocks.core.chunk import Chunk, split_chunk
from voicestack.blocks.core.streamable import ChunkwiseBlock
from voicestack.blocks.errors import Problem, StackError

#: Chunks of different streams are padded to the longest in their call. A chunk longer than this
#: many times another does not share its call, so that a stream's small first chunk never pays
#: for a large chunk's padding (nor waits for its compute).
MAX_PADDING = 1.25


class NetworkChunkConfig(BlockConfig):
    network: str
    context_frames: int | None = Field(
        default=None, ge=0, description="frames of context per side (default: receptive field)"
    )


class NetworkChunkBlock(ChunkwiseBlock):
    """Base of Decoder and Vocoder: one network input with a length axis, one output."""

    Config: ClassVar[type[NetworkChunkConfig]] = NetworkChunkConfig
    config: NetworkChunkConfig

    def __init__(self, config: NetworkChunkConfig, env: BuildEnv, path: str = ""):
        super().__init__(config, env, path)
        self.network = env.network(config.network, type(self).__name__, f"{self.path}.network")
        spec = self.network.spec
        inputs = [t for t in spec.inputs if t.name != "mask"]
        if len(inputs) != 1 or len(spec.outputs) != 1:
            raise StackError(
                [
                    Problem(
                        f"networks.{config.network}",
                        f"{type(self).__name__} needs a network with one input (besides mask) and one output",
                    )
                ]
            )
        self._input = inputs[0].name
        self._scale = spec.outputs[0].length_scale
        if self._scale > 1 and self.produces == "mel":
            # A decoder whose network makes audio itself (a VITS flow and generator).
            self.produces = "audio"  # type: ignore[misc]
        rf = spec.receptive_field_frames
        if rf is None:
            raise StackError(
                [
                    Problem(
                        f"networks.{config.network}.receptive_field_frames",
                        "not declared: without a bounded receptive field the stream cannot equal a one-shot run",
                    )
                ]
            )
        self._context = config.context_frames if config.context_frames is not None else rf
        if self._context < rf:
            raise StackError(
                [
                    Problem(
                        f"{self.path}.context_frames",
                        f"{self._context} frames do not cover the receptive field of network {config.network!r} ({rf} frames)",
                    )
                ]
            )
        window = self.network.shapes.max_size
        if window is not None and window < 2 * self._context + 1:
            raise StackError(
                [
                    Problem(
                        f"{self.path}",
                        f"static window {window} cannot hold {self._context} frames of context on each side and a core frame",
                    )
                ]
            )

    @property
    def context(self) -> tuple[int, int]:
        return (self._context, self._context)

    @property
    def scale(self) -> int:
        return self._scale

    def process(self, chunk: Chunk) -> Chunk:
        import torch

        window = self.network.shapes.max_size
        if window is not None and chunk.frames.shape[0] > window:
            pieces = split_chunk(chunk, window, self._context, self._context)
            return Chunk(
                torch.cat([self.process(p).frames for p in pieces]),
                start=chunk.start * self._scale,
                is_last=chunk.is_last,
            )
        return self._core(chunk, self.network.run({self._input: chunk.frames}))

    def batch_key(self) -> Hashable | None:
        """The network (its identity): blocks of voices that ship the same network, loaded once,
        share its calls."""
        return id(self.network)

    def batches_with(self, chunk: Chunk, other: Chunk) -> bool:
        """Inputs of close lengths only (padding costs the shorter one), and of equal lengths
        for a network without a mask (padding would change its output)."""
        a, b = chunk.frames.shape[0], other.frames.shape[0]
        if not self.network.takes_mask:
            return a == b
        return max(a, b) <= MAX_PADDING * min(a, b)

    @classmethod
    def apply_batch(cls, items: list[tuple[Any, Chunk, tuple[int, int]]]) -> list[Chunk]:
        return apply_batch(items)

    def _core(self, chunk: Chunk, outputs: dict) -> Chunk:
        """The network's output for `chunk`'s frames, less its context: the output core."""
        out = outputs[self.network.spec.outputs[0].name]
        if out.dim() == 1:  # audio: (samples,) -> (samples, 1)
            out = out.unsqueeze(-1)
        s = self._scale
        core = out[chunk.left * s : out.shape[0] - chunk.right * s]
        return Chunk(core, start=chunk.start * s, is_last=chunk.is_last)


def apply_batch(items: list[tuple[NetworkChunkBlock, Chunk, tuple[int, int]]]) -> list[Chunk]:
    """`block.apply(chunk, keep)` for each item, with one network call for all of them.

    The items' blocks must share one network (the same block of one voice, or of voices that
    ship the same network). Chunks of different streams are padded to a common length; each
    layer masks the padding, so each result equals its own `apply` (tested). A chunk longer
    than a static window is done on its own, in pieces.
    """
    network = items[0][0].network
    if any(block.network is not network for block, _, _ in items):
        raise ValueError("apply_batch: the blocks do not share one network")
    window = network.shapes.max_size
    results: list[Chunk | None] = [None] * len(items)
    batched, widened = [], []
    for i, (block, chunk, keep) in enumerate(items):
        wide, kl, kr = block.widen(chunk, keep)
        if window is not None and wide.frames.shape[0] > window:
            results[i] = block.apply(chunk, keep)
        else:
            batched.append(i)
            widened.append((wide, kl, kr))
    if batched:
        outputs = network.run_batch(
            [
                {items[i][0]._input: wide.frames}
                for i, (wide, _, _) in zip(batched, widened, strict=True)
            ]
        )
        for i, (wide, kl, kr), out in zip(batched, widened, outputs, strict=True):
            block, chunk, _ = items[i]
            results[i] = block.narrowed(chunk, block._core(wide, out), kl, kr)
    return results  # type: ignore[return-value]
