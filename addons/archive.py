"""Load the networks an addon ships (torch.export `.pt2` archives) without running code from them.

An addon is untrusted input, and `torch.export.load` (torch 2.13) is not safe on untrusted
input. Reading its source shows these ways for an archive to run code:

* payloads flagged `use_pickle` in the weights or constants configs are read with
  `torch.load(..., weights_only=False)`; `custom_obj_*` constants go through TorchScript's
  unpickler and `opaque_obj_*` constants through `pickle.loads`;
* `data/sample_inputs/<model>.pt` is tried with `weights_only=True` and then falls back to
  `weights_only=False`;
* legacy files (`data/weights/<model>.pt`, `data/constants/<model>.pt`, a top-level `version`
  archive) are unpickled the same way;
* `data/aotinductor/...` makes torch dlopen compiled shared objects (native code);
* `models/<model>.json` is trusted as code in several places: node targets and operator
  arguments are resolved by walking attributes from `torch`, `_operator` and `math`;
  symbolic shape expressions are parsed with `sympy.sympify`, which calls `eval`
  (code runs inside `torch.export.load`); `guards_code` strings are compiled with `exec`
  when `ExportedProgram.module()` is called; and pytree specs may name an `__enum__`
  whose module `importlib.import_module` imports.

So an archive is checked against an allowlist of exactly what `torch.export.save` writes for
one plain `nn.Module` named "model" before `torch.export.load` sees it, and it is then loaded
from the same bytes (no time-of-check/time-of-use gap). Anything the allowlist does not name is
refused with an `UnsafeArchiveError` naming the archive, the entry and the reason. The checks
fail closed: an archive that makes a check itself fail is refused too.

Importing this module does not import torch; the checks that need torch import it lazily.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import io
import json
import os
import re
import types
import typing
import zipfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["UnsafeArchiveError", "inspect_archive", "load_exported_program"]

# --- the entries torch.export.save writes for one model named "model" -----------------------
# Mirrors torch/export/pt2_archive/constants.py (a test checks they still agree).
MODEL_NAME = "model"
ARCHIVE_FORMAT = "archive_format"
ARCHIVE_VERSION = "archive_version"
MODEL_JSON = f"models/{MODEL_NAME}.json"
WEIGHTS_CONFIG = f"data/weights/{MODEL_NAME}_weights_config.json"
CONSTANTS_CONFIG = f"data/constants/{MODEL_NAME}_constants_config.json"
SAMPLE_INPUTS = f"data/sample_inputs/{MODEL_NAME}.pt"
WEIGHTS_DIR = "data/weights/"
CONSTANTS_DIR = "data/constants/"
WEIGHT_PREFIX = "weight_"
TENSOR_CONSTANT_PREFIX = "tensor_"

REQUIRED_ENTRIES = frozenset(
    {
        ARCHIVE_FORMAT,
        ARCHIVE_VERSION,
        ".data/version",
        MODEL_JSON,
        WEIGHTS_CONFIG,
        CONSTANTS_CONFIG,
        SAMPLE_INPUTS,
    }
)
# Written by torch's zip writer; never interpreted as code.
OPTIONAL_ENTRIES = frozenset({"byteorder", ".data/serialization_id"})
# Raw tensor bytes (never pickles), described by the configs' tensor_meta.
_PAYLOAD_ENTRY = re.compile(r"data/weights/weight_[0-9]+|data/constants/tensor_[0-9]+")

# Entries a real archive may have that we refuse, and why (for a clearer message than "unknown").
_REFUSED_PREFIXES = (
    ("data/aotinductor/", "AOTInductor compiled code (torch would load a native shared object)"),
    ("data/executorch/", "ExecuTorch payload (not a plain exported program)"),
    ("data/mtia", "MTIA payload (not a plain exported program)"),
    ("xl_model_weights/", "externally managed weights (not a plain exported program)"),
    ("extra/", "extra file (addons ship data beside the archive, not inside it)"),
    ("data/constants/custom_obj_", "custom-object constant (torch unpickles it with TorchScript)"),
    ("data/constants/opaque_obj_", "opaque-object constant (torch unpickles it with pickle.loads)"),
    ("models/", "second model (an archive holds exactly one, named 'model')"),
)
_LEGACY_ENTRIES = {
    "version": "legacy archive format (torch unpickles its files)",
    f"data/weights/{MODEL_NAME}.pt": "legacy weights file (torch unpickles it)",
    f"data/constants/{MODEL_NAME}.pt": "legacy constants file (torch unpickles it)",
}

# --- what models/model.json may reference ---------------------------------------------------
# The symbolic-shape helpers torch serializes by Python name: exactly the serializer's _SYM_OPS
# (torch/_export/serde/serialize.py; a test checks they still agree). Every other call target
# must be an OpOverload in the aten or prims namespace. `_operator` and `math` as a whole are NOT
# allowed: e.g. attrgetter/methodcaller/call would chain to arbitrary Python.
SYM_OP_TARGETS = frozenset(
    {
        f"_operator.{name}"
        for name in (
            "eq",
            "ne",
            "le",
            "ge",
            "lt",
            "gt",
            "neg",
            "pos",
            "mul",
            "add",
            "sub",
            "floordiv",
            "mod",
            "pow",
            "truediv",
            "and_",
            "or_",
            "lshift",
            "rshift",
        )
    }
    | {"math.trunc"}
    | {f"torch.sym_{name}" for name in ("not", "int", "float", "ite", "max", "min")}
    | {"torch._sym_sqrt"}  # torch.sym_sqrt.__name__ is "_sym_sqrt"
)
OP_NAMESPACES = ("aten", "prims")
_OP_TARGET = re.compile(r"torch\.ops\.([a-z]+)\.([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)")

# Node and value names become Python identifiers in the code FX generates.
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Parameter/buffer/constant paths become attribute paths on the GraphModule ("" is the root).
_FQN = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*")
_SYMBOL = re.compile(r"(s|u|zf|zuf)[0-9]+")  # torch's shape-symbol prefixes (SymT)
_FLOAT_TEXT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?|[-+]?(inf|nan)")

# Names a symbolic expression may use. sympify evaluates the string with sympy's namespace
# plus Python's builtins (eval, __import__, ...), so only these harmless constructors pass.
_SYMPY_CALLS = frozenset(
    {
        "Symbol",
        "Integer",
        "Rational",
        "Float",
        "Add",
        "Mul",
        "Pow",
        "Max",
        "Min",
        "Abs",
        "Mod",
        "floor",
        "ceiling",
        "sqrt",
        "Eq",
        "Ne",
        "Lt",
        "Le",
        "Gt",
        "Ge",
        "Equality",
        "Unequality",
        "StrictLessThan",
        "LessThan",
        "StrictGreaterThan",
        "GreaterThan",
        "And",
        "Or",
        "Not",
        "Piecewise",
        "ExprCondPair",
        "Infinity",
        "NegativeInfinity",
        "NaN",
        "Zero",
        "One",
        "NegativeOne",
        "Half",
        "IntInfinity",
        "NegativeIntInfinity",
        "BooleanTrue",
        "BooleanFalse",
        # torch.utils._sympy.functions, as listed in the deserializer's sympy_functions
        "FloorDiv",
        "ModularIndexing",
        "Where",
        "PythonMod",
        "CleanDiv",
        "CeilToInt",
        "FloorToInt",
        "CeilDiv",
        "LShift",
        "RShift",
        "PowByNatural",
        "FloatPow",
        "FloatTrueDiv",
        "IntTrueDiv",
        "IsNonOverlappingAndDenseIndicator",
        "TruncToFloat",
        "TruncToInt",
        "RoundToInt",
        "RoundDecimal",
        "ToFloat",
        "Identity",
    }
)
_SYMPY_OPAQUE_FN = re.compile(r"(OpaqueUnaryFn|BitwiseFn)_[a-z_]+")
_SYMPY_CONSTANTS = frozenset({"oo", "zoo", "nan", "true", "false", "True", "False", "int_oo"})
_SYMBOL_ASSUMPTIONS = frozenset(
    {
        "positive",
        "negative",
        "nonnegative",
        "nonpositive",
        "integer",
        "real",
        "finite",
        "infinite",
        "zero",
        "nonzero",
        "rational",
        "even",
        "odd",
        "extended_real",
    }
)
_MAX_EXPR_CHARS = 10_000

# Guards are exec'd as Python by ExportedProgram.module(); they may only compare input sizes.
_GUARD_METHODS = frozenset({"size", "stride", "storage_offset", "dim", "numel"})
_GUARD_FUNCTIONS = frozenset({"max", "min", "abs"})
_GUARD_MATH = frozenset({"floor", "ceil", "trunc", "sqrt", "isnan", "inf"})

# Pytree containers a forward() signature may use; anything else is looked up by name.
_TREESPEC_SEQUENCES = frozenset({"builtins.tuple", "builtins.list"})
_TREESPEC_MAPPINGS = frozenset({"builtins.dict", "collections.OrderedDict"})

_NODE_METADATA_KEYS = frozenset(
    {"stack_trace", "nn_module_stack", "source_fn_stack", "torch_fn", "custom", "from_node"}
)
_DEVICE_TYPES = frozenset({"cpu", "cuda", "mps", "meta"})
_VERIFIERS = frozenset({"", "ATEN", "TRAINING"})
# Graph inputs that are strings are spliced into the guard code torch generates and execs.
_GRAPH_INPUT_KINDS = frozenset(
    {"as_tensor", "as_sym_int", "as_int", "as_float", "as_bool", "as_none"}
)
_FLOAT_WORDS = frozenset({"Infinity", "-Infinity", "NaN"})


class UnsafeArchiveError(ValueError):
    """An archive is refused: it is not (only) what torch.export.save writes for a plain module.

    `archive` is the file, `entry` the offending entry inside it (None when the file as a whole is
    wrong) and `reason` why. A ValueError so callers that validate input can treat it as such.
    """

    def __init__(self, archive: str, entry: str | None, reason: str) -> None:
        self.archive = archive
        self.entry = entry
        self.reason = reason
        where = f"{archive}: entry {entry!r}" if entry is not None else archive
        super().__init__(f"unsafe archive {where}: {reason}")


class _Refusal(Exception):
    """Raised deep inside a check; turned into UnsafeArchiveError once the entry is known."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)


