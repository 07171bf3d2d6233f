"""Placement as Ray sees it: the `ray_actor_options` of each block, and whether the cluster can
ever run them.

The serve app builder turns each block's placement into `ray_actor_options` for its deployment,
as Ray's LLM serve builder does with its engine config. Before deploying, it checks every block's
options against the resources of the alive nodes, so that a block no node can host is reported by
voice and block at build time instead of a replica left pending forever.

Pure functions over plain dicts: only `cluster_nodes` touches Ray, and imports it when called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicestack.blocks.errors import ConfigError, Problem
from voicestack.placement.config import BlockPlacement

# Ray reports amounts in fixed point (1e-4); compare with room for float rounding.
_EPSILON = 1e-6


def actor_options(p: BlockPlacement, key: str = "placement") -> dict[str, Any]:
    """The `ray_actor_options` of a Serve deployment (or actor) placed by `p`.

    `key` names where the placement came from (e.g. "voice 'x': block Decoder") in the error
    raised when the placement is inconsistent: a CUDA device with no GPU reserved.
    """
    if p.device.startswith("cuda") and p.num_gpus == 0:
        raise ConfigError(
            [
                Problem(
                    key,
                    f"device {p.device!r} needs num_gpus > 0 (Ray gives the actor no GPU otherwise)",
                )
            ]
        )
    options: dict[str, Any] = {"num_cpus": p.num_cpus, "num_gpus": p.num_gpus}
    if p.resources:
        options["resources"] = dict(p.resources)
    return options


@dataclass(frozen=True)
class Requirement:
    """The actor options of one block of one voice."""

    voice: str
    block: str
    options: dict


def unsatisfiable(requirements: list[Requirement], nodes: list[dict[str, float]]) -> list[Problem]:
    """One problem for each requirement that no single node of `nodes` can ever satisfy.

    `nodes` are the total resources of each alive node as Ray reports them ("CPU", "GPU",
    "memory", custom names, "node:..." keys). Each requirement is checked alone, not summed with
    the others: replicas that do not fit at once queue, only what can never run is reported.
    """
    problems = []
    for req in requirements:
        needs = _needs(req.options)
        if any(_fits(needs, node) for node in nodes):
            continue
        key = f"voice {req.voice!r}: block {req.block}"
        problems.append(Problem(key, _why(needs, nodes)))
    return problems


def cluster_nodes() -> list[dict[str, float]]:
    """The total resources of each alive node of the connected Ray cluster."""
    import ray

    return [dict(n["Resources"]) for n in ray.nodes() if n["Alive"]]


def _needs(options: dict) -> dict[str, float]:
    """Ray resource names and amounts asked by `options`, zero amounts left out."""
    needs = {
        "CPU": float(options.get("num_cpus") or 0),
        "GPU": float(options.get("num_gpus") or 0),
    }
    for name, amount in (options.get("resources") or {}).items():
        needs[name] = needs.get(name, 0.0) + float(amount)
    return {name: amount for name, amount in needs.items() if amount > 0}


def _fits(needs: dict[str, float], node: dict[str, float]) -> bool:
    return all(node.get(name, 0.0) + _EPSILON >= amount for name, amount in needs.items())


def _why(needs: dict[str, float], nodes: list[dict[str, float]]) -> str:
    offered = sorted({name for node in nodes for name in node if not name.startswith("node:")})
    reasons = []
    for name, amount in needs.items():
        most = max((node.get(name, 0.0) for node in nodes), default=0.0)
        if not any(name in node for node in nodes):
            offers = ", ".join(offered) if offered else "no alive nodes"
            reasons.append(
                f"needs {{{name!r}: {_num(amount)}}} but no node offers {name!r} "
                f"(nodes offer: {offers})"
            )
        elif most + _EPSILON < amount:
            reasons.append(f"needs {name} {_num(amount)} but the largest node has {_num(most)}")
    if reasons:
        return "; ".join(reasons)
    # Each resource exists in enough amount somewhere, but never all on the same node.
    asked = ", ".join(f"{name} {_num(amount)}" for name, amount in needs.items())
    layout = "; ".join(
        "{" + ", ".join(f"{n}: {_num(node.get(n, 0.0))}" for n in needs) + "}" for node in nodes
    )
    return f"needs {asked} on one node but no node has them all (nodes offer: {layout})"


def _num(amount: float) -> str:
    return str(int(amount)) if float(amount).is_integer() else f"{amount:g}"
