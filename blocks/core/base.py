"""What every block shares: a typed config, the environment it is built in, and its path.

Blocks are pure and runtime-agnostic: they know tensors and chunks, not Ray. The registry builds
them from config; the runtime decides where they run.

The environment is a protocol (`BuildEnv`), with small protocols for what blocks read of an
addon and of its networks: blocks depend on what they use, not on addons/ or placement/. The
concrete environment, an addon's networks loaded where its placement puts each block type, is
`AddonBuildEnv` in addons/build_env.py, above blocks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict
from voicestack.blocks.errors import Problem

if TYPE_CHECKING:
    import torch


class BlockConfig(BaseModel):
    """Base of every block's `Config`: the node's keys other than `type` and its children.

    Unknown keys are errors, so a typo in an addon fails at load, naming the key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class AudioView(Protocol):
    """A voice's audio parameters (addon.json's `audio`), as blocks read them."""

    @property
    def sample_rate(self) -> int: ...
    @property
    def hop_length(self) -> int:
        """Samples per mel frame."""
        ...

    @property
    def n_mels(self) -> int: ...
    @property
    def n_fft(self) -> int: ...
    @property
    def win_length(self) -> int: ...
    @property
    def f_min_hz(self) -> float: ...
    @property
    def f_max_hz(self) -> float | None: ...


class TensorSpecView(Protocol):
    """One declared input or output of a network (addon.json's tensor declaration)."""

    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> Sequence[int | str]:
        """Its dims: an int is fixed; `batch`, `length` and `length*K` are named."""
        ...

    @property
    def noise(self) -> float | None:
        """For an input the host fills with seeded noise: its scale (None: a feature)."""
        ...

    @property
    def length_axis(self) -> int | None: ...
    @property
    def length_scale(self) -> int:
        """K of a `length*K` axis (1 without one)."""
        ...


class NetworkSpecView(Protocol):
    """A network's declaration in the addon: what blocks check it against."""

    @property
    def inputs(self) -> Sequence[TensorSpecView]: ...
    @property
    def outputs(self) -> Sequence[TensorSpecView]: ...
    @property
    def receptive_field_frames(self) -> int | None: ...


class ShapesView(Protocol):
    """The shape policy a network runs under, as far as blocks care."""

    @property
    def max_size(self) -> int | None:
        """The longest input one call takes along its length axis (None: any length)."""
        ...


class NetworkView(Protocol):
    """A network loaded for a block: called on unbatched tensors by name; the batch axis, the
    mask, padding and splitting are the network's business."""

    @property
    def spec(self) -> NetworkSpecView: ...
    @property
    def shapes(self) -> ShapesView: ...
    @property
    def max_batch(self) -> int:
        """How many items one call takes (1 for a network exported with a fixed batch of 1)."""
        ...

    @property
    def takes_mask(self) -> bool:
        """Whether it has a `mask` input, so that padded items of different lengths may share a
        call (a network block asks this before batching another stream's chunk with its own)."""
        ...

    def run(
        self, inputs: dict[str, torch.Tensor], boundaries: list[int] | None = None
    ) -> dict[str, torch.Tensor]:
        """One call on unbatched `inputs`; `boundaries` are where a too-long input may be cut."""
        ...

    def run_batch(self, items: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
        """One call on several unbatched inputs (chunks of different streams); each result
        equals its own `run`."""
        ...


class AddonView(Protocol):
    """What blocks read of the addon (the voice) they are built for."""

    @property
    def name(self) -> str: ...
    @property
    def symbols(self) -> Sequence[str]:
        """The voice's symbol table: index = symbol id; 0 is padding."""
        ...

    @property
    def audio(self) -> AudioView: ...
    def networks_with_role(self, role: str) -> list[str]:
        """The names of its networks declared with `role` (`encoder`, ...)."""
        ...


class BuildEnv(Protocol):
    """What a block may use while it is built: the addon's networks and audio parameters,
    each network loaded on the device and with the shape policy that the placement gives the
    block type asking for it. `addon` is None where blocks are built without a voice (a front
    end on its own); a block that needs one asks `require_addon`."""

    @property
    def addon(self) -> AddonView | None: ...
    def require_addon(self, path: str) -> AddonView:
        """The addon, or a StackError naming `path` where there is none."""
        ...

    def network(self, name: str, block_type: str, path: str) -> NetworkView:
        """The addon's network `name`, loaded on the device and with the shape policy that the
        placement gives `block_type`; errors name `path`."""
        ...


ChildArity = Literal["one", "many"]


class Block:
    """Common base of SequenceBlock and StreamableBlock. Not to be extended directly."""

    Config: ClassVar[type[BlockConfig]] = BlockConfig
    #: Keys of the node that hold nested blocks, built by the registry before this block.
    children: ClassVar[dict[str, ChildArity]] = {}

    def __init__(self, config: BlockConfig, env: BuildEnv, path: str = "", **children: Any):
        self.config = config
        self.env = env
        #: Where the node sits in the stack, e.g. `stack[0].streamable_block`: errors name it.
        self.path = path or type(self).__name__
        #: The `type` the node was built from (the registered name; for messages).
        self.type_name = type(self).__name__
        #: The config node it was built from (set by the registry), so a runtime can rebuild
        #: just this block in another process.
        self.node: dict[str, Any] = {"type": self.type_name}

    @property
    def placement_type(self) -> str:
        """The placement entry that places this block when it runs as one unit (a deployment):
        its own type, unless it runs networks built as other blocks (Encoders: `Encoder`)."""
        return self.type_name

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the features (sequence-level tensors) this block reads."""
        return ()

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the features this block adds."""
        return ()

    def missing_inputs(self, available: set[str]) -> list[Problem]:
        """A problem naming this block's path if a feature it reads is not among `available`
        (those the blocks before it produce)."""
        missing = [name for name in self.inputs if name not in available]
        if not missing:
            return []
        return [
            Problem(
                self.path,
                f"{self.type_name} needs feature(s) {', '.join(map(repr, missing))}, which no "
                f"earlier block produces (available: {', '.join(sorted(available)) or 'none'})",
            )
        ]

    def walk(self) -> Iterator[Block]:
        """This block and every block nested in it, depth first."""
        yield self

    def describe(self) -> dict[str, Any]:
        """The block as a JSON-able tree, for `addon inspect` and `GET /v1/voices`."""
        node: dict[str, Any] = {"type": self.type_name or type(self).__name__}
        node.update(self.config.model_dump(exclude_defaults=True))
        return node