def inspect_archive(data: bytes, name: str) -> None:
    """Raise UnsafeArchiveError unless `data` is a torch.export archive torch can load safely.

    Nothing is unpickled except the sample inputs, and those only by torch's restricted
    `weights_only=True` unpickler. `name` is used in error messages only. Structural checks run
    before torch is imported, so a plain pickle is refused without torch ever seeing it.
    """
    entries = _check_zip_structure(data, name)
    try:
        _check_contents(data, name, entries)
    except UnsafeArchiveError:
        raise
    except Exception as e:  # fail closed: what we cannot check, torch does not get to load
        raise UnsafeArchiveError(
            name, None, f"could not be checked ({type(e).__name__}: {e})"
        ) from None


def load_exported_program(path: str | os.PathLike[str]) -> torch.export.ExportedProgram:
    """Read `path` once, inspect those bytes, and load the same bytes with torch.export.load.

    Reading into memory first means the file cannot change between the check and the load.
    """
    name = os.fspath(path)
    with open(name, "rb") as file:
        data = file.read()
    inspect_archive(data, name)

    import torch

    program = torch.export.load(io.BytesIO(data))
    if not isinstance(program, torch.export.ExportedProgram):  # pragma: no cover - torch contract
        raise UnsafeArchiveError(name, None, "torch did not load an exported program")
    return program


