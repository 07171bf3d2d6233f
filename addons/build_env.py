"""The environment a voice's blocks are built in: its addon's networks, each loaded on the
device and with the shape policy that the placement gives the block type asking for it.

Blocks see it through the `BuildEnv` protocol (blocks/core/base.py); this is the one concrete
environment, used wherever a voice's blocks are built (runtime/voice.py, runtime/plan.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicestack.blocks.errors import Problem, StackError
from voicestack.placement.config import Placement

if TYPE_CHECKING:
    from voicestack.addons.loader import Addon
    from voicestack.addons.network import Network
    from voicestack.placement.config import BlockPlacement


class AddonBuildEnv:
    """An addon and a placement (default: the addon's own), as blocks use them while they are
    built. Without an addon, only blocks that need none can be built (a front end on its own).
    """

    def __init__(self, addon: Addon | None = None, placement: Placement | None = None):
        self.addon = addon
        self.placement = placement or (addon.placement if addon is not None else Placement())

    def require_addon(self, path: str) -> Addon:
        if self.addon is None:
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
