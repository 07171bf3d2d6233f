"""Loading an addon's network archive never runs code from it (addons/archive.py).

Each malicious archive is a real `torch.export.save` archive rewritten by hand, carrying a
payload that creates a marker file if anything unpickles or evaluates it. Every refusal must
name the archive and the offending entry, leave the marker absent, and happen before
`torch.export.load` is called at all.
"""

from __future__ import annotations

import io
import json
import math
import operator
import pickle
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from voicestack.addons import archive
from voicestack.addons.archive import UnsafeArchiveError, inspect_archive, load_exported_program

# --- a genuine archive --------------------------------------------------------------------------


class TinyVoiceNet(nn.Module):
    """The layer kinds a TTS network uses, plus a buffer and an unregistered tensor constant."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.conv = nn.Conv1d(8, 8, 3, padding=1)
        self.cell = nn.GRUCell(8, 8)
        self.out = nn.Linear(8, 4)
        self.register_buffer("gain", torch.full((8,), 0.5))
        self.offset = torch.linspace(-1.0, 1.0, 8)  # not registered: export makes it a constant

    def forward(self, symbols: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.embed(symbols) * self.gain + self.offset
        x = self.conv(x.transpose(1, 2)).transpose(1, 2) * mask[..., None]
        h = self.cell(x[:, 0], torch.zeros(x.shape[0], 8))
        return torch.softmax(self.out(x), -1).exp(), h


@pytest.fixture(scope="module")
def genuine() -> tuple[nn.Module, tuple[torch.Tensor, ...], bytes]:
    """The module, example inputs (int64 symbols, float mask) and its archive, dynamic in batch
    and length, so the archive also holds symbolic shapes and guards."""
    torch.manual_seed(0)
    module = TinyVoiceNet().eval()
    args = (torch.randint(0, 16, (2, 7)), torch.ones(2, 7))
    batch, length = torch.export.Dim("batch", max=8), torch.export.Dim("length", min=2, max=64)
    dims = {"symbols": {0: batch, 1: length}, "mask": {0: batch, 1: length}}
    program = torch.export.export(module, args, dynamic_shapes=dims)
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return module, args, buffer.getvalue()


@pytest.fixture
def original(genuine: tuple[nn.Module, tuple[torch.Tensor, ...], bytes]) -> bytes:
    return genuine[2]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """Created by the payload if anything ever unpickles or evaluates it."""
    return tmp_path / "payload-ran"


@pytest.fixture(autouse=True)
def torch_load_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Records every call of torch.export.load, which refused archives must never reach."""
    calls: list[Any] = []
    real = torch.export.load

    def spy(f: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(f)
        return real(f, *args, **kwargs)

    monkeypatch.setattr(torch.export, "load", spy)
    return calls


# --- building malicious archives (module level, so they can also be fed to plain torch) --------


class TouchOnUnpickle:
    """Unpickling this creates `marker`: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (Path.touch, (self.marker,))


def payload_pickle(marker: Path) -> bytes:
    return pickle.dumps(TouchOnUnpickle(marker), protocol=4)


def payload_torch_save(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def read_entries(data: bytes) -> tuple[str, dict[str, bytes]]:
    """The archive's root folder and its entries relative to it, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        root = zf.namelist()[0].split("/", 1)[0]
        return root, {i.filename[len(root) + 1 :]: zf.read(i) for i in zf.infolist()}


def write_zip(items: list[tuple[str, bytes]], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip of exactly these (full name, bytes) items, duplicates included."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names: we want them
        with zipfile.ZipFile(buffer, "w", compression) as zf:
            for name, content in items:
                zf.writestr(name, content)
    return buffer.getvalue()


def rewrite(data: bytes, edit: Callable[[dict[str, bytes]], None]) -> bytes:
    root, entries = read_entries(data)
    edit(entries)
    return write_zip([(f"{root}/{name}", content) for name, content in entries.items()])


def edit_json(data: bytes, entry: str, edit: Callable[[Any], None]) -> bytes:
    def change(entries: dict[str, bytes]) -> None:
        document = json.loads(entries[entry])
        edit(document)
        entries[entry] = json.dumps(document).encode()

    return rewrite(data, change)


def edit_model(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    return edit_json(data, "models/model.json", edit)


def with_pickled_weight(data: bytes, marker: Path) -> bytes:
    """The first weight flipped to use_pickle=true, its bytes replaced by a payload."""
    _, entries = read_entries(data)
    config = json.loads(entries["data/weights/model_weights_config.json"])
    fqn, meta = next(iter(config["config"].items()))
    meta["use_pickle"] = True

    def change(entries: dict[str, bytes]) -> None:
        entries["data/weights/model_weights_config.json"] = json.dumps(config).encode()
        entries["data/weights/" + meta["path_name"]] = payload_torch_save(TouchOnUnpickle(marker))

    return rewrite(data, change)


def with_pickled_constant(data: bytes, marker: Path) -> bytes:
    """The tensor constant flipped to use_pickle=true, its bytes replaced by a payload."""
    _, entries = read_entries(data)
    config = json.loads(entries["data/constants/model_constants_config.json"])
    meta = config["config"]["offset"]
    meta["use_pickle"] = True

    def change(entries: dict[str, bytes]) -> None:
        entries["data/constants/model_constants_config.json"] = json.dumps(config).encode()
        entries["data/constants/" + meta["path_name"]] = payload_torch_save(TouchOnUnpickle(marker))

    return rewrite(data, change)


def with_object_constant(data: bytes, marker: Path, prefix: str) -> bytes:
    """An extra constant stored as a custom (TorchScript) or opaque (pickle) object."""

    def change(entries: dict[str, bytes]) -> None:
        config = json.loads(entries["data/constants/model_constants_config.json"])
        config["config"]["evil"] = {
            "path_name": f"{prefix}0",
            "is_param": False,
            "use_pickle": True,
            "tensor_meta": None,
        }
        entries["data/constants/model_constants_config.json"] = json.dumps(config).encode()
        entries[f"data/constants/{prefix}0"] = payload_pickle(marker)

    return rewrite(data, change)


def with_pickled_sample_inputs(data: bytes, marker: Path) -> bytes:
    """Sample inputs that only load with weights_only=False."""

    def change(entries: dict[str, bytes]) -> None:
        payload = ((TouchOnUnpickle(marker),), {})  # (args, kwargs), as torch saves them
        entries["data/sample_inputs/model.pt"] = payload_torch_save(payload)

    return rewrite(data, change)


def with_legacy_file(data: bytes, marker: Path, entry: str) -> bytes:
    """A legacy weights or constants file next to the new-format ones (torch prefers it)."""

    def change(entries: dict[str, bytes]) -> None:
        entries[entry] = payload_torch_save({"evil": TouchOnUnpickle(marker)})

    return rewrite(data, change)


def legacy_format_archive(data: bytes, marker: Path) -> bytes:
    """An old-style archive (top-level `version`), which torch loads by unpickling its files."""
    from torch._export.serde.schema import SCHEMA_VERSION

    _, entries = read_entries(data)
    state = payload_torch_save({})
    return write_zip(
        [
            ("version", ".".join(map(str, SCHEMA_VERSION)).encode()),
            ("serialized_exported_program.json", entries["models/model.json"]),
            ("serialized_state_dict.pt", state),
            ("serialized_constants.pt", payload_torch_save({"evil": TouchOnUnpickle(marker)})),
            ("serialized_example_inputs.pt", entries["data/sample_inputs/model.pt"]),
        ]
    )


def with_node_target(data: bytes, target: str, command: str) -> bytes:
    """The last graph node calls `target` with one string argument."""

    def change(program: dict[str, Any]) -> None:
        node = program["graph_module"]["graph"]["nodes"][-1]
        node["target"] = target
        node["inputs"] = [{"name": "command", "arg": {"as_string": command}, "kind": 1}]

    return edit_model(data, change)


def with_symbolic_expression(data: bytes, expression: str) -> bytes:
    """The first symbolic size in the graph replaced by `expression` (torch sympifies it)."""

    def change(program: dict[str, Any]) -> None:
        for meta in program["graph_module"]["graph"]["tensor_values"].values():
            for size in meta["sizes"]:
                if "as_expr" in size:
                    size["as_expr"]["expr_str"] = expression
                    return
        raise AssertionError("the genuine archive has no symbolic size")

    return edit_model(data, change)


def with_guard(data: bytes, guard: str) -> bytes:
    """An extra guard (torch execs guards when ExportedProgram.module() is called)."""
    return edit_model(data, lambda program: program["guards_code"].append(guard))


def with_input_spec_context(data: bytes, context: Any) -> bytes:
    """The kwargs dict of the input pytree spec given `context` as its keys."""

    def change(program: dict[str, Any]) -> None:
        signature = program["graph_module"]["module_call_graph"][0]["signature"]
        spec = json.loads(signature["in_spec"])
        spec[1]["children_spec"][1]["context"] = json.dumps(context)
        signature["in_spec"] = json.dumps(spec)

    return edit_model(data, change)


def python_code(marker: Path) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


# --- helpers for the assertions -----------------------------------------------------------------


def refused(
    data: bytes, tmp_path: Path, calls: list[Any], entry: str | None, *reason: str
) -> UnsafeArchiveError:
    """load_exported_program refuses `data`, naming the file, `entry` and each reason fragment,
    without ever calling torch.export.load."""
    path = tmp_path / "network.pt2"
    path.write_bytes(data)
    with pytest.raises(UnsafeArchiveError) as info:
        load_exported_program(path)
    error = info.value
    message = str(error)
    assert str(path) in message and error.archive == str(path)
    if entry is not None:
        assert error.entry == entry and repr(entry) in message
    for fragment in reason:
        assert fragment in message, message
    assert calls == [], "torch.export.load must not see a refused archive"
    return error


# --- genuine archives ---------------------------------------------------------------------------


def test_a_genuine_archive_loads_and_computes_what_the_original_module_computes(
    genuine: tuple[nn.Module, tuple[torch.Tensor, ...], bytes],
    tmp_path: Path,
    torch_load_calls: list[Any],
) -> None:
    module, args, data = genuine
    path = tmp_path / "network.pt2"
    path.write_bytes(data)
    program = load_exported_program(path)
    assert len(torch_load_calls) == 1 and isinstance(program, torch.export.ExportedProgram)
    symbols, mask = torch.randint(0, 16, (3, 11)), torch.ones(3, 11)  # other dynamic sizes
    for got, want in zip(program.module()(symbols, mask), module(symbols, mask), strict=True):
        torch.testing.assert_close(got, want)


def test_the_genuine_archive_is_what_a_plain_torch_export_save_writes(original: bytes) -> None:
    _, entries = read_entries(original)
    program = json.loads(entries["models/model.json"])
    assert "data/constants/tensor_0" in entries  # the unregistered tensor is a constant
    assert program["guards_code"] and program["range_constraints"]  # dynamic shapes present
    inspect_archive(original, "network.pt2")


def test_an_archive_saved_without_example_inputs_loads(
    genuine: tuple[nn.Module, tuple[torch.Tensor, ...], bytes], tmp_path: Path
) -> None:
    module, args, data = genuine
    path = tmp_path / "network.pt2"
    path.write_bytes(
        rewrite(data, lambda entries: entries.update({"data/sample_inputs/model.pt": b""}))
    )  # what torch.export.save writes for None
    program = load_exported_program(path)
    assert program.example_inputs is None
    torch.testing.assert_close(program.module()(*args)[1], module(*args)[1])


# --- pickled payloads ---------------------------------------------------------------------------


def test_a_weight_flipped_to_use_pickle_is_refused_and_its_payload_never_runs(
    original: bytes, marker: Path, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    data = with_pickled_weight(original, marker)
    refused(
        data,
        tmp_path,
        torch_load_calls,
        "data/weights/model_weights_config.json",
        "embed.weight",
        "data/weights/weight_0",
        "use_pickle",
    )
    assert not marker.exists()


def test_a_constant_flipped_to_use_pickle_is_refused_and_its_payload_never_runs(
    original: bytes, marker: Path, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    data = with_pickled_constant(original, marker)
    refused(
        data,
        tmp_path,
        torch_load_calls,
        "data/constants/model_constants_config.json",
        "offset",
        "use_pickle",
    )
    assert not marker.exists()


@pytest.mark.parametrize(
    ("prefix", "why"),
    [("custom_obj_", "TorchScript"), ("opaque_obj_", "pickle.loads")],
    ids=["custom-object", "opaque-object"],
)
def test_an_object_constant_is_refused_and_its_payload_never_runs(
    prefix: str,
    why: str,
    original: bytes,
    marker: Path,
    tmp_path: Path,
    torch_load_calls: list[Any],
) -> None:
    data = with_object_constant(original, marker, prefix)
    refused(data, tmp_path, torch_load_calls, f"data/constants/{prefix}0", why)
    assert not marker.exists()


def test_sample_inputs_that_need_a_full_unpickle_are_refused_and_their_payload_never_runs(
    original: bytes, marker: Path, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    data = with_pickled_sample_inputs(original, marker)
    refused(data, tmp_path, torch_load_calls, "data/sample_inputs/model.pt", "weights_only=True")
    assert not marker.exists()


@pytest.mark.parametrize("entry", ["data/weights/model.pt", "data/constants/model.pt"])
def test_a_legacy_pickle_file_is_refused_and_its_payload_never_runs(
    entry: str, original: bytes, marker: Path, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    data = with_legacy_file(original, marker, entry)
    refused(data, tmp_path, torch_load_calls, entry, "legacy")
    assert not marker.exists()


def test_a_legacy_format_archive_with_a_top_level_version_is_refused(
    original: bytes, marker: Path, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    data = legacy_format_archive(original, marker)
    refused(data, tmp_path, torch_load_calls, "version", "legacy archive format")
    assert not marker.exists()


def test_a_plain_pickle_renamed_pt2_is_refused_before_torch_sees_it(
    marker: Path, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    refused(
        payload_pickle(marker),
        tmp_path,
        torch_load_calls,
        None,
        "not a torch.export archive (not a zip file); plain pickles are refused",
    )
    assert not marker.exists()


def test_a_zip_with_a_pickle_prepended_is_refused(
    original: bytes, marker: Path, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    refused(payload_pickle(marker) + original, tmp_path, torch_load_calls, None, "not a zip")
    assert not marker.exists()


def test_a_torch_save_file_renamed_pt2_is_refused(
    marker: Path, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    data = payload_torch_save({"weight": torch.ones(2), "evil": TouchOnUnpickle(marker)})
    refused(data, tmp_path, torch_load_calls, "data.pkl", "unknown entry")
    assert not marker.exists()


# --- entries torch would act on -----------------------------------------------------------------


def test_an_aotinductor_entry_is_refused(
    original: bytes, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    entry = "data/aotinductor/model/model.so"
    data = rewrite(original, lambda entries: entries.update({entry: b"\x7fELF"}))
    refused(data, tmp_path, torch_load_calls, entry, "native shared object")


@pytest.mark.parametrize(
    "entry",
    ["extra/notes.txt", "models/second.json", "data/weights/weights.bin", "README", "data.pkl"],
)
def test_an_unknown_extra_entry_is_refused(
    entry: str, original: bytes, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    data = rewrite(original, lambda entries: entries.update({entry: b"{}"}))
    refused(data, tmp_path, torch_load_calls, entry)


def test_a_missing_model_graph_is_refused(
    original: bytes, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    data = rewrite(original, lambda entries: entries.pop("models/model.json"))
    refused(data, tmp_path, torch_load_calls, "models/model.json", "missing")


# --- the zip container --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "duplicate",
    ["data/weights/weight_0", "DATA/weights/weight_0"],
    ids=["exact", "differing-in-case"],
)
def test_duplicate_entry_names_are_refused(
    duplicate: str, original: bytes, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    root, entries = read_entries(original)
    items = [(f"{root}/{name}", content) for name, content in entries.items()]
    data = write_zip([*items, (f"{root}/{duplicate}", b"\0" * 4)])
    refused(data, tmp_path, torch_load_calls, f"{root}/{duplicate}", "duplicate")


@pytest.mark.parametrize(
    "name", ["{root}/../evil", "/{root}/models/model.json", "{root}/data/./x", "{root}\\evil"]
)
def test_absolute_paths_and_path_traversal_are_refused(
    name: str, original: bytes, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    root, entries = read_entries(original)
    items = [(f"{root}/{entry}", content) for entry, content in entries.items()]
    data = write_zip([*items, (name.format(root=root), b"x")])
    refused(data, tmp_path, torch_load_calls, None, "path")


def test_entries_outside_the_one_archive_root_folder_are_refused(
    original: bytes, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    root, entries = read_entries(original)
    items = [(f"{root}/{entry}", content) for entry, content in entries.items()]
    data = write_zip([*items, ("other/models/model.json", entries["models/model.json"])])
    refused(data, tmp_path, torch_load_calls, "other/models/model.json", "root folder")


def test_compressed_entries_are_refused(
    original: bytes, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    root, entries = read_entries(original)
    items = [(f"{root}/{entry}", content) for entry, content in entries.items()]
    data = write_zip(items, compression=zipfile.ZIP_DEFLATED)
    refused(data, tmp_path, torch_load_calls, None, "compressed")


# --- the graph: what gets called, evaluated or imported -----------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "torch.os.system",
        "builtins.eval",
        "_operator.attrgetter",
        "#custom:op",
        "torch.ops.higher_order.cond",
        "torch.ops.aten.linear._op",
        "torch.ops.aten.linear.__call__",
        "torch.ops.aten.no_such_op.default",
    ],
)
def test_a_node_target_outside_the_operator_allowlist_is_refused_and_never_called(
    target: str, original: bytes, marker: Path, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    data = with_node_target(original, target, f"touch {marker}")
    refused(data, tmp_path, torch_load_calls, "models/model.json", repr(target))
    assert not marker.exists()


def test_an_operator_argument_outside_the_allowlist_is_refused(
    original: bytes, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    def change(program: dict[str, Any]) -> None:
        node = program["graph_module"]["graph"]["nodes"][-1]
        node["inputs"].append({"name": "fn", "arg": {"as_operator": "torch.os.system"}, "kind": 2})

    refused(
        edit_model(original, change),
        tmp_path,
        torch_load_calls,
        "models/model.json",
        "'torch.os.system'",
    )


def test_a_symbolic_shape_holding_python_code_is_refused_and_never_evaluated(
    original: bytes, marker: Path, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    data = with_symbolic_expression(original, python_code(marker))
    refused(data, tmp_path, torch_load_calls, "models/model.json", "symbolic expression")
    assert not marker.exists()


def test_a_guard_holding_python_code_is_refused_and_never_executed(
    original: bytes, marker: Path, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    data = with_guard(original, f"({python_code(marker)}) is None")
    refused(data, tmp_path, torch_load_calls, "models/model.json", "guards_code", "guard")
    assert not marker.exists()


def test_a_pytree_spec_naming_an_enum_to_import_is_refused(
    original: bytes, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    enum = {"__enum__": True, "fqn": "antigravity:X", "name": "Y"}  # import opens a browser
    data = with_input_spec_context(original, [enum])
    refused(data, tmp_path, torch_load_calls, "models/model.json", "in_spec", "identifiers")
    assert "antigravity" not in sys.modules


def test_a_string_graph_input_is_refused(
    original: bytes, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    def change(program: dict[str, Any]) -> None:
        program["graph_module"]["graph"]["inputs"].append({"as_string": "x' or True or '"})

    refused(
        edit_model(original, change),
        tmp_path,
        torch_load_calls,
        "models/model.json",
        "as_string graph inputs",
    )


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("source_fn_stack", "linear,torch.os.system", "leaves torch"),
        ("nn_module_stack", "L__self__,out.__class__,torch.nn.Linear", "attribute path"),
        ("compiled_code", "print('hi')", "unknown node metadata"),
    ],
    ids=["source-fn-outside-torch", "module-path-to-dunder", "unknown-key"],
)
def test_node_metadata_that_would_resolve_or_set_something_outside_torch_is_refused(
    key: str,
    value: str,
    reason: str,
    original: bytes,
    tmp_path: Path,
    torch_load_calls: list[Any],
) -> None:
    def change(program: dict[str, Any]) -> None:
        program["graph_module"]["graph"]["nodes"][-1]["metadata"][key] = value

    refused(edit_model(original, change), tmp_path, torch_load_calls, "models/model.json", reason)


def test_a_value_of_the_wrong_type_is_refused_rather_than_trusted_as_truthy(
    original: bytes, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    def change(config: dict[str, Any]) -> None:
        next(iter(config["config"].values()))["use_pickle"] = 0

    data = edit_json(original, "data/weights/model_weights_config.json", change)
    refused(
        data,
        tmp_path,
        torch_load_calls,
        "data/weights/model_weights_config.json",
        "use_pickle",
        "true or false",
    )


def test_a_node_name_that_is_not_an_identifier_is_refused(
    original: bytes, tmp_path: Path, torch_load_calls: list[Any]
) -> None:
    def change(program: dict[str, Any]) -> None:
        program["graph_module"]["graph"]["nodes"][-1]["name"] = "x = 1; y"

    refused(
        edit_model(original, change),
        tmp_path,
        torch_load_calls,
        "models/model.json",
        "not a plain identifier",
    )


# --- the allowlist stays in step with torch -----------------------------------------------------


def test_the_symbolic_helper_allowlist_is_exactly_what_torch_serializes() -> None:
    from torch._export.serde.serialize import _SYM_OPS

    def serialized(op: Any) -> str:  # as GraphModuleSerializer.serialize_operator names them
        return f"{op.__module__}.{op.__name__}"

    torch_names = {serialized(op) for op in _SYM_OPS}
    assert torch_names == archive.SYM_OP_TARGETS
    assert serialized(operator.add) == "_operator.add" and serialized(math.trunc) == "math.trunc"


def test_the_entry_names_are_the_ones_torch_writes() -> None:
    from torch.export.pt2_archive import constants as c

    torch_names = (
        c.MODELS_FILENAME_FORMAT.format("model"),
        c.WEIGHTS_CONFIG_FILENAME_FORMAT.format("model"),
        c.CONSTANTS_CONFIG_FILENAME_FORMAT.format("model"),
        c.SAMPLE_INPUTS_FILENAME_FORMAT.format("model"),
        c.WEIGHTS_DIR,
        c.CONSTANTS_DIR,
        c.WEIGHT_FILENAME_PREFIX,
        c.TENSOR_CONSTANT_FILENAME_PREFIX,
        c.ARCHIVE_FORMAT_PATH,
        c.ARCHIVE_VERSION_PATH,
    )
    ours = (
        archive.MODEL_JSON,
        archive.WEIGHTS_CONFIG,
        archive.CONSTANTS_CONFIG,
        archive.SAMPLE_INPUTS,
        archive.WEIGHTS_DIR,
        archive.CONSTANTS_DIR,
        archive.WEIGHT_PREFIX,
        archive.TENSOR_CONSTANT_PREFIX,
        archive.ARCHIVE_FORMAT,
        archive.ARCHIVE_VERSION,
    )
    assert torch_names == ours


def test_importing_the_module_does_not_import_torch() -> None:
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('archive', {archive.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