# --- the zip container ------------------------------------------------------------------------


def _check_zip_structure(data: bytes, name: str) -> dict[str, zipfile.ZipInfo]:
    """The entries of the archive (relative to its root folder), all of them allowlisted."""
    # A zip must start with a local file header: data prepended to a zip (say a pickle) is
    # tolerated by Python's zipfile but is not something torch.export.save writes.
    if not data.startswith(b"PK\x03\x04"):
        raise UnsafeArchiveError(
            name, None, "not a torch.export archive (not a zip file); plain pickles are refused"
        )
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
        raise UnsafeArchiveError(
            name,
            None,
            f"not a torch.export archive (not a zip file: {e}); plain pickles are refused",
        ) from None
    if zf.comment:
        # A comment can hide a second end-of-directory record that another zip reader would use.
        raise UnsafeArchiveError(name, None, "zip comment present (torch.export.save writes none)")
    if not infos:
        raise UnsafeArchiveError(name, None, "empty zip file")

    root = infos[0].filename.split("/", 1)[0]
    entries: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    for info in infos:
        full = info.filename
        # Python's zipfile cuts names at NUL and rewrites separators; torch's reader does not.
        if info.orig_filename != full or not full.isascii() or not full.isprintable():
            raise UnsafeArchiveError(
                name, repr(info.orig_filename), "entry name is not plain ASCII"
            )
        parts = full.split("/")
        if full.startswith("/") or "\\" in full or any(p in ("", ".", "..") for p in parts):
            raise UnsafeArchiveError(name, full, "absolute path or path traversal in entry name")
        if len(parts) < 2:
            legacy = full == "version" or full.startswith("serialized_")
            reason = (
                "legacy archive format (torch unpickles its files)"
                if legacy
                else "top-level entry (torch.export.save puts every entry under one root folder)"
            )
            raise UnsafeArchiveError(name, full, reason)
        if parts[0] != root:
            raise UnsafeArchiveError(
                name, full, f"entry outside the archive root folder {root!r} (torch requires one)"
            )
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", root):
            raise UnsafeArchiveError(name, full, "archive root folder has an odd name")
        # torch's reader looks names up case-insensitively, so "Foo" and "foo" are the same entry
        # to it and which one it reads is up to the zip library.
        if full.casefold() in seen:
            raise UnsafeArchiveError(name, full, "duplicate entry name")
        seen.add(full.casefold())
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(name, full, "encrypted entry")
        if info.compress_type != zipfile.ZIP_STORED:
            raise UnsafeArchiveError(
                name, full, "compressed entry (torch.export.save stores entries uncompressed)"
            )
        relative = full[len(root) + 1 :]
        _check_entry_name(name, relative)
        entries[relative] = info

    missing = sorted(REQUIRED_ENTRIES - entries.keys())
    if missing:
        raise UnsafeArchiveError(name, missing[0], "missing (torch.export.save always writes it)")
    return entries


def _check_entry_name(name: str, relative: str) -> None:
    if relative in REQUIRED_ENTRIES or relative in OPTIONAL_ENTRIES:
        return
    if _PAYLOAD_ENTRY.fullmatch(relative):
        return
    if relative in _LEGACY_ENTRIES:
        raise UnsafeArchiveError(name, relative, _LEGACY_ENTRIES[relative])
    for prefix, reason in _REFUSED_PREFIXES:
        if relative.startswith(prefix):
            raise UnsafeArchiveError(name, relative, reason)
    raise UnsafeArchiveError(
        name,
        relative,
        f"unknown entry (not one torch.export.save writes for a single model {MODEL_NAME!r})",
    )


