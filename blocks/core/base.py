"""What every block shares: a typed config, the environment it is built in, and its path.

Blocks are pure and runtime-agnostic: they know tensors and chunks, not Ray. The registry builds
them from config; the runtime decides where they run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from voicestack.addons.loader import Addon
    from voicestack.addons.network import Network
    from voicestack.placement.config import BlockPlacement, Placement


class BlockConfig(BaseModel):
    """Base of every block's `Config`: the node's keys other than `type` and its children.

    Unknown keys are errors, so a typo in an addon fails at load, naming the key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class BuildEnv:
    """What a block may use while it is built: the addon's networks and audio parameters, and
    the placement that says which device and shape policy each block type gets.
    """

    def __init__(self, addon: Addon | None = None, placement: Placement | None = None):
        from voicestack.placement.config import Placement

        self.addon = addon
        self.placement = placement or (addon.placement if addon is not None else Placement())

    def require_addon(self, path: str) -> Addon:
        if self.addon is None:
            from voicestack.blocks.errors import Problem, StackError

            raise StackError([Problem(path, "this block needs an addon's networks to be built")])
        return self.addon

    def placement_for(self, block_type: str) -> BlockPlacement:
        voice = self.addon.name if self.addon is not None else None
        return self.placement.for_block(block_type, voice=voice)

    def network(self, name: str, block_type: str, path: str) -> Network:
        """The addon's network `name`, loaded on the device and with the shape policy that the
        placement gives `block_type`."""
        addon = self.require_addon(path)
        return addon.network(name, self.placement_for(block_type), path=path)


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

    def walk(self) -> Iterator[Block]:
        """This block and every block nested in it, depth first."""
        yield self

    def describe(self) -> dict[str, Any]:
        """The block as a JSON-able tree, for `addon inspect` and `GET /v1/voices`."""
        node: dict[str, Any] = {"type": self.type_name or type(self).__name__}
        node.update(self.config.model_dump(exclude_defaults=True))
        return node
