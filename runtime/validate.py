"""`voicestack addon validate`: every problem of an addon, each with the key it concerns.

Checks, in order: addon.json against the format; each network file (safe to load, and its
inputs and outputs as declared); the front end and stack (types known, keys valid, each block's
inputs produced before it, receptive fields covered). Later checks need earlier ones to pass
only where they depend on them, so one run reports as much as it can. It lives with the
runtime because its last check builds the voice as a runtime would.
"""

from __future__ import annotations

from pathlib import Path

from voicestack.blocks.errors import ConfigError, Problem


def validate_addon(path: Path) -> list[Problem]:
    from voicestack.addons.archive import UnsafeArchiveError
    from voicestack.addons.loader import Addon, load_network, read_config
    from voicestack.placement.config import BlockPlacement
    from voicestack.runtime.voice import build_voice

    root = Path(path).resolve()
    try:
        config = read_config(root)
    except ConfigError as e:
        return e.problems
    problems: list[Problem] = []
    for name, spec in config.networks.items():
        try:
            load_network(root, name, spec, BlockPlacement(), f"networks.{name}")
        except UnsafeArchiveError as e:
            problems.append(Problem(f"networks.{name}.file", str(e)))
        except ConfigError as e:  # declared inputs or outputs the network does not have
            problems += e.problems
        except Exception as e:  # a corrupt file its backend cannot read
            problems.append(Problem(f"networks.{name}.file", f"cannot be loaded: {e}"))
    if problems:
        return problems
    try:
        build_voice(Addon(root, config))
    except ConfigError as e:
        problems += e.problems
    return problems