# --- the contents -----------------------------------------------------------------------------


def _check_contents(data: bytes, name: str, entries: dict[str, zipfile.ZipInfo]) -> None:
    import torch
    from torch._export.serde import schema
    from torch.export.pt2_archive import PT2ArchiveReader

    # Read what we check through torch's own zip reader, so we inspect exactly the bytes torch
    # will act on even if its zip parser and Python's disagree about this file.
    try:
        reader = PT2ArchiveReader(io.BytesIO(data))
        records = reader.get_file_names()
    except Exception as e:
        raise UnsafeArchiveError(name, None, f"torch cannot read the archive: {e}") from None
    if sorted(records) != sorted(entries):
        raise UnsafeArchiveError(
            name, None, "torch's zip reader sees different entries than Python's"
        )

    def text(entry: str) -> str:
        try:
            return reader.read_bytes(entry).decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeArchiveError(name, entry, "not UTF-8 text") from None

    if text(ARCHIVE_FORMAT) != "pt2":
        raise UnsafeArchiveError(name, ARCHIVE_FORMAT, "not 'pt2'")
    if text(ARCHIVE_VERSION) != "0":
        raise UnsafeArchiveError(name, ARCHIVE_VERSION, "unsupported archive version (not '0')")
    if "byteorder" in entries and text("byteorder") not in ("little", "big"):
        raise UnsafeArchiveError(name, "byteorder", "neither 'little' nor 'big'")

    for config, directory, prefix in (
        (WEIGHTS_CONFIG, WEIGHTS_DIR, WEIGHT_PREFIX),
        (CONSTANTS_CONFIG, CONSTANTS_DIR, TENSOR_CONSTANT_PREFIX),
    ):
        payload = _parse_json(name, config, text(config))
        try:
            _check_typed(payload, schema.PayloadConfig, "", schema)
            _check_payload_config(payload, directory, prefix, entries)
        except _Refusal as e:
            raise UnsafeArchiveError(name, config, str(e)) from None
        except RecursionError:
            raise UnsafeArchiveError(name, config, "nested too deeply") from None

    # torch tries weights_only=True and, if that fails, falls back to a full unpickle. We only
    # accept what the restricted unpickler can read, so torch's first attempt always succeeds.
    # (Empty means the program had no example inputs; torch then unpickles nothing.)
    sample_inputs = reader.read_bytes(SAMPLE_INPUTS)
    if sample_inputs:
        try:
            inputs = torch.load(io.BytesIO(sample_inputs), weights_only=True)
        except Exception as e:
            raise UnsafeArchiveError(
                name,
                SAMPLE_INPUTS,
                "does not load with weights_only=True "
                f"(torch would fall back to a full unpickle): {e}",
            ) from None
        if not isinstance(inputs, (tuple, dict)):
            raise UnsafeArchiveError(name, SAMPLE_INPUTS, "not a tuple or dict of example inputs")

    program = _parse_json(name, MODEL_JSON, text(MODEL_JSON))
    try:
        _check_typed(program, schema.ExportedProgram, "", schema)
        _check_graph_inputs(program)
    except _Refusal as e:
        raise UnsafeArchiveError(name, MODEL_JSON, str(e)) from None
    except RecursionError:
        raise UnsafeArchiveError(name, MODEL_JSON, "nested too deeply") from None


