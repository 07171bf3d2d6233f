"""The registry that builds a tree of blocks from an addon's `stack` by `type` name.

An addon is data: a stack names block types, never import paths. A type is looked up in, in
order, an explicit table of built-in blocks ("module:Class", each imported lazily, so importing
this module does not import torch), the blocks registered in code with `register`, and the blocks
that installed packages declare in the `voicestack.blocks` entry-point group. A name that is none
of these is an error listing the known names; nothing else is ever imported.

This module holds the machinery and the composites' table. The process-wide registry, whose
table names every built-in block, is `voicestack.blocks.REGISTRY` (blocks/__init__.py): core
never names the front ends or the concrete blocks.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from voicestack.blocks.errors import ConfigError, Problem, StackError, validation_problems

if TYPE_CHECKING:
    from importlib.metadata import EntryPoints

    from voicestack.blocks.core.base import Block, BuildEnv

ENTRY_POINT_GROUP = "voicestack.blocks"

#: The composites, the only blocks core itself knows by name: every registry has them (a voice's
#: stack is built as a StreamableStack). The package's registry, which also knows the front ends
#: and the concrete blocks, is assembled above core (blocks/__init__.py).
COMPOSITE_BLOCKS: Mapping[str, str] = {
    "StreamablePipeline": "voicestack.blocks.core.pipeline:StreamablePipeline",
    "SequenceBlockContainer": "voicestack.blocks.core.container:SequenceBlockContainer",
    "StreamableStack": "voicestack.blocks.core.stack:StreamableStack",
}

_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _check_block_class(name: str, cls: Any) -> type[Block]:
    from voicestack.blocks.core.sequence import SequenceBlock
    from voicestack.blocks.core.streamable import StreamableBlock

    if not (isinstance(cls, type) and issubclass(cls, (SequenceBlock, StreamableBlock))):
        raise TypeError(
            f"block {name!r}: {cls!r} must be a class extending SequenceBlock or StreamableBlock"
        )
    return cls


class BlockRegistry:
    """Maps block type names to classes and builds block trees from config nodes.

    `builtins` is its table of built-in types, "module:Class" by name (default: the composites
    alone; `voicestack.blocks.BUILTIN_BLOCKS` names every built-in block)."""

    def __init__(self, builtins: Mapping[str, str] = COMPOSITE_BLOCKS):
        self._builtins = dict(builtins)
        self._registered: dict[str, type[Block]] = {}
        self._loaded: dict[str, type[Block]] = {}

    def register(self, name: str, cls: type[Block]) -> type[Block]:
        """Register a block class under `name`; it is checked now to extend an abstraction."""
        if not _TYPE_NAME.match(name):
            raise ValueError(f"block type name {name!r} must be an identifier")
        if name in self._builtins:
            raise ValueError(f"block type {name!r} is built in and cannot be replaced")
        self._registered[name] = _check_block_class(name, cls)
        return cls

    def known(self) -> list[str]:
        """Every name a stack may use (entry points are listed without importing them)."""
        names = set(self._builtins) | set(self._registered)
        names |= {ep.name for ep in _entry_points() if _TYPE_NAME.match(ep.name)}
        return sorted(names)

    def resolve(self, name: str) -> type[Block] | None:
        """The class for `name`, or None if no built-in, registered or installed block has it."""
        if not isinstance(name, str) or not _TYPE_NAME.match(name):
            return None
        if name in self._loaded:
            return self._loaded[name]
        if name in self._builtins:
            module_name, _, attr = self._builtins[name].partition(":")
            cls = getattr(importlib.import_module(module_name), attr)
        elif name in self._registered:
            cls = self._registered[name]
        else:
            found = _entry_points(name=name)
            if not found:
                return None
            # The user installed this package and named it in the entry-point group: loading it
            # is loading their code, as intended. An addon cannot make this happen by itself.
            ep = next(iter(found))
            cls = _check_block_class(f"{name} (entry point {ep.value})", ep.load())
        self._loaded[name] = cls
        return cls

    def build(self, node: Any, path: str, env: BuildEnv) -> Block:
        """Build one node and its children; raise StackError with every problem found."""
        problems: list[Problem] = []
        block = self._build(node, path, env, problems)
        if problems or block is None:
            raise StackError(problems or [Problem(path, "could not be built")])
        return block

    def _build(self, node: Any, path: str, env: BuildEnv, problems: list[Problem]) -> Block | None:
        from pydantic import ValidationError

        if not isinstance(node, Mapping):
            problems.append(
                Problem(path, f"expected a block (an object with a 'type'), got {_kind(node)}")
            )
            return None
        if "type" not in node:
            problems.append(Problem(path, "missing required key 'type'"))
            return None
        type_name = node["type"]
        cls = self.resolve(type_name)
        if cls is None:
            problems.append(
                Problem(
                    path, f"unknown block type {type_name!r} (known: {', '.join(self.known())})"
                )
            )
            return None

        raw = {k: v for k, v in node.items() if k != "type"}
        children: dict[str, Any] = {}
        failed = False
        for key, arity in cls.children.items():
            child_path = f"{path}.{key}"
            if key not in raw:
                problems.append(Problem(child_path, f"{type_name} needs key {key!r}"))
                failed = True
                continue
            value = raw.pop(key)
            if arity == "one":
                if isinstance(value, list):
                    problems.append(
                        Problem(
                            child_path,
                            f"{type_name} takes exactly one block here, got a list of {len(value)}",
                        )
                    )
                    failed = True
                    continue
                children[key] = self._build(value, child_path, env, problems)
            else:
                if not isinstance(value, list) or not value:
                    problems.append(
                        Problem(
                            child_path, f"expected a non-empty list of blocks, got {_kind(value)}"
                        )
                    )
                    failed = True
                    continue
                children[key] = [
                    self._build(v, f"{child_path}[{i}]", env, problems) for i, v in enumerate(value)
                ]
            if children[key] is None or (isinstance(children[key], list) and None in children[key]):
                failed = True

        try:
            config = cls.Config.model_validate(raw)
        except ValidationError as e:
            problems.extend(validation_problems(e, path))
            return None
        if failed:
            return None
        try:
            block = cls(config, env, path=path, **children)
        except ConfigError as e:  # includes StackError, and AddonError for a missing network
            problems.extend(e.problems)
            return None
        block.type_name = type_name
        block.node = dict(node)
        return block


def _entry_points(name: str | None = None) -> EntryPoints:
    """The installed packages' blocks, or those named `name` (read on use: importing this
    module stays cheap, and the package's `__init__` imports it whenever any of
    `voicestack.blocks` is imported)."""
    from importlib.metadata import entry_points

    if name is None:
        return entry_points(group=ENTRY_POINT_GROUP)
    return entry_points(group=ENTRY_POINT_GROUP, name=name)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return f"{type(value).__name__} {value!r}"[:80]
