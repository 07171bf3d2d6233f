"""A voice's Serve deployments, named and optioned in one place, from its plan.

The application builders (app.py), the config writer (serve_config.py) and the composer (which
calls the deployments by key) all take them from here, so a deployment has one name and one set
of options wherever it is made or written down. Pure functions: no Ray here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from voicestack.serve_app.names import group_app_name

if TYPE_CHECKING:
    from voicestack.placement.config import BlockPlacement
    from voicestack.runtime.plan import Leaf, Plan

#: The composer's deployment name and placement entry.
COMPOSER = "Composer"

#: What a leaf deployment runs: sequence leaves, the stream's source, its chunk steps
#: (serve_app/leaf.py has a server for each).
Kind = Literal["sequence", "source", "chunk"]

#: Requests a replica takes at once, by kind. Leaf replicas take whatever is sent to them and
#: queue it themselves (their thread pool, their batcher): a handle whose replicas are all at
#: this limit retries with a growing backoff, which left the CPU idle with many streams (figures
#: in docs/benchmarks.md, "where a second of audio's CPU goes"). How many streams a voice takes
#: is decided once, at its composer (`streams` in the placement: admission).
MAX_ONGOING = {"sequence": 1024, "source": 1024, "chunk": 1024}
#: How often Serve's controller asks each replica whether it lives. A killed replica is noticed
#: (and another started) only at its next check, so this bounds how long a voice whose composer
#: died refuses new requests. Serve's default is 10 s; a check is one small actor call.
HEALTH_CHECK_PERIOD_S = 2.0
#: Composer requests beyond its streams: describe and the like, which must not wait for a slot.
COMPOSER_SPARE = 16


@dataclass(frozen=True)
class LeafDeployment:
    """One leaf of a voice as a Serve deployment."""

    leaf: Leaf
    kind: Kind
    group: str | None
    """The placement group whose application holds it, shared with other voices; or None."""
    options: dict[str, Any]
    """Its Serve deployment options, `name` among them (read only)."""
    fused: bool = False
    """Whether it runs in the voice's composer process instead (its placement's `fuse`, and
    placed like the composer): then no deployment is made for it and `options` go unused."""

    @property
    def key(self) -> str:
        """The composer's name for it: the deployment's name; `Type@group` for a grouped leaf,
        whose deployment is in another application."""
        return self.options["name"] if self.group is None else f"{self.leaf.type}@{self.group}"

    @property
    def app(self) -> str | None:
        """The application of a grouped leaf's deployment (None: the voice's own)."""
        return None if self.group is None else group_app_name(self.group, self.leaf.type)


def leaf_deployments(plan: Plan) -> list[LeafDeployment]:
    """The leaf deployments of a voice: its sequence leaves, the source and the first segment's
    steps (later segments run in the composer). A leaf's deployment is named by the leaf's name
    in the voice; a grouped one by its type, in its group's application (whose options are its
    first voice's)."""
    first = plan.segments[0]
    kinds: list[tuple[Leaf, Kind]] = [(leaf, "sequence") for leaf in plan.sequence]
    kinds.append((first.head, "source"))
    kinds += [(step.leaf, "chunk") for step in first.steps]
    composer = plan.placement.for_block(COMPOSER, voice=plan.name)
    out = []
    for leaf, kind in kinds:
        placement = plan.placement.for_block(leaf.placement_type, voice=plan.name)
        name = leaf.name if placement.group is None else leaf.type
        where = f"voice {plan.name!r}: block {leaf.type}"
        options = deployment_options(placement, name, where, kind)
        fused = placement.fuse and placement.group is None and placed_alike(placement, composer)
        out.append(LeafDeployment(leaf, kind, placement.group, options, fused))
    return out


def placed_alike(block: BlockPlacement, composer: BlockPlacement) -> bool:
    """Whether a block may run in its composer's process: the same device, the same resources
    reserved and the same replicas. Fusing stops where any differs (a GPU decoder of a
    CPU composer keeps its own deployment, on its own node)."""
    keys = ("device", "num_cpus", "num_gpus", "resources", "autoscaling")
    return all(getattr(block, k) == getattr(composer, k) for k in keys)


def composer_options(plan: Plan) -> dict[str, Any]:
    """The Serve options of the voice's composer."""
    placement = plan.placement.for_block(COMPOSER, voice=plan.name)
    return deployment_options(placement, COMPOSER, f"voice {plan.name!r}", "composer")


def deployment_options(
    placement: BlockPlacement, name: str, where: str, kind: Kind | Literal["composer"]
) -> dict[str, Any]:
    """Serve deployment options from a block's placement. `where` names the block in errors."""
    from voicestack.placement.ray_options import actor_options

    options: dict[str, Any] = {
        "name": name,
        "ray_actor_options": actor_options(placement, where),
        # A rolling update lets a replica finish what it is streaming before it stops.
        "graceful_shutdown_timeout_s": 120,
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
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