def _parse_json(name: str, entry: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise UnsafeArchiveError(name, entry, f"not valid JSON: {e}") from None


def _check_payload_config(
    config: dict[str, Any], directory: str, prefix: str, entries: dict[str, zipfile.ZipInfo]
) -> None:
    """Every payload is raw tensor bytes in an allowlisted entry: never a pickle."""
    for fqn, meta in config["config"].items():
        path_name = meta["path_name"]
        where = f"config[{fqn!r}] ({directory}{path_name})"
        _check_fqn(fqn, where)
        if meta["use_pickle"] is not False:
            raise _Refusal(where, "use_pickle is true: torch would unpickle this payload")
        tensor_meta = meta["tensor_meta"]
        if tensor_meta is None:
            raise _Refusal(where, "no tensor_meta (only plain tensors are allowed)")
        for key in ("sizes", "strides"):
            if any("as_int" not in size for size in tensor_meta[key]):
                raise _Refusal(f"{where}.tensor_meta.{key}", "not all plain integers")
        if "as_int" not in tensor_meta["storage_offset"]:
            raise _Refusal(f"{where}.tensor_meta.storage_offset", "not a plain integer")
        if not re.fullmatch(rf"{prefix}[0-9]+", path_name):
            raise _Refusal(where, f"path_name {path_name!r} is not {prefix}<n>")
        if directory + path_name not in entries:
            raise _Refusal(where, f"{directory + path_name} is not in the archive")


def _check_graph_inputs(program: dict[str, Any]) -> None:
    module = program.get("graph_module", {})
    for i, argument in enumerate(module.get("graph", {}).get("inputs", [])):
        _check_input_kind(argument, f"graph_module.graph.inputs[{i}]")
    for i, spec in enumerate(module.get("signature", {}).get("input_specs", [])):
        kind, value = next(iter(spec.items()))
        if kind == "user_input":
            _check_input_kind(value["arg"], f"graph_module.signature.input_specs[{i}]")
        elif kind == "constant_input":
            _check_input_kind(value["value"], f"graph_module.signature.input_specs[{i}]")


def _check_input_kind(argument: dict[str, Any], where: str) -> None:
    (kind,) = argument
    if kind not in _GRAPH_INPUT_KINDS:
        raise _Refusal(where, f"{kind} graph inputs are not allowed (only tensors and numbers)")


# --- a strict typed walk over the JSON, driven by torch's own schema dataclasses --------------
# torch's _dict_to_dataclass does not check types ("use_pickle": 1 is truthy) and ignores keys it
# does not know; this walk refuses both, and calls the field checks below where a value reaches
# code: call targets, sympy expressions, guards, pytree specs, names that end up in FX code.


def _check_typed(value: Any, tp: Any, where: str, schema: types.ModuleType) -> None:
    if isinstance(tp, str):
        tp = getattr(schema, tp)
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        _check_typed(value, typing.get_args(tp)[0], where, schema)
    elif origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is not None:
            (inner,) = args
            _check_typed(value, inner, where, schema)
    elif origin is list:
        _expect(isinstance(value, list), where, "a list")
        (item,) = typing.get_args(tp)
        for i, v in enumerate(value):
            _check_typed(v, item, f"{where}[{i}]", schema)
    elif origin is dict:
        _expect(isinstance(value, dict), where, "an object")
        _, item = typing.get_args(tp)
        for k, v in value.items():
            _check_typed(v, item, f"{where}[{k!r}]", schema)
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
        _check_dataclass(value, tp, where, schema)
    elif isinstance(tp, type) and issubclass(tp, enum.IntEnum):
        _expect(type(value) is int and value in {m.value for m in tp}, where, f"a {tp.__name__}")
    elif tp is bool:
        _expect(type(value) is bool, where, "true or false")
    elif tp is int:
        _expect(type(value) is int, where, "an integer")
    elif tp is float:
        ok = type(value) in (int, float) or (type(value) is str and value in _FLOAT_WORDS)
        _expect(ok, where, "a number")
    elif tp is str:
        _expect(type(value) is str, where, "a string")
    else:  # pragma: no cover - a schema type this walk does not know: refuse rather than guess
        raise _Refusal(where, f"unsupported schema type {tp!r}")


def _check_dataclass(value: Any, cls: type, where: str, schema: types.ModuleType) -> None:
    from torch._export.serde.union import _Union

    _expect(isinstance(value, dict), where, f"a {cls.__name__} object")
    hints = typing.get_type_hints(cls, globalns=vars(schema), include_extras=True)
    fields = {f.name for f in dataclasses.fields(cls)}
    if issubclass(cls, _Union) and len(value) != 1:
        raise _Refusal(where, f"a {cls.__name__} must have exactly one key")
    if not issubclass(cls, _Union):
        # torch fills absent fields with nothing and fails later; checks below rely on them.
        for field in dataclasses.fields(cls):
            missing = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            if missing and field.name not in value:
                raise _Refusal(where, f"{cls.__name__}.{field.name} is missing")
    for key, item in value.items():
        if key not in fields:
            raise _Refusal(where, f"unknown key {key!r} in {cls.__name__}")
        at = f"{where}.{key}" if where else key
        check = _FIELD_CHECKS.get((cls.__name__, key))
        if check is _refuse:
            raise _Refusal(at, f"{cls.__name__}.{key} is not allowed in a plain exported program")
        _check_typed(item, hints[key], at, schema)
        if check is not None:
            check(item, at)


def _expect(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise _Refusal(where, f"expected {what}")


def _refuse(value: Any, where: str) -> None:  # marker in _FIELD_CHECKS
    raise AssertionError("unreachable")


# --- checks on individual fields --------------------------------------------------------------


def _check_ident(value: str | None, where: str) -> None:
    # Keywords pass: aten schemas have arguments named e.g. "from", which torch handles.
    if value is not None and not _IDENT.fullmatch(value):
        raise _Refusal(where, f"{value!r} is not a plain identifier")


def _check_idents(values: list[str] | None, where: str) -> None:
    for i, value in enumerate(values or []):
        _check_ident(value, f"{where}[{i}]")


def _check_ident_keys(values: dict[str, Any], where: str) -> None:
    for key in values:
        _check_ident(key, f"{where}[{key!r}]")


def _check_fqn(value: str, where: str) -> None:
    parts = value.split(".")
    if value and (not _FQN.fullmatch(value) or any(p.startswith("__") for p in parts)):
        raise _Refusal(where, f"{value!r} is not a plain attribute path")


def _check_empty(value: Any, where: str) -> None:
    if value:
        raise _Refusal(where, "must be empty in a plain exported program")


def _check_call_target(target: str, where: str) -> None:
    """Only aten/prims operators and torch's symbolic-shape helpers may be called."""
    if target in SYM_OP_TARGETS:
        return
    match = _OP_TARGET.fullmatch(target)
    if match is None or match[1] not in OP_NAMESPACES or match[2].startswith("__"):
        hint = ""
        if target.startswith("torch.ops.higher_order."):
            # e.g. `with torch.no_grad():` inside forward() exports as wrap_with_set_grad_enabled
            hint = "; higher-order ops are refused: save program.run_decompositions() instead"
        raise _Refusal(
            where, f"call target {target!r} is not allowed (only aten/prims operators){hint}"
        )
    import torch

    # Resolve like the deserializer does, but only through torch.ops namespaces, and insist the
    # result is an operator overload, not some other attribute reachable from the packet.
    try:
        packet = getattr(getattr(torch.ops, match[1]), match[2])
        overload = getattr(packet, match[3])
    except (AttributeError, RuntimeError):
        raise _Refusal(where, f"call target {target!r} is not a known operator") from None
    if not (
        isinstance(packet, torch._ops.OpOverloadPacket)
        and isinstance(overload, torch._ops.OpOverload)
    ):
        raise _Refusal(where, f"call target {target!r} is not an operator overload")


def _check_sympy_expr(text: str, where: str) -> None:
    """sympify() evals the string: accept only sympy constructors over numbers and symbols."""
    if len(text) > _MAX_EXPR_CHARS:
        raise _Refusal(where, "symbolic expression too long")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        raise _Refusal(where, f"symbolic expression {text[:80]!r} does not parse") from None

    def bad(node: ast.AST) -> typing.NoReturn:
        raise _Refusal(
            where, f"symbolic expression {text[:80]!r}: {ast.dump(node)[:80]} is not allowed"
        )

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Expression):
            visit(node.body)
        elif isinstance(node, ast.Call):
            func = node.func
            if not (
                isinstance(func, ast.Name)
                and (func.id in _SYMPY_CALLS or _SYMPY_OPAQUE_FN.fullmatch(func.id))
            ):
                bad(node)
            args = list(node.args)
            if func.id in ("Symbol", "Float") and args and _is_str(args[0]):
                ok = (_SYMBOL if func.id == "Symbol" else _FLOAT_TEXT).fullmatch(str(args[0].value))
                if not ok:
                    bad(args[0])
                args = args[1:]
            for arg in args:
                visit(arg)
            allowed = {"Symbol": _SYMBOL_ASSUMPTIONS, "Float": {"precision"}}.get(func.id, set())
            for kw in node.keywords:
                if kw.arg not in allowed or not _is_plain_constant(kw.value):
                    bad(kw)
        elif isinstance(node, ast.Name):
            if not (node.id in _SYMPY_CONSTANTS or _SYMBOL.fullmatch(node.id)):
                bad(node)
        elif isinstance(node, ast.Constant):
            if not _is_plain_constant(node):
                bad(node)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, _ARITHMETIC):
            visit(node.left)
            visit(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
            visit(node.operand)
        elif isinstance(node, ast.Compare) and all(isinstance(op, _COMPARISONS) for op in node.ops):
            for child in (node.left, *node.comparators):
                visit(child)
        elif isinstance(node, ast.BoolOp):
            for child in node.values:
                visit(child)
        else:
            bad(node)

    visit(tree)


_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)
_UNARY = (ast.USub, ast.UAdd, ast.Not)
_COMPARISONS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _is_str(node: ast.AST) -> typing.TypeGuard[ast.Constant]:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _is_plain_constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float, bool)


