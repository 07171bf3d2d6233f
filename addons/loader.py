"""Reading an addon: `addon.json` validated into typed config, networks loaded on demand.

Nothing in an addon is executed: the config is JSON, block types are looked up in the registry
by name, and archives are inspected before torch reads them (archive.py).
"""

from __future__ import annotations

import hashlib
import json
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from voicestack.addons.format import ADDON_FILE, AddonConfig, AudioConfig, NetworkSpec
from voicestack.blocks.errors import ConfigError, Problem, validation_problems

if TYPE_CHECKING:
    from voicestack.addons.network import Network
    from voicestack.placement.config import BlockPlacement, Placement


#: Networks loaded in this process, by archive digest, declaration and placement: voices that
#: ship the same network (a universal vocoder) share one copy of its weights in a process.
_SHARED: weakref.WeakValueDictionary[tuple[str, str, str], Network] = weakref.WeakValueDictionary()


class AddonError(ConfigError):
    """An addon cannot be loaded. Every problem names the key (or file) it concerns."""


class Addon:
    """A validated addon folder. Networks load when a block first asks for one."""

    def __init__(self, root: Path, config: AddonConfig):
        self.root = root
        self.config = config
        self._networks: dict[tuple[str, str], Network] = {}

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def symbols(self) -> list[str]:
        return self.config.symbols

    @property
    def audio(self) -> AudioConfig:
        return self.config.audio

    @property
    def placement(self) -> Placement:
        return self.config.placement

    def networks_with_role(self, role: str) -> list[str]:
        return [name for name, spec in self.config.networks.items() if spec.role == role]

    def network(self, name: str, placement: BlockPlacement, path: str = "") -> Network:
        """The network `name` on `placement`'s device and shape policy (cached per placement)."""

        spec = self.config.networks.get(name)
        if spec is None:
            raise AddonError(
                [
                    Problem(
                        path or "networks",
                        f"no network {name!r} in the addon (has: {', '.join(self.config.networks)})",
                    )
                ]
            )
        key = (name, placement.model_dump_json())
        if key not in self._networks:
            file = self.root / spec.file
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            shared_key = (digest, spec.model_dump_json(), key[1])
            network = _SHARED.get(shared_key)
            if network is None:
                where = f"{path or 'placement'}: network {name!r}"
                network = load_network(self.root, name, spec, placement, where)
                _SHARED[shared_key] = network
            self._networks[key] = network
        return self._networks[key]

    def __repr__(self) -> str:
        return f"Addon({self.name!r}, {str(self.root)!r})"


def load_network(
    root: Path, name: str, spec: NetworkSpec, placement: BlockPlacement, where: str
) -> Network:
    """Inspect the network's file, load it with its backend, and check it against its
    declaration and the placement; every problem raised as an AddonError naming the key."""
    file = root / spec.file
    if spec.backend == "onnx":
        from voicestack.addons.onnx_network import OnnxNetwork

        return OnnxNetwork.load(root, file, name, spec, placement, where)
    from voicestack.addons.archive import load_exported_program
    from voicestack.addons.network import ExportedNetwork, check_signature, check_static_sizes

    program = load_exported_program(file)
    problems = check_signature(program, spec, f"networks.{name}")
    problems += check_static_sizes(program, spec, placement.shapes, where)
    if problems:
        raise AddonError(problems)
    return ExportedNetwork(name, spec, program, placement)


def read_config(root: Path) -> AddonConfig:
    """Parse and validate `addon.json`; raise AddonError listing every problem."""
    file = root / ADDON_FILE
    if not file.is_file():
        raise AddonError([Problem(str(file), "no addon.json: not an addon folder")])
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AddonError([Problem(ADDON_FILE, f"not valid JSON: {e}")]) from e
    try:
        config = AddonConfig.model_validate(data)
    except ValidationError as e:
        raise AddonError(validation_problems(e)) from e
    missing = [
        Problem(f"networks.{name}.file", f"file {spec.file!r} is not in the addon folder")
        for name, spec in config.networks.items()
        if not (root / spec.file).is_file()
    ]
    if missing:
        raise AddonError(missing)
    return config


def load_addon(root: str | Path) -> Addon:
    """Read and validate an addon folder (its networks load lazily, safely)."""
    root = Path(root).resolve()
    return Addon(root, read_config(root))
