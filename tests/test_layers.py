"""Imports run one way: blocks <- placement, addons <- runtime <- serve_app, cli.

Every module of the lower layers is read with `ast` (not imported), and every import in it is
checked: at module level, inside functions, and under `TYPE_CHECKING` alike. Inside blocks/,
core/ imports neither the text front end (text/) nor the concrete blocks (library/), nor the
package's `__init__`, which assembles the registry of all of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The installed name's first part after `voicestack.` -> its layer. A module may import its
#: own layer and those below it.
LAYERS = {"blocks": 0, "placement": 1, "addons": 1, "runtime": 2, "serve_app": 3, "cli": 3}

#: The folders whose modules are checked (serve_app and cli are the top: nothing is above them).
CHECKED = ["blocks", "placement", "addons", "runtime"]


def modules(folder: str) -> list[tuple[str, Path]]:
    """(installed module name, file) of every .py under a top-level folder."""
    out = []
    for file in sorted((ROOT / folder).rglob("*.py")):
        parts = list(file.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(["voicestack", *parts]), file))
    return out


def imported(module: str, file: Path) -> list[str]:
    """Every voicestack module `file` imports, anywhere in it."""
    return imports_in(module, file.read_text(encoding="utf-8"), file.name == "__init__.py")


def imports_in(module: str, source: str, is_package: bool = False) -> list[str]:
    """Every voicestack module that `source` (module `module`'s) imports, anywhere in it.
    `from pkg import name` counts as importing `pkg.name` where that is a module of the
    repository, else `pkg` itself."""
    found = []
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing module's package
                package = module.split(".")
                if not is_package:
                    package.pop()
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.append(name if is_module(name) else base)
    return [name for name in found if name == "voicestack" or name.startswith("voicestack.")]


def is_module(name: str) -> bool:
    parts = name.split(".")[1:]
    if not parts:
        return False
    path = ROOT.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def offence(importer: str, target: str) -> str | None:
    """Why `importer` may not import `target`, or None where it may."""
    own, other = importer.split(".")[1], target.partition(".")[2].partition(".")[0]
    if other in LAYERS and LAYERS[other] > LAYERS[own]:
        return f"{own} (layer {LAYERS[own]}) imports {other} (layer {LAYERS[other]})"
    in_core = importer == "voicestack.blocks.core" or importer.startswith("voicestack.blocks.core.")
    if in_core:
        allowed = ("voicestack.blocks.core", "voicestack.blocks.errors")
        if not any(target == a or target.startswith(a + ".") for a in allowed):
            return "blocks/core imports voicestack beyond core/ and blocks/errors.py"
    return None


def test_no_module_imports_a_higher_layer() -> None:
    offenders = []
    for folder in CHECKED:
        for module, file in modules(folder):
            for target in imported(module, file):
                why = offence(module, target)
                if why:
                    offenders.append(f"{file.relative_to(ROOT)}: {target} ({why})")
    assert not offenders, "imports against the layers:\n" + "\n".join(sorted(set(offenders)))


def test_the_checker_sees_imports_anywhere() -> None:
    """The walk finds a function's import and one under TYPE_CHECKING, and judges them."""
    code = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from voicestack.addons.loader import Addon\n"
        "def f():\n"
        "    import voicestack.runtime.plan\n"
        "    from voicestack.blocks import REGISTRY\n"
    )
    found = imports_in("voicestack.blocks.core.probe", code)
    assert sorted(found) == [
        "voicestack.addons.loader",
        "voicestack.blocks",
        "voicestack.runtime.plan",
    ]
    assert all(offence("voicestack.blocks.core.probe", t) for t in found)
    relative = imports_in("voicestack.blocks.core.probe", "from ..text import frontend\n")
    assert relative == ["voicestack.blocks.text.frontend"]
    assert offence("voicestack.blocks.core.stack", "voicestack.blocks.text.frontend")
    assert offence("voicestack.blocks.core.stack", "voicestack.blocks.core.chunk") is None
    assert offence("voicestack.runtime.plan", "voicestack.addons.loader") is None
    assert offence("voicestack.addons.loader", "voicestack.serve_app.app")
    assert offence("voicestack.placement.config", "voicestack.blocks.errors") is None


def test_core_names_no_block_outside_core_in_its_registry_table() -> None:
    """core's registry table (the composites) names core's own modules only; the front ends and
    the concrete blocks are added above core (blocks/__init__.py)."""
    from voicestack.blocks import BUILTIN_BLOCKS
    from voicestack.blocks.core.registry import COMPOSITE_BLOCKS

    assert all(v.startswith("voicestack.blocks.core.") for v in COMPOSITE_BLOCKS.values())
    assert dict(COMPOSITE_BLOCKS).items() <= dict(BUILTIN_BLOCKS).items()