def _check_range_keys(ranges: dict[str, Any], where: str) -> None:
    for key in ranges:
        _check_sympy_expr(key, f"{where}[{key!r}]")


def _check_guards(guards: list[str], where: str) -> None:
    """Guards are exec'd by ExportedProgram.module(): allow only comparisons of input sizes.

    Strings may only be the keys in L['name'] (identifiers): torch splices guard text into a
    string literal of the code it generates, so a quote in a guard could break out of it.
    """
    for i, guard in enumerate(guards):
        at = f"{where}[{i}]"
        try:
            tree = ast.parse(guard, mode="eval")
        except (SyntaxError, ValueError, RecursionError):
            raise _Refusal(at, f"guard {guard[:80]!r} does not parse") from None

        def bad(node: ast.AST, guard: str = guard, at: str = at) -> typing.NoReturn:
            raise _Refusal(at, f"guard {guard[:80]!r}: {ast.dump(node)[:80]} is not allowed")

        def visit_input(node: ast.AST) -> None:
            # L['x'], L['x'][0], L['x'].size()[1], ...
            if isinstance(node, ast.Name):
                if node.id != "L":
                    bad(node)
            elif isinstance(node, ast.Subscript):
                key = node.slice
                if not (
                    isinstance(key, ast.Constant)
                    and (
                        type(key.value) is int
                        or (type(key.value) is str and _IDENT.fullmatch(key.value))
                    )
                ):
                    bad(node)
                visit_input(node.value)
            elif isinstance(node, ast.Call):
                func = node.func
                if not (
                    isinstance(func, ast.Attribute)
                    and func.attr in _GUARD_METHODS
                    and not node.keywords
                    and all(_is_plain_constant(a) for a in node.args)
                ):
                    bad(node)
                visit_input(func.value)
            else:
                bad(node)

        def visit(node: ast.AST) -> None:
            if isinstance(node, ast.Expression):
                visit(node.body)
            elif isinstance(node, (ast.Name, ast.Subscript)):
                visit_input(node)
            elif isinstance(node, ast.Call):
                if _is_guard_function(node.func) and not node.keywords:
                    for arg in node.args:
                        visit(arg)
                else:
                    visit_input(node)
            elif isinstance(node, ast.Attribute):
                if not (
                    isinstance(node.value, ast.Name)
                    and node.value.id == "math"
                    and node.attr in _GUARD_MATH
                ):
                    bad(node)
            elif isinstance(node, ast.Constant):
                if not _is_plain_constant(node):
                    bad(node)
            elif isinstance(node, ast.BinOp) and isinstance(node.op, _ARITHMETIC):
                visit(node.left)
                visit(node.right)
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
                visit(node.operand)
            elif isinstance(node, ast.Compare) and all(
                isinstance(op, _COMPARISONS) for op in node.ops
            ):
                for child in (node.left, *node.comparators):
                    visit(child)
            elif isinstance(node, ast.BoolOp):
                for child in node.values:
                    visit(child)
            else:
                bad(node)

        visit(tree)


