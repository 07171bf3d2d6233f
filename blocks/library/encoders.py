"""Encoders: the sequence blocks that run an addon's encoder networks on a whole sentence.

`Encoder` runs one network. `Encoders` is a SequenceBlockContainer that creates one Encoder per
encoder network of the addon (text encoder, duration predictor, ...) and runs them in dependency
order; `CustomizedEncoders` has the same contract but runs the encoders that do not depend on
each other concurrently, as one unit. Swapping one for the other is a one-word config change.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from voicestack.blocks.core.base import BlockConfig, BuildEnv
from voicestack.blocks.core.container import SequenceBlockContainer
from voicestack.blocks.core.sequence import Features, SequenceBlock
from voicestack.blocks.errors import Problem, StackError


class Encoder(SequenceBlock):
    """Runs one encoder network: its declared inputs in, its declared outputs out."""

    class Config(BlockConfig):
        network: str

    config: Config

    def __init__(self, config: Config, env: BuildEnv, path: str = ""):
        super().__init__(config, env, path)
        self.network = env.network(config.network, "Encoder", f"{self.path}.network")

    @property
    def inputs(self) -> tuple[str, ...]:
        """The features it reads: the network's inputs but its mask and the noise it draws."""
        return tuple(
            t.name for t in self.network.spec.inputs if t.name != "mask" and t.noise is None
        )

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.network.spec.outputs)

    def __call__(self, features: Features) -> dict[str, Any]:
        starts = features.get("word_starts")
        boundaries = starts.tolist() if starts is not None else None
        inputs = {name: features[name] for name in self.inputs}
        inputs.update(self._noise(features, inputs))
        return self.network.run(inputs, boundaries)

    def _noise(self, features: Features, inputs: dict[str, Any]) -> dict[str, Any]:
        """The network's noise inputs for this sentence (see blocks/library/noise.py), sized
        along the length of its other inputs."""
        from voicestack.blocks.library.noise import standard_normal

        noisy = [t for t in self.network.spec.inputs if t.noise is not None]
        if not noisy:
            return {}
        length = next(
            inputs[t.name].shape[t.length_axis - 1]
            for t in self.network.spec.inputs
            if t.name in inputs and t.length_axis is not None
        )
        out = {}
        for t in noisy:
            shape = [length if isinstance(d, str) else d for d in t.shape[1:]]
            purpose = f"{self.config.network}.{t.name}"
            out[t.name] = standard_normal(features, purpose, shape) * t.noise
        return out


class Encoders(SequenceBlockContainer):
    """Every encoder network of the addon, each as an Encoder, run in dependency order."""

    children = {}
    composite = False  # its Encoders are made here, from the addon's networks: one leaf

    class Config(BlockConfig):
        networks: list[str] | None = None
        """Which encoder networks to run (default: every network whose role is 'encoder')."""

    def __init__(self, config: Config, env: BuildEnv, path: str = ""):
        addon = env.require_addon(path)
        names = (
            config.networks if config.networks is not None else addon.networks_with_role("encoder")
        )
        if not names:
            raise StackError([Problem(path, "the addon has no network with role 'encoder'")])
        blocks = [
            Encoder(Encoder.Config(network=name), env, f"{path}.networks[{name}]") for name in names
        ]
        #: The same blocks as `blocks`, known to be Encoders.
        self.encoders = _dependency_order(blocks, path)
        super().__init__(config, env, path, blocks=list(self.encoders))

    @property
    def placement_type(self) -> str:
        """Its networks are placed as Encoder blocks' (an `Encoder` entry places them)."""
        return "Encoder"

    def describe(self) -> dict[str, Any]:
        node = super().describe()
        node["blocks"] = [{"type": "Encoder", "network": b.config.network} for b in self.encoders]
        return node


class CustomizedEncoders(Encoders):
    """Encoders whose independent networks run at the same time, as one unit.

    Encoders that need only what is already available form a level; a level's encoders run in a
    thread pool (torch releases the GIL inside operators), levels run in order.
    """

    def __init__(self, config: Encoders.Config, env: BuildEnv, path: str = ""):
        super().__init__(config, env, path)
        self._levels = _levels(self.encoders, path)
        self._pool = ThreadPoolExecutor(max_workers=max(len(level) for level in self._levels))

    def __call__(self, features: Features) -> dict[str, Any]:
        current = dict(features)
        produced: dict[str, Any] = {}
        for level in self._levels:
            for out in self._pool.map(lambda b, seen=dict(current): b(seen), level):
                current.update(out)
                produced.update(out)
        return produced


def _levels(blocks: Sequence[Encoder], path: str = "") -> list[list[Encoder]]:
    """Group blocks so each group needs only features from outside or from earlier groups."""
    made_inside = {n for b in blocks for n in b.outputs}
    levels: list[list[Encoder]] = []
    produced: set[str] = set()
    remaining = list(blocks)
    while remaining:
        ready = [
            b for b in remaining if all(n in produced or n not in made_inside for n in b.inputs)
        ]
        if not ready:
            names = [b.config.network for b in remaining]
            raise StackError(
                [Problem(path, f"encoder networks depend on each other in a cycle: {names}")]
            )
        levels.append(ready)
        produced |= {n for b in ready for n in b.outputs}
        remaining = [b for b in remaining if b not in ready]
    return levels


def _dependency_order(blocks: Sequence[Encoder], path: str) -> list[Encoder]:
    return [b for level in _levels(blocks, path) for b in level]
