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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from voicestack.blocks.core.base import Block, BuildEnv
from voicestack.blocks.core.chunk import Chunk, with_context
from voicestack.blocks.core.container import SequenceBlockContainer
from voicestack.blocks.core.pipeline import StreamablePipeline
from voicestack.blocks.core.sequence import Features, SequenceBlock
from voicestack.blocks.core.stack import StreamableStack
from voicestack.blocks.core.streamable import ChunkwiseBlock, StreamableBlock
from voicestack.placement.config import Placement

if TYPE_CHECKING:
    from voicestack.addons.build_env import AddonBuildEnv
    from voicestack.addons.loader import Addon


@dataclass(frozen=True)
class Leaf:
    """A block that runs as one unit: one call in the local runtime, one deployment in Serve.

    Its `node` and `path` rebuild it in another process (`build`). `block` is the block itself
    in the process that compiled the plan; a plan read from data has none, and is not the less
    equal to the one it was written from."""

    type: str
    """Its block type, as the config names it."""
    name: str
    """Its name in the voice: its type, numbered from the second leaf of a type (`Gain-2`)."""
    path: str
    """Where its node sits in the stack (errors name it)."""
    node: dict[str, Any]
    """The config node it was built from (read only)."""
    placement_type: str
    """The placement entry that places it (Block.placement_type)."""
    produces: str | None
    """What a streamable leaf's chunks are (`mel`, `audio`, ...); None for a sequence leaf."""
    block: Block | None = field(default=None, compare=False, repr=False)

    def build(self, env: BuildEnv) -> Block:
        """This leaf's block, built anew in `env` (another process's, say)."""
        from voicestack.blocks import REGISTRY

        return REGISTRY.build(self.node, self.path, env)

    def built(self) -> Block:
        """The block, where it was built; a plan read from data builds its leaves first."""
        if self.block is None:
            raise RuntimeError(f"leaf {self.path!r} has no block here: build it (Leaf.build)")
        return self.block


@dataclass(frozen=True)
class ChunkStep:
    """A stateless step: `block.apply(chunk, keep)` on every chunk of its segment."""

    leaf: Leaf
    keep: tuple[int, int]
    """Input frames of context to pass on to the steps after this one."""

    @property
    def block(self) -> ChunkwiseBlock:
        block = self.leaf.built()
        assert isinstance(block, ChunkwiseBlock)  # compile_plan made it a step for being one
        return block


@dataclass(frozen=True)
class Segment:
    """A stateful head, then chunkwise steps.

    The head is a source (first segment) or a consumer of the previous segment's stream; its
    chunks are re-chunked to carry `need` frames of context, what the steps need in all.
    """

    head: Leaf
    need: tuple[int, int]
    steps: tuple[ChunkStep, ...]

    @property
    def head_block(self) -> StreamableBlock:
        block = self.head.built()
        assert isinstance(block, StreamableBlock)  # compile_plan made it a head for being one
        return block

    def built(self, env: BuildEnv) -> Segment:
        """This segment with every leaf's block built in `env` (a plan read from data)."""
        return Segment(
            replace(self.head, block=self.head.build(env)),
            self.need,
            tuple(ChunkStep(replace(s.leaf, block=s.leaf.build(env)), s.keep) for s in self.steps),
        )