def _is_guard_function(func: ast.AST) -> bool:
    if isinstance(func, ast.Name):
        return func.id in _GUARD_FUNCTIONS
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "math"
        and func.attr in _GUARD_MATH
    )


def _check_treespec(text: str, where: str) -> None:
    """Only tuples, lists and str-keyed dicts: other types are looked up by name, and a context
    holding an {"__enum__": ...} object makes torch import the module it names."""
    try:
        spec = json.loads(text)
    except (ValueError, RecursionError):
        raise _Refusal(where, "pytree spec is not valid JSON") from None
    if not (isinstance(spec, list) and len(spec) == 2 and spec[0] == 1):
        raise _Refusal(where, "pytree spec is not protocol 1")

    def visit(node: Any, at: str) -> None:
        if not (
            isinstance(node, dict)
            and set(node) == {"type", "context", "children_spec"}
            and isinstance(node["children_spec"], list)
        ):
            raise _Refusal(at, "malformed pytree spec node")
        kind, context, children = node["type"], node["context"], node["children_spec"]
        if kind is None:
            if context is not None or children:
                raise _Refusal(at, "malformed pytree leaf")
            return
        if kind in _TREESPEC_SEQUENCES:
            if context != "null":
                raise _Refusal(at, f"unexpected context for {kind}")
        elif kind in _TREESPEC_MAPPINGS:
            try:
                keys = json.loads(context) if isinstance(context, str) else None
            except ValueError:
                keys = None
            if not (
                isinstance(keys, list)
                and len(keys) == len(children)
                and all(isinstance(k, str) and _IDENT.fullmatch(k) for k in keys)
            ):
                raise _Refusal(at, f"{kind} keys must be a list of identifiers")
        else:
            raise _Refusal(at, f"pytree type {kind!r} is not allowed (only tuple, list, dict)")
        for i, child in enumerate(children):
            visit(child, f"{at}.children_spec[{i}]")

    visit(spec[1], where)


def _check_node_metadata(metadata: dict[str, str], where: str) -> None:
    for key, value in metadata.items():
        at = f"{where}[{key!r}]"
        if key not in _NODE_METADATA_KEYS:
            raise _Refusal(at, "unknown node metadata")
        if key in ("custom", "from_node"):
            try:
                json.loads(value)
            except (ValueError, RecursionError):
                raise _Refusal(at, "not valid JSON") from None
        elif key == "nn_module_stack":
            # "key,path,type" items; torch.export.unflatten turns the paths into attributes.
            for item in value.split(";"):
                parts = _split_top_level_commas(item)
                if len(parts) != 3:
                    raise _Refusal(at, "malformed nn_module_stack")
                _check_fqn(parts[1], at)
        elif key == "source_fn_stack":
            for item in value.split(";"):
                fx_name, _, target = item.partition(",")
                if "," in target:
                    raise _Refusal(at, "malformed source_fn_stack")
                _check_ident(fx_name, at)
                _check_meta_target(target, at)


