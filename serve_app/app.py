"""Builders that turn addons and a placement into Ray Serve applications.

The servers are plain classes (leaf.py, composer.py, ingress.py); the Serve decorator is applied
here, late, with options computed from the placement by pure functions, as Ray's own LLM serving
layer does. One application per voice (its composer and one deployment per leaf block), one per
placement group (a block type shared by several voices, e.g. a universal vocoder), and one HTTP
ingress that finds the voices by their application names. Adding a voice is adding an
application: the others, and the streams they serve, are not touched.

Serve config files name these builders as import paths:
`voicestack.serve_app.app:voice_app`, `:group_app` and `:ingress_app`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from voicestack.blocks.errors import ConfigError, Problem
from voicestack.serve_app.names import group_app_name

logger = logging.getLogger("voicestack.serve")

COMPOSER = "Composer"

#: Serve options of the composer and the ingress: light async work on the host.
LIGHT = {"num_cpus": 0.1}


def resolve_addon(addon: str) -> Path:
    """An addon folder, or the name of a voice on the addon search path."""
    from voicestack.addons.search_path import find_voice

    path = Path(addon)
    if (path / "addon.json").is_file():
        return path.resolve()
    return find_voice(addon).path


def load_voice(addon: str, placement: Any = None):
    """Build and check a voice in this process (networks load here once, as validation)."""
    from voicestack.addons.loader import load_addon
    from voicestack.placement.config import load_placement, parse_placement
    from voicestack.runtime.voice import build_voice

    if isinstance(placement, str):
        placement = load_placement(placement)
    elif isinstance(placement, dict):
        placement = parse_placement(placement)
    return build_voice(load_addon(resolve_addon(addon)), placement)


def leaf_keys(plan) -> dict[int, str]:
    """A deployment name per leaf of the plan: its type, numbered when a type repeats."""
    seen: dict[str, int] = {}
    keys = {}
    for leaf in plan.leaves():
        seen[leaf.type_name] = seen.get(leaf.type_name, 0) + 1
        n = seen[leaf.type_name]
        keys[id(leaf)] = leaf.type_name if n == 1 else f"{leaf.type_name}-{n}"
    return keys


def voice_spec(voice) -> dict[str, Any]:
    """The voice's plan as plain data: what the composer needs, and the deployments to make."""
    from voicestack.blocks.streamable import StreamableBlock

    plan = voice.plan
    keys = leaf_keys(plan)
    placement = voice.env.placement

    def leaf(block) -> dict[str, Any]:
        bp = placement.for_block(block.placement_type, voice=voice.name)
        produces = block.produces if isinstance(block, StreamableBlock) else None
        return {
            "key": keys[id(block)] if bp.group is None else f"{block.type_name}@{bp.group}",
            "type": block.type_name,
            "placement_type": block.placement_type,
            "group": bp.group,
            "produces": produces,
            "node": block.node,
            "path": block.path,
        }

    segments = []
    for segment in plan.segments:
        segments.append(
            {
                "head": leaf(segment.head),
                "need": list(segment.need),
                "steps": [{**leaf(s.block), "keep": list(s.keep)} for s in segment.steps],
            }
        )
    spec = {
        "name": voice.name,
        "addon_path": str(voice.addon.root),
        "architecture": voice.addon.config.architecture,
        "language": voice.addon.config.language,
        "sample_rate": voice.sample_rate,
        "hop_length": voice.addon.audio.hop_length,
        "n_mels": voice.addon.audio.n_mels,
        # Only the keys set: a replica re-reads it, and defaults written out would each count
        # as set and hide the entry below them (a `default` device under a block entry).
        "placement": placement.model_dump(mode="json", exclude_unset=True),
        "frontend": voice.addon.config.frontend,
        # What a request may ask of this voice (blocks/request.py): its speakers by name, and
        # the request keys its blocks read (`speed` where durations can change).
        "speakers": dict(voice.addon.config.speakers),
        "reads": sorted(voice.reads),
        # Whether the source knows each symbol's frames: word timestamps.
        "timeline": plan.segments[0].head.times_symbols,
        # Or whether its chunks carry the alignment (an attention decoder): word timestamps too.
        "aligned": plan.segments[0].head.reports_alignment,
        "stack": voice.describe()["stack"],
        "sequence_leaves": [leaf(b) for b in plan.sequence],
        "segments": segments,
    }
    return spec


