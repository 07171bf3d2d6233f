"""Load an addon's ONNX networks without running code from them or reading outside the addon.

An ONNX model is a protobuf message: parsing it runs no code. What a model can still do:

* name **external data** files for its tensors (`location`, `offset`, `length`): an absolute
  path, a `..`, or a symlink would make the loader read any file on the machine into weights;
* use operators of a **custom domain**, which onnxruntime can only run from a custom-op shared
  library (native code) that a session registers; we never register one, but a model that needs
  one must be refused at load, naming the operator, not fail on its first request;
* be **large** (a 2 GiB protobuf, external files of any size): bounded here before anything
  is read into memory.

So the model file is read once, inspected (every graph, subgraph and local function), its
external data read from checked files inside the addon folder, and the same bytes, data
embedded, are handed to onnxruntime. Anything not allowed is refused with the
`UnsafeArchiveError` the torch archives use, naming the file, the place and the reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicestack.addons.archive import UnsafeArchiveError

if TYPE_CHECKING:
    import onnx

#: The standard operator domains (ONNX, ONNX-ML). Anything else needs a custom-op library.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
#: Protobuf's own limit on one message; a model file larger than this is not ONNX.
MAX_MODEL_BYTES = 2**31 - 1
#: All external data of one model together.
MAX_EXTERNAL_BYTES = 8 * 2**30
#: Nesting of subgraphs (If, Loop, Scan bodies); real models nest a few levels.
MAX_GRAPH_DEPTH = 32


def load_onnx_model(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bytes:
    """Read `path` (inside the addon folder `root`) once, inspect it, and return the model's
    bytes with any external data embedded: what onnxruntime is given, and nothing else."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    name = os.fspath(path)
    root_dir = Path(root).resolve()
    real = _inside(Path(name), root_dir, name, None)
    size = real.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise UnsafeArchiveError(name, None, f"{size} bytes: larger than any ONNX model can be")
    data = real.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # protobuf's DecodeError and friends: not a model
        raise UnsafeArchiveError(name, None, f"not an ONNX model ({type(e).__name__})") from None
    inspect_onnx(model, name)

    total = 0
    for tensor in _tensors(model):
        if not uses_external_data(tensor):
            continue
        info = ExternalDataInfo(tensor)
        where = f"tensor {tensor.name!r}"
        location = info.location or ""
        if not location or os.path.isabs(location) or ".." in Path(location).parts:
            raise UnsafeArchiveError(
                name, where, f"external data {location!r} must be a relative path inside the addon"
            )
        file = _inside(root_dir / location, root_dir, name, where)
        available = file.stat().st_size
        offset = int(info.offset or 0)
        length = int(info.length) if info.length is not None else available - offset
        if offset < 0 or length < 0 or offset + length > available:
            raise UnsafeArchiveError(
                name,
                where,
                f"external data {location!r}: bytes {offset}..{offset + length} are outside "
                f"the file ({available} bytes)",
            )
        total += length
        if total > MAX_EXTERNAL_BYTES:
            raise UnsafeArchiveError(
                name, where, f"external data above the limit of {MAX_EXTERNAL_BYTES} bytes"
            )
        with open(file, "rb") as f:
            f.seek(offset)
            tensor.raw_data = f.read(length)
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
    return model.SerializeToString() if total else data


def inspect_onnx(model: onnx.ModelProto, name: str) -> None:
    """Raise UnsafeArchiveError unless every operator of `model` (main graph, subgraphs, local
    functions) is from a standard domain or one of the model's own functions, and every opset
    it imports is standard."""
    for opset in model.opset_import:
        if opset.domain not in STANDARD_DOMAINS and opset.domain not in _function_domains(model):
            raise UnsafeArchiveError(
                name, f"opset_import {opset.domain!r}", _custom_domain(opset.domain)
            )
    functions = {(f.domain, f.name) for f in model.functions}
    for function in model.functions:
        _check_nodes(
            function.node, name, f"function {function.domain}.{function.name}", 0, functions
        )
    _check_nodes(model.graph.node, name, "graph", 0, functions)


def _check_nodes(nodes: Any, name: str, where: str, depth: int, functions: set) -> None:
    import onnx

    if depth > MAX_GRAPH_DEPTH:
        raise UnsafeArchiveError(name, where, f"subgraphs nested deeper than {MAX_GRAPH_DEPTH}")
    for node in nodes:
        here = f"{where}: node {node.name or node.op_type!r}"
        if node.domain not in STANDARD_DOMAINS and (node.domain, node.op_type) not in functions:
            raise UnsafeArchiveError(
                name, here, f"operator {node.domain}.{node.op_type}: " + _custom_domain(node.domain)
            )
        for attribute in node.attribute:
            graphs = list(attribute.graphs)
            if attribute.type == onnx.AttributeProto.GRAPH:
                graphs.append(attribute.g)
            for sub in graphs:
                _check_nodes(sub.node, name, f"{here}.{attribute.name}", depth + 1, functions)


def _custom_domain(domain: str) -> str:
    return (
        f"domain {domain!r} is not a standard ONNX domain; its operators would need a "
        "custom-op library (native code), which voicestack never loads"
    )


def _function_domains(model: Any) -> set[str]:
    return {f.domain for f in model.functions}


def _tensors(model: Any) -> list[Any]:
    """Every tensor that may hold data, in every graph, subgraph and function: initializers,
    sparse initializers (values and indices) and constant attributes."""
    import onnx

    found: list[Any] = []

    def sparse(s: Any) -> None:
        found.extend([s.values, s.indices])

    def nodes(node_list: Any) -> None:
        for node in node_list:
            for a in node.attribute:
                if a.HasField("t"):
                    found.append(a.t)
                found.extend(a.tensors)
                if a.HasField("sparse_tensor"):
                    sparse(a.sparse_tensor)
                for s in a.sparse_tensors:
                    sparse(s)
                if a.type == onnx.AttributeProto.GRAPH:
                    graph(a.g)
                for g in a.graphs:
                    graph(g)

    def graph(g: Any) -> None:
        found.extend(g.initializer)
        for s in g.sparse_initializer:
            sparse(s)
        nodes(g.node)

    graph(model.graph)
    for function in model.functions:
        nodes(function.node)
    return found


def _inside(path: Path, root: Path, name: str, where: str | None) -> Path:
    """`path` resolved (symlinks followed), refused unless it is a file inside `root`."""
    real = path.resolve()
    if not real.is_relative_to(root):
        raise UnsafeArchiveError(name, where, f"{str(path)!r} resolves outside the addon folder")
    if not real.is_file():
        raise UnsafeArchiveError(name, where, f"{str(path)!r} is not a file")
    return real
