"""The placement config: per block type (per voice, or as a default) its device, Ray resources
and shape policy.

An addon carries a default placement; a deployment file overrides it. Keys left unset in an
entry fall back to the entry below it: voice-and-block, then block, then default.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from voicestack.placement.shapes import DynamicShapes, ShapePolicy


class Autoscaling(BaseModel):
    """How many replicas a block's deployment may have, and how fast that changes.

    The keys are Ray Serve's `autoscaling_config` keys, so they read the same in a Serve config.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=1, ge=1)
    target_ongoing_requests: float = Field(default=2.0, gt=0)
    upscale_delay_s: float = Field(default=2.0, ge=0)
    downscale_delay_s: float = Field(default=60.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas {self.min_replicas} is above max_replicas {self.max_replicas}"
            )
        return self


class Batching(BaseModel):
    """Cross-request batching of a chunk block's calls (decoder, vocoder): a replica collects
    chunks for at most `wait_ms` or until `max_batch_size` wait, and runs them as one call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(default=1, ge=1, le=256, description="1: no batching")
    wait_ms: float = Field(default=2.0, ge=0, le=1000)


class Streams(BaseModel):
    """Admission at a voice's composer (the `Composer` entry): streams it plays at once per
    replica, requests that may wait for one of them and for how long; past that, 503 with
    Retry-After. Size `max_active` to what keeps every admitted stream real-time on the
    hardware (bench/serve_bench.py measures it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_active: int = Field(default=64, ge=1)
    max_waiting: int = Field(default=64, ge=0)
    max_wait_s: float = Field(default=30.0, gt=0)
    retry_after_s: int = Field(default=2, ge=1)


class BlockPlacement(BaseModel):
    """Where and how one block runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str = "cpu"
    # A scheduling share, not a limit: small, so that many voices fit on a laptop.
    num_cpus: float = Field(default=0.1, ge=0)
    num_gpus: float = Field(default=0, ge=0)
    resources: dict[str, float] = Field(default_factory=dict)
    shapes: ShapePolicy = Field(default_factory=DynamicShapes)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    batching: Batching = Field(default_factory=Batching)
    threads: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="chunk calls a replica runs at once (default: one per whole CPU it "
        "reserves, at least one)",
    )
    #: Only read for the `Composer` entry.
    streams: Streams = Field(default_factory=Streams)
    fuse: bool = Field(
        default=False,
        description="run this block in its voice's composer process, with no hop to it, "
        "where it is placed like the composer (same device, resources and replicas) and in no "
        "group; otherwise it keeps a deployment of its own",
    )
    group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="blocks of this type of every voice naming the same group share one "
        "deployment (one process per device; each distinct network loaded once)",
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        kind, _, index = device.partition(":")
        if (
            kind not in ("cpu", "cuda")
            or (index and not index.isdigit())
            or (kind == "cpu" and index)
        ):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        return device


class Placement(BaseModel):
    """Placement entries by block type, with per-voice overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: BlockPlacement = Field(default_factory=BlockPlacement)
    blocks: dict[str, BlockPlacement] = Field(default_factory=dict)
    voices: dict[str, dict[str, BlockPlacement]] = Field(default_factory=dict)

    def for_block(self, block_type: str, voice: str | None = None) -> BlockPlacement:
        """The placement of `block_type` in `voice`: most specific entry first, key by key."""
        layers = [self.default]
        if block_type in self.blocks:
            layers.append(self.blocks[block_type])
        if voice is not None and block_type in self.voices.get(voice, {}):
            layers.append(self.voices[voice][block_type])
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update({k: getattr(layer, k) for k in layer.model_fields_set})
        return BlockPlacement(**merged)

    def overridden_by(self, other: Placement) -> Placement:
        """This placement with `other`'s entries laid over it (a deployment over an addon)."""
        blocks = dict(self.blocks)
        for name, entry in other.blocks.items():
            blocks[name] = _layer(blocks.get(name), entry)
        voices = {v: dict(e) for v, e in self.voices.items()}
        for voice, entries in other.voices.items():
            for name, entry in entries.items():
                voices.setdefault(voice, {})[name] = _layer(voices.get(voice, {}).get(name), entry)
        return Placement(
            default=_layer(self.default, other.default)
            if other.default.model_fields_set
            else self.default,
            blocks=blocks,
            voices=voices,
        )


def _layer(below: BlockPlacement | None, above: BlockPlacement) -> BlockPlacement:
    if below is None:
        return above
    merged = {k: getattr(below, k) for k in below.model_fields_set}
    merged.update({k: getattr(above, k) for k in above.model_fields_set})
    return BlockPlacement(**merged)


def load_placement(path: str) -> Placement:
    """Read a placement file (YAML or JSON). Errors name the key."""
    import yaml
    from voicestack.blocks.errors import ConfigError, Problem

    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)  # YAML is a superset of JSON
        except yaml.YAMLError as e:
            raise ConfigError([Problem(path, f"not valid YAML/JSON: {e}")]) from e
    return parse_placement(data, source=path)


def parse_placement(data: Any, source: str = "placement") -> Placement:
    from pydantic import ValidationError
    from voicestack.blocks.errors import ConfigError, Problem, validation_problems

    try:
        return Placement.model_validate(data or {})
    except ValidationError as e:
        problems = validation_problems(e)
        raise ConfigError(
            [Problem(f"{source}: {p.key}" if p.key else source, p.message) for p in problems]
        ) from e