def deployments_of(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The leaf deployments of a voice: sequence leaves, the source, and the first segment's
    steps (later segments run in the composer). Grouped ones are listed with their group."""
    first = spec["segments"][0]
    out = [{**leaf, "kind": "sequence"} for leaf in spec["sequence_leaves"]]
    out.append({**first["head"], "kind": "source"})
    out += [{**s, "kind": "chunk"} for s in first["steps"]]
    return out


#: Requests a replica takes at once, by kind. Leaf replicas take whatever is sent to them and
#: queue it themselves (their thread pool, their batcher): a handle whose replicas are all at
#: this limit retries with a growing backoff, which left the CPU idle with many streams (figures
#: in docs/benchmarks.md, "where a second of audio's CPU goes"). How many streams a voice takes
#: is decided once, at its composer (`streams` in the placement: admission).
MAX_ONGOING = {"sequence": 1024, "source": 1024, "chunk": 1024}
#: Composer requests beyond its streams: describe and the like, which must not wait for a slot.
COMPOSER_SPARE = 16


def deployment_options(placement, key: str, where: str, kind: str) -> dict[str, Any]:
    """Serve deployment options from a block's placement (pure: unit-tested without Ray)."""
    from voicestack.placement.ray_options import actor_options

    options: dict[str, Any] = {
        "name": key,
        "ray_actor_options": actor_options(placement, where),
        # A rolling update lets a replica finish what it is streaming before it stops.
        "graceful_shutdown_timeout_s": 120,
        # Serve logs every call by default: a line per chunk per block, which costs CPU and
        # buries real errors (those are still logged). The ingress keeps its per-request log.
        "logging_config": {"enable_access_log": False},
    }
    if kind == "composer":  # every admitted or waiting stream, and room for short calls
        streams = placement.streams
        options["max_ongoing_requests"] = streams.max_active + streams.max_waiting + COMPOSER_SPARE
    else:
        options["max_ongoing_requests"] = MAX_ONGOING[kind]
    scaling = placement.autoscaling
    if scaling.min_replicas == scaling.max_replicas:
        options["num_replicas"] = scaling.min_replicas
    else:
        options["autoscaling_config"] = scaling.model_dump()
    return options


def _server(kind: str):
    from voicestack.serve_app.leaf import ChunkServer, SequenceServer, SourceServer

    return {"sequence": SequenceServer, "source": SourceServer, "chunk": ChunkServer}[kind]


def check_resources(voice_name: str, requirements: list[tuple[str, dict]]) -> None:
    """Fail now, naming the block, the voice and the resource, if no node of the running
    cluster could ever host one of these deployments' replicas."""
    import ray
    from voicestack.placement.ray_options import Requirement, cluster_nodes, unsatisfiable

    if not ray.is_initialized():
        return
    problems = unsatisfiable(
        [Requirement(voice_name, block, options) for block, options in requirements],
        cluster_nodes(),
    )
    if problems:
        raise ConfigError(problems)


def voice_app(args: dict[str, Any]):
    """Serve application builder for one voice.

    args: `addon` (a folder or a voice name on the search path), `placement` (a file or a
    mapping laid over the addon's; optional), `check_resources` (default true).
    """
    from ray import serve
    from voicestack.serve_app.composer import Composer

    args = dict(args or {})
    unknown = set(args) - {"addon", "placement", "check_resources"}
    if unknown or "addon" not in args:
        raise ConfigError(
            [
                Problem(
                    "args", f"voice_app takes addon, placement, check_resources; got {sorted(args)}"
                )
            ]
        )
    voice = load_voice(args["addon"], args.get("placement"))
    spec = voice_spec(voice)
    placement = voice.env.placement
    bound: dict[str, Any] = {}
    requirements = []
    for leaf in deployments_of(spec):
        bp = placement.for_block(leaf["placement_type"], voice=voice.name)
        where = f"voice {voice.name!r}: block {leaf['type']}"
        options = deployment_options(bp, leaf["key"].partition("@")[0], where, leaf["kind"])
        requirements.append((leaf["type"], options["ray_actor_options"]))
        if leaf["group"] is not None:
            bound[leaf["key"]] = (group_app_name(leaf["group"], leaf["type"]), leaf["type"])
            continue
        leaves = [asdict(_leaf_spec(spec, leaf))]
        bound[leaf["key"]] = serve.deployment(_server(leaf["kind"]), **options).bind(leaves)
    composer_options = deployment_options(
        placement.for_block(COMPOSER, voice=voice.name),
        COMPOSER,
        f"voice {voice.name!r}",
        "composer",
    )
    requirements.append((COMPOSER, composer_options["ray_actor_options"]))
    if args.get("check_resources", True):
        check_resources(voice.name, requirements)
    return serve.deployment(Composer, **composer_options).bind(spec, bound)


def _leaf_spec(spec: dict[str, Any], leaf: dict[str, Any]):
    from voicestack.serve_app.leaf import LeafSpec

    return LeafSpec(spec["name"], spec["addon_path"], spec["placement"], leaf["node"], leaf["path"])


def group_app(args: dict[str, Any]):
    """Serve application builder for a placement group: one deployment holding the same block
    type of several voices (e.g. one universal vocoder).

    args: `group`, `block` (the block type), `voices`: a list of {addon, placement}.
    """
    from ray import serve

    group, block_type = args["group"], args["block"]
    leaves, kind, options = [], None, None
    requirements = []
    for entry in args["voices"]:
        voice = load_voice(entry["addon"], entry.get("placement"))
        spec = voice_spec(voice)
        for leaf in deployments_of(spec):
            if leaf["group"] != group or leaf["type"] != block_type:
                continue
            bp = voice.env.placement.for_block(leaf["placement_type"], voice=voice.name)
            options = options or deployment_options(
                bp, block_type, f"group {group!r}", leaf["kind"]
            )
            requirements.append((block_type, options["ray_actor_options"]))
            kind = leaf["kind"]
            leaves.append(asdict(_leaf_spec(spec, leaf)))
    if not leaves:
        raise ConfigError(
            [Problem(f"group {group!r}", f"no voice places a {block_type} block in this group")]
        )
    assert kind is not None and options is not None  # set with the first leaf
    if args.get("check_resources", True):
        check_resources(f"group {group}", requirements)
    return serve.deployment(_server(kind), **options).bind(leaves)


def ingress_app(args: dict[str, Any] | None = None):
    """Serve application builder for the HTTP API (it finds voices by application name)."""
    from ray import serve
    from voicestack.serve_app.ingress import Ingress

    return serve.deployment(
        Ingress, name="Ingress", ray_actor_options=dict(LIGHT), max_ongoing_requests=512
    ).bind()