def _split_top_level_commas(text: str) -> list[str]:
    """Split on commas outside brackets, as the deserializer's metadata_split does."""
    parts, start, depth = [], 0, 0
    for i, char in enumerate(text):
        if char in "[(":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _check_meta_target(target: str, where: str) -> None:
    """source_fn_stack names the Python callable a node came from; torch resolves (never calls)
    it by walking attributes. Allow only walks that stay inside torch, operator and math."""
    parts = target.split(".")
    if not all(_IDENT.fullmatch(p) and not p.startswith("__") for p in parts):
        raise _Refusal(where, f"source_fn_stack target {target!r} is not a dotted name")
    import math
    import operator

    import torch

    # The same prefix tests as the deserializer's deserialize_meta_func/deserialize_operator
    # (startswith, not equality), so we walk exactly the path torch will walk.
    if target.startswith("torch.nn"):
        obj, names = torch.nn, parts[2:]
    elif target.startswith("torch"):
        obj, names = torch, parts[1:]
    elif target.startswith("_operator"):
        obj, names = operator, parts[1:]
    elif target.startswith("math"):
        obj, names = math, parts[1:]
    else:
        return  # e.g. a method name such as "transpose": torch keeps it as a plain string
    for part in names:
        if not _inside_torch(obj):
            raise _Refusal(where, f"source_fn_stack target {target!r} leaves torch")
        try:
            obj = getattr(obj, part)
        except Exception:
            return  # unresolved: torch keeps the string
    if not _inside_torch(obj):
        raise _Refusal(where, f"source_fn_stack target {target!r} leaves torch")


def _inside_torch(obj: Any) -> bool:
    name = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    if not isinstance(name, str):
        return False
    return name in ("torch", "operator", "_operator", "math") or name.startswith("torch.")


def _check_device(device_type: str, where: str) -> None:
    if device_type not in _DEVICE_TYPES:
        raise _Refusal(where, f"device type {device_type!r} is not allowed")


def _check_verifiers(verifiers: list[str], where: str) -> None:
    for verifier in verifiers:
        if verifier not in _VERIFIERS:
            raise _Refusal(where, f"verifier {verifier!r} is not allowed")


def _check_graph_module_metadata(metadata: dict[str, str], where: str) -> None:
    for key, value in metadata.items():
        if key != "custom":
            raise _Refusal(f"{where}[{key!r}]", "unknown graph module metadata")
        try:
            json.loads(value)
        except (ValueError, RecursionError):
            raise _Refusal(f"{where}[{key!r}]", "not valid JSON") from None


def _check_graph_values(values: dict[str, Any], where: str) -> None:
    _check_ident_keys(values, where)


_FIELD_CHECKS: dict[tuple[str, str], Callable[[Any, str], None]] = {
    # what gets called or evaluated
    ("Node", "target"): _check_call_target,
    ("Argument", "as_operator"): _check_call_target,
    ("SymExpr", "expr_str"): _check_sympy_expr,
    ("ExportedProgram", "range_constraints"): _check_range_keys,
    ("ExportedProgram", "guards_code"): _check_guards,
    ("ExportedProgram", "verifiers"): _check_verifiers,
    ("ModuleCallSignature", "in_spec"): _check_treespec,
    ("ModuleCallSignature", "out_spec"): _check_treespec,
    ("Node", "metadata"): _check_node_metadata,
    ("GraphModule", "metadata"): _check_graph_module_metadata,
    ("Device", "type"): _check_device,
    # not produced by a plain nn.Module: higher-order subgraphs, TorchScript objects
    ("Argument", "as_graph"): _refuse,
    ("Argument", "as_custom_obj"): _refuse,
    ("InputSpec", "custom_obj"): _refuse,
    ("Graph", "custom_obj_values"): _check_empty,
    ("GraphModule", "treespec_namedtuple_fields"): _check_empty,
    # names that become identifiers in the Python code FX generates
    ("TensorArgument", "name"): _check_ident,
    ("TokenArgument", "name"): _check_ident,
    ("SymIntArgument", "as_name"): _check_ident,
    ("SymFloatArgument", "as_name"): _check_ident,
    ("SymBoolArgument", "as_name"): _check_ident,
    ("NamedArgument", "name"): _check_ident,
    ("Node", "name"): _check_ident,
    ("InputToConstantInputSpec", "name"): _check_ident,
    ("GradientToUserInputSpec", "user_input_name"): _check_ident,
    ("UserInputMutationSpec", "user_input_name"): _check_ident,
    ("ModuleCallSignature", "forward_arg_names"): _check_idents,
    ("Graph", "tensor_values"): _check_graph_values,
    ("Graph", "sym_int_values"): _check_graph_values,
    ("Graph", "sym_bool_values"): _check_graph_values,
    ("Graph", "sym_float_values"): _check_graph_values,
    ("ExportedProgram", "opset_version"): _check_ident_keys,
    # attribute paths set on the GraphModule
    ("InputToParameterSpec", "parameter_name"): _check_fqn,
    ("InputToBufferSpec", "buffer_name"): _check_fqn,
    ("InputToTensorConstantSpec", "tensor_constant_name"): _check_fqn,
    ("BufferMutationSpec", "buffer_name"): _check_fqn,
    ("ParameterMutationSpec", "parameter_name"): _check_fqn,
    ("GradientToParameterSpec", "parameter_name"): _check_fqn,
    ("ModuleCallEntry", "fqn"): _check_fqn,
}
