"""ONNX networks in addons: declared like torch archives, run by onnxruntime, and inspected
before anything is read: external data only from inside the addon folder, standard operator
domains only, size limits. Each unsafe case is planted in a real model and must be refused
with an error naming the file, the place and the reason."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from voicestack.addons import onnx_file
from voicestack.addons.archive import UnsafeArchiveError
from voicestack.addons.loader import AddonError, load_addon
from voicestack.addons.onnx_file import load_onnx_model
from voicestack.placement.config import BlockPlacement

CHANNELS = 4
HOP = 4


def vocoder_model(
    weight: np.ndarray | None = None, domain: str = "", taps: int = 3
) -> onnx.ModelProto:
    """A tiny ONNX 'vocoder' as a user would write one: frames (batch, length, 4) and a mask
    in, audio (batch, length*4) out, through a 3-tap convolution (receptive field 1 frame)."""
    if weight is None:
        weight = np.random.default_rng(0).standard_normal((HOP, CHANNELS, taps)).astype(np.float32)
    pad = taps // 2
    nodes = [
        helper.make_node("Transpose", ["frames"], ["x"], perm=[0, 2, 1]),
        helper.make_node("Conv", ["x", "weight"], ["y"], pads=[pad, pad], domain=domain),
        helper.make_node("Unsqueeze", ["mask", "axis1"], ["m"]),
        helper.make_node("Mul", ["y", "m"], ["ym"]),
        helper.make_node("Transpose", ["ym"], ["yt"], perm=[0, 2, 1]),
        helper.make_node("Flatten", ["yt"], ["audio"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "vocoder",
        [
            helper.make_tensor_value_info(
                "frames", TensorProto.FLOAT, ["batch", "length", CHANNELS]
            ),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "length"]),
        ],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", "samples"])],
        initializer=[
            numpy_helper.from_array(weight, "weight"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        ],
    )
    opsets = [helper.make_opsetid("", 17)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def expected_audio(model: onnx.ModelProto, frames: np.ndarray) -> np.ndarray:
    weight = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "weight"))
    weight = weight.copy()
    x = torch.from_numpy(frames.T[None])
    y = torch.nn.functional.conv1d(x, torch.from_numpy(weight), padding=weight.shape[-1] // 2)[0]
    return y.T.reshape(-1).numpy()


def write_addon(root: Path, model: onnx.ModelProto | None = None, **network) -> Path:
    """An addon folder whose one network is `vocoder.onnx`, declared as a user would."""
    root.mkdir(parents=True, exist_ok=True)
    if model is not None:
        onnx.save_model(model, root / "vocoder.onnx")
    declaration = {
        "file": "vocoder.onnx",
        "role": "vocoder",
        "inputs": [
            {"name": "frames", "shape": ["batch", "length", CHANNELS]},
            {"name": "mask", "shape": ["batch", "length"]},
        ],
        "outputs": [{"name": "audio", "shape": ["batch", f"length*{HOP}"]}],
        "receptive_field_frames": 1,
        **network,
    }
    addon = {
        "format_version": 1,
        "name": "onnx-vocoder",
        "version": "1",
        "language": "en-US",
        "architecture": "duration",
        "audio": {"sample_rate": 16000, "hop_length": HOP, "n_mels": CHANNELS},
        "symbols": ["_", " ", "a"],
        "networks": {"vocoder": declaration},
        "stack": [{"type": "Vocoder"}],
    }
    (root / "addon.json").write_text(json.dumps(addon))
    return root


def network(root: Path, **placement):
    return load_addon(root).network("vocoder", BlockPlacement(**placement))


def refused(path: Path, root: Path, *words: str) -> None:
    with pytest.raises(UnsafeArchiveError) as caught:
        load_onnx_model(path, root)
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word in message, message


# --- a user's own ONNX network -----------------------------------------------------------------


def test_an_onnx_network_runs_as_declared_unbatched_in_and_out(tmp_path):
    model = vocoder_model()
    net = network(write_addon(tmp_path / "a", model))
    frames = np.random.default_rng(1).standard_normal((7, CHANNELS)).astype(np.float32)
    out = net.run({"frames": torch.from_numpy(frames)})["audio"]
    assert out.shape == (7 * HOP,)
    np.testing.assert_allclose(out.numpy(), expected_audio(model, frames), atol=1e-5)


def test_chunks_of_different_lengths_batch_into_one_call_with_the_same_results(tmp_path):
    net = network(write_addon(tmp_path / "a", vocoder_model()))
    rng = np.random.default_rng(2)
    items = [
        {"frames": torch.from_numpy(rng.standard_normal((n, CHANNELS)).astype(np.float32))}
        for n in (3, 9, 5)
    ]
    batched = net.run_batch(items)
    for item, out in zip(items, batched, strict=True):
        np.testing.assert_allclose(out["audio"].numpy(), net.run(item)["audio"].numpy(), atol=1e-6)
    assert net.max_batch > 1  # the batch axis is dynamic in the model


def test_an_input_longer_than_the_declared_max_length_is_cut_not_refused(tmp_path):
    model = vocoder_model(taps=1)  # frame by frame: pieces must join exactly
    net = network(write_addon(tmp_path / "a", model, max_length=4))
    net.recording = True
    frames = np.random.default_rng(3).standard_normal((10, CHANNELS)).astype(np.float32)
    out = net.run({"frames": torch.from_numpy(frames)}, boundaries=[0, 3, 7])["audio"]
    np.testing.assert_allclose(out.numpy(), expected_audio(model, frames), atol=1e-5)
    assert [call.length for call in net.calls] == [3, 4, 3]  # cut at word starts 3 and 7


def test_a_declaration_that_does_not_match_the_model_names_the_key(tmp_path):
    root = write_addon(
        tmp_path / "a",
        vocoder_model(),
        inputs=[
            {"name": "mel", "shape": ["batch", "length", CHANNELS]},
            {"name": "mask", "shape": ["batch", "length"]},
        ],
    )
    with pytest.raises(AddonError) as caught:
        network(root)
    assert "networks.vocoder.inputs" in str(caught.value)
    assert "'frames'" in str(caught.value)


def test_a_static_shape_placement_is_refused_for_onnx_naming_the_key(tmp_path):
    root = write_addon(tmp_path / "a", vocoder_model())
    with pytest.raises(AddonError) as caught:
        network(root, shapes={"kind": "static", "sizes": [32, 64]})
    assert "shapes" in str(caught.value) and "ONNX" in str(caught.value)


def test_a_gpu_placement_without_a_cuda_onnxruntime_fails_naming_the_device(tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: the placement is valid here")
    net = network(write_addon(tmp_path / "a", vocoder_model()), device="cuda")
    with pytest.raises(ValueError) as caught:
        net.ready()
    assert "cuda" in str(caught.value) and "CUDA execution provider" in str(caught.value)


def test_external_data_inside_the_addon_loads_and_gives_the_same_audio(tmp_path):
    model = vocoder_model()
    root = tmp_path / "a"
    root.mkdir()
    onnx.save_model(
        model,
        root / "vocoder.onnx",
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    write_addon(root)
    frames = np.ones((4, CHANNELS), dtype=np.float32)
    out = network(root).run({"frames": torch.from_numpy(frames)})["audio"]
    # Saving moved the model's weight out; the same weight, kept inline, is the reference.
    np.testing.assert_allclose(out.numpy(), expected_audio(vocoder_model(), frames), atol=1e-5)


# --- planted unsafe models -------------------------------------------------------------------


def external(model: onnx.ModelProto, location: str, offset: int = 0, length: int | None = None):
    """Point the weight at external data `location` (written as the model would name it)."""
    tensor = next(t for t in model.graph.initializer if t.name == "weight")
    size = len(tensor.raw_data) or tensor.ByteSize()
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (
        ("location", location),
        ("offset", str(offset)),
        ("length", str(length or size)),
    ):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return model


def test_external_data_at_an_absolute_path_is_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    root = tmp_path / "addon"
    root.mkdir()
    onnx.save_model(external(vocoder_model(), str(secret)), root / "m.onnx")
    refused(root / "m.onnx", root, "tensor 'weight'", "relative path inside the addon")


def test_external_data_that_climbs_out_with_dotdot_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    root = tmp_path / "addon"
    root.mkdir()
    onnx.save_model(external(vocoder_model(), "../secret.bin"), root / "m.onnx")
    refused(root / "m.onnx", root, "'../secret.bin'", "relative path inside the addon")


def test_external_data_through_a_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4096)
    root = tmp_path / "addon"
    root.mkdir()
    os.symlink(tmp_path / "secret.bin", root / "weights.bin")
    onnx.save_model(external(vocoder_model(), "weights.bin"), root / "m.onnx")
    refused(root / "m.onnx", root, "resolves outside the addon folder")


def test_a_model_file_that_is_a_symlink_out_of_the_folder_is_refused(tmp_path):
    onnx.save_model(vocoder_model(), tmp_path / "elsewhere.onnx")
    root = tmp_path / "addon"
    root.mkdir()
    os.symlink(tmp_path / "elsewhere.onnx", root / "m.onnx")
    refused(root / "m.onnx", root, "resolves outside the addon folder")


def test_external_data_past_the_end_of_its_file_is_refused(tmp_path):
    root = tmp_path / "addon"
    root.mkdir()
    (root / "weights.bin").write_bytes(b"\0" * 16)
    onnx.save_model(external(vocoder_model(), "weights.bin", offset=8, length=192), root / "m.onnx")
    refused(root / "m.onnx", root, "outside the file")


def test_an_operator_from_a_custom_domain_is_refused_before_onnxruntime_sees_it(tmp_path):
    root = tmp_path / "addon"
    root.mkdir()
    onnx.save_model(vocoder_model(domain="com.example.payload"), root / "m.onnx")
    refused(root / "m.onnx", root, "com.example.payload", "custom-op library")


def test_a_custom_operator_hidden_in_a_subgraph_is_refused(tmp_path):
    inner = helper.make_graph(
        [helper.make_node("Payload", ["c"], ["out"], domain="com.example.payload")],
        "then",
        [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])],
    )
    clean = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["out"])],
        "else",
        [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])],
    )
    nodes = [
        helper.make_node(
            "Constant", [], ["c"], value=numpy_helper.from_array(np.ones(1, np.float32))
        ),
        helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(True))),
        helper.make_node("If", ["cond"], ["y"], then_branch=inner, else_branch=clean),
    ]
    graph = helper.make_graph(
        nodes, "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    root = tmp_path / "addon"
    root.mkdir()
    onnx.save_model(model, root / "m.onnx")
    refused(root / "m.onnx", root, "then_branch", "com.example.payload")


def test_a_file_that_is_not_an_onnx_model_is_refused(tmp_path):
    import pickle

    root = tmp_path / "addon"
    root.mkdir()
    (root / "m.onnx").write_bytes(pickle.dumps({"not": "a model"}) + b"\xff" * 64)
    refused(root / "m.onnx", root, "not an ONNX model")


def test_size_limits_are_enforced_before_reading(tmp_path, monkeypatch):
    root = tmp_path / "addon"
    root.mkdir()
    onnx.save_model(vocoder_model(), root / "m.onnx")
    monkeypatch.setattr(onnx_file, "MAX_MODEL_BYTES", 100)
    refused(root / "m.onnx", root, "larger than any ONNX model")
    monkeypatch.undo()
    onnx.save_model(
        vocoder_model(),
        root / "x.onnx",
        save_as_external_data=True,
        location="w.bin",
        size_threshold=0,
    )
    monkeypatch.setattr(onnx_file, "MAX_EXTERNAL_BYTES", 16)
    refused(root / "x.onnx", root, "above the limit")


def test_an_unsafe_network_fails_addon_validation_naming_the_network(tmp_path):
    from voicestack.runtime.validate import validate_addon

    root = write_addon(tmp_path / "a", vocoder_model(domain="com.example.payload"))
    problems = validate_addon(root)
    assert problems and problems[0].key == "networks.vocoder.file"
    assert "com.example.payload" in problems[0].message
