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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicestack.blocks.errors import ConfigError, Problem
from voicestack.serve_app.deployments import (
    COMPOSER,
    HEALTH_CHECK_PERIOD_S,
    composer_options,
    leaf_deployments,
)

if TYPE_CHECKING:
    from voicestack.runtime.voice import Voice

logger = logging.getLogger("voicestack.serve")

#: Serve options of the composer and the ingress: light async work on the host.
LIGHT = {"num_cpus": 0.1}


def resolve_addon(addon: str) -> Path:
    """An addon folder, or the name of a voice on the addon search path."""
    from voicestack.addons.search_path import find_voice

    path = Path(addon)
    if (path / "addon.json").is_file():
        return path.resolve()
    return find_voice(addon).path


def load_voice(addon: str, placement: Any = None) -> Voice:
    """Build and check a voice in this process (networks load here once, as validation)."""
    from voicestack.addons.loader import load_addon
    from voicestack.placement.config import load_placement, parse_placement
    from voicestack.runtime.voice import build_voice

    if isinstance(placement, str):
        placement = load_placement(placement)
    elif isinstance(placement, dict):
        placement = parse_placement(placement)
    return build_voice(load_addon(resolve_addon(addon)), placement)


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
    from voicestack.serve_app.leaf import server_for

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
    plan = load_voice(args["addon"], args.get("placement")).plan
    data = plan.to_dict()
    bound: dict[str, Any] = {}
    requirements = []
    for d in leaf_deployments(plan):
        if d.fused:  # the composer runs it in its own process
            continue
        requirements.append((d.leaf.type, d.options["ray_actor_options"]))
        if d.app is not None:  # the group's application deploys it
            bound[d.key] = (d.app, d.options["name"])
        else:
            leaves = [(data, d.leaf.path)]
            bound[d.key] = serve.deployment(server_for(d.kind), **d.options).bind(leaves)
    composer = composer_options(plan)
    requirements.append((COMPOSER, composer["ray_actor_options"]))
    if args.get("check_resources", True):
        check_resources(plan.name, requirements)
    return serve.deployment(Composer, **composer).bind(data, bound)


def group_app(args: dict[str, Any]):
    """Serve application builder for a placement group: one deployment holding the same block
    type of several voices (e.g. one universal vocoder).

    args: `group`, `block` (the block type), `voices`: a list of {addon, placement}.
    """
    from ray import serve
    from voicestack.serve_app.leaf import server_for

    group, block_type = args["group"], args["block"]
    leaves: list[tuple[dict[str, Any], str]] = []
    kind, options = None, None
    requirements = []
    for entry in args["voices"]:
        plan = load_voice(entry["addon"], entry.get("placement")).plan
        for d in leaf_deployments(plan):
            if d.group != group or d.leaf.type != block_type:
                continue
            options = options or d.options  # the first voice's
            requirements.append((block_type, options["ray_actor_options"]))
            kind = d.kind
            leaves.append((plan.to_dict(), d.leaf.path))
    if not leaves:
        raise ConfigError(
            [Problem(f"group {group!r}", f"no voice places a {block_type} block in this group")]
        )
    assert kind is not None and options is not None  # set with the first leaf
    if args.get("check_resources", True):
        check_resources(f"group {group}", requirements)
    return serve.deployment(server_for(kind), **options).bind(leaves)


def ingress_app(args: dict[str, Any] | None = None):
    """Serve application builder for the HTTP API (it finds voices by application name)."""
    from ray import serve
    from voicestack.serve_app.ingress import Ingress

    return serve.deployment(
        Ingress,
        name="Ingress",
        ray_actor_options=dict(LIGHT),
        max_ongoing_requests=512,
        health_check_period_s=HEALTH_CHECK_PERIOD_S,
    ).bind()