@dataclass(frozen=True)
class Plan:
    """A voice compiled for running: what any runtime, in any process, needs to know of it.

    Made once, by `compile_plan`; crosses processes as `to_dict()` and comes back by
    `from_dict`. The Serve builders take its deployments from it, the composer its sentences'
    route and what a request may ask, each replica its own leaf."""

    name: str
    addon_path: str
    """The addon's folder: a process that builds a leaf loads the addon from it."""
    architecture: str
    language: str
    sample_rate: int
    hop_length: int
    n_mels: int
    placement: Placement
    """The voice's placement: the addon's, overridden by the deployment's."""
    frontend: dict[str, Any]
    """The front end's config node (the composer builds it)."""
    speakers: dict[str, int]
    """The speakers' ids by name (empty: one speaker)."""
    reads: frozenset[str]
    """The request keys (blocks/core/request.py) that some block of the voice reads."""
    times_symbols: bool
    """Whether the source knows each symbol's frames before it streams (word timestamps)."""
    reports_alignment: bool
    """Whether the source's chunks carry their alignment (word timestamps as they come)."""
    stack: list[dict[str, Any]]
    """The stack as `GET /v1/voices` shows it (Block.describe)."""
    sequence: tuple[Leaf, ...]
    segments: tuple[Segment, ...]

    def leaves(self) -> list[Leaf]:
        """Every leaf that runs, in order: each is one unit of placement (one actor)."""
        out = list(self.sequence)
        for segment in self.segments:
            out.append(segment.head)
            out += [step.leaf for step in segment.steps]
        return out

    def leaf(self, path: str) -> Leaf:
        """The leaf at `path` (a replica is told which of the voice's leaves it runs)."""
        for leaf in self.leaves():
            if leaf.path == path:
                return leaf
        raise KeyError(f"voice {self.name!r} has no leaf at {path!r}")

    @property
    def speaker_names(self) -> list[str]:
        """The speakers' names, in the order of their ids (empty: one speaker)."""
        return sorted(self.speakers, key=self.speakers.__getitem__)

    def env(self) -> AddonBuildEnv:
        """What a process needs to build this voice's blocks: its addon, its placement."""
        from voicestack.addons.build_env import AddonBuildEnv
        from voicestack.addons.loader import load_addon

        return AddonBuildEnv(load_addon(self.addon_path), self.placement)

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-able data, blocks left out (`from_dict` reads it back)."""
        return {
            "name": self.name,
            "addon_path": self.addon_path,
            "architecture": self.architecture,
            "language": self.language,
            "sample_rate": self.sample_rate,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            # Only the keys set: a reader validates it again, and defaults written out would
            # each count as set and hide the entry below them (a `default` device under a
            # block entry).
            "placement": self.placement.model_dump(mode="json", exclude_unset=True),
            "frontend": self.frontend,
            "speakers": dict(self.speakers),
            "reads": sorted(self.reads),
            "times_symbols": self.times_symbols,
            "reports_alignment": self.reports_alignment,
            "stack": self.stack,
            "sequence": [_leaf_data(leaf) for leaf in self.sequence],
            "segments": [
                {
                    "head": _leaf_data(s.head),
                    "need": list(s.need),
                    "steps": [{"leaf": _leaf_data(t.leaf), "keep": list(t.keep)} for t in s.steps],
                }
                for s in self.segments
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        """The plan `to_dict` wrote (its leaves without blocks). A missing key is a KeyError
        naming it."""
        d = _Reader(data, "plan")
        return cls(
            name=d["name"],
            addon_path=d["addon_path"],
            architecture=d["architecture"],
            language=d["language"],
            sample_rate=d["sample_rate"],
            hop_length=d["hop_length"],
            n_mels=d["n_mels"],
            placement=Placement.model_validate(d["placement"]),
            frontend=d["frontend"],
            speakers=dict(d["speakers"]),
            reads=frozenset(d["reads"]),
            times_symbols=d["times_symbols"],
            reports_alignment=d["reports_alignment"],
            stack=d["stack"],
            sequence=tuple(_leaf(x) for x in d.each("sequence")),
            segments=tuple(_segment_of(s) for s in d.each("segments")),
        )


class _Reader:
    """A mapping read by key, whose KeyError says where the key was missing."""

    def __init__(self, data: Mapping[str, Any], where: str):
        self.data, self.where = data, where

    def __getitem__(self, key: str) -> Any:
        if key not in self.data:
            raise KeyError(f"{self.where}: no {key!r}")
        return self.data[key]

    def each(self, key: str) -> list[_Reader]:
        return [_Reader(x, f"{self.where}.{key}[{i}]") for i, x in enumerate(self[key])]

    def at(self, key: str) -> _Reader:
        return _Reader(self[key], f"{self.where}.{key}")


def _leaf_data(leaf: Leaf) -> dict[str, Any]:
    return {
        "type": leaf.type,
        "name": leaf.name,
        "path": leaf.path,
        "node": leaf.node,
        "placement_type": leaf.placement_type,
        "produces": leaf.produces,
    }


def _leaf(d: _Reader) -> Leaf:
    return Leaf(d["type"], d["name"], d["path"], d["node"], d["placement_type"], d["produces"])


def _segment_of(d: _Reader) -> Segment:
    steps = tuple(ChunkStep(_leaf(s.at("leaf")), _pair(s["keep"])) for s in d.each("steps"))
    return Segment(_leaf(d.at("head")), _pair(d["need"]), steps)


def _pair(value: Sequence[int]) -> tuple[int, int]:
    left, right = value
    return (int(left), int(right))


def compile_plan(addon: Addon, placement: Placement, stack: StreamableStack) -> Plan:
    """Flatten a checked stack of `addon`'s, built under `placement`, into its plan."""
    from voicestack.blocks.core.request import REQUEST_KEYS

    sequence: list[SequenceBlock] = []
    chain: list[StreamableBlock] = []
    _flatten(stack, sequence, chain)
    groups: list[list[StreamableBlock]] = []
    for block in chain:
        if isinstance(block, ChunkwiseBlock) and groups:
            groups[-1].append(block)
        else:
            groups.append([block])
    leaf = _namer()
    segments = tuple(_segment(group, leaf) for group in groups)
    source = segments[0].head_block
    config = addon.config
    return Plan(
        name=addon.name,
        addon_path=str(addon.root),
        architecture=config.architecture,
        language=config.language,
        sample_rate=addon.audio.sample_rate,
        hop_length=addon.audio.hop_length,
        n_mels=addon.audio.n_mels,
        placement=placement,
        frontend=dict(config.frontend),
        speakers=dict(config.speakers),
        reads=frozenset(REQUEST_KEYS & {n for b in stack.walk() for n in b.inputs}),
        times_symbols=source.times_symbols,
        reports_alignment=source.reports_alignment,
        stack=stack.describe()["stack"],
        sequence=tuple(leaf(b) for b in sequence),
        segments=segments,
    )


def _namer() -> Callable[[Block], Leaf]:
    """Makes each block a Leaf named by its type, numbered from the second of a type, in the
    order it is called (the plan's order)."""
    seen: dict[str, int] = {}

    def leaf(block: Block) -> Leaf:
        seen[block.type_name] = n = seen.get(block.type_name, 0) + 1
        return Leaf(
            type=block.type_name,
            name=block.type_name if n == 1 else f"{block.type_name}-{n}",
            path=block.path,
            node=block.node,
            placement_type=block.placement_type,
            produces=block.produces if isinstance(block, StreamableBlock) else None,
            block=block,
        )

    return leaf


def _segment(group: list[StreamableBlock], leaf: Callable[[Block], Leaf]) -> Segment:
    head, *rest = group
    head_leaf = leaf(head)  # named before its steps: the plan's order
    need = (0, 0)
    steps: list[tuple[ChunkwiseBlock, tuple[int, int]]] = []
    for block in reversed(rest):
        assert isinstance(block, ChunkwiseBlock)
        keep = (math.ceil(need[0] / block.scale), math.ceil(need[1] / block.scale))
        steps.append((block, keep))
        left, right = block.context
        need = (left + keep[0], right + keep[1])
    return Segment(head_leaf, need, tuple(ChunkStep(leaf(b), keep) for b, keep in reversed(steps)))


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


def run_sequence(leaves: Sequence[Leaf], features: Features) -> dict[str, Any]:
    """Run sequence leaves in order; return the input features merged with all they made."""
    merged = dict(features)
    for leaf in leaves:
        block = leaf.built()
        assert isinstance(block, SequenceBlock)  # a sequence leaf for being one (compile_plan)
        merged.update(block(merged))
    return merged


def head_stream(
    segment: Segment, features: Features, upstream: Iterator[Chunk] | None
) -> Iterator[Chunk]:
    """The segment head's chunks, each carrying the context its steps need."""
    return with_context(segment.head_block.stream(features, upstream), *segment.need)


def stream_segments(
    segments: Sequence[Segment],
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
