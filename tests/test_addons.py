"""Addons are validated once at load, with every problem named by its key."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
from voicestack.addons.inspect import inspect_addon
from voicestack.addons.loader import AddonError, load_addon
from voicestack.addons.recipes.test_voices import TEST_VOICES_VERSION
from voicestack.addons.search_path import find_voice, find_voices
from voicestack.runtime.validate import validate_addon


@pytest.fixture
def addon_copy(voices_dir: Path, tmp_path: Path):
    def copy(name: str = "test-duration") -> Path:
        dest = tmp_path / name
        shutil.copytree(voices_dir / name, dest)
        return dest

    return copy


def edit(folder: Path, change) -> None:
    data = json.loads((folder / "addon.json").read_text())
    change(data)
    (folder / "addon.json").write_text(json.dumps(data))


@pytest.mark.parametrize("name", ["test-duration", "test-attention"])
def test_the_test_voices_validate_cleanly(voices_dir, name):
    assert validate_addon(voices_dir / name) == []


def test_every_config_problem_is_reported_with_its_key(addon_copy):
    folder = addon_copy()

    def break_it(d):
        d["audio"]["sample_rate"] = -1
        del d["audio"]["n_mels"]
        d["colour"] = "blue"
        d["symbols"].append(d["symbols"][3])
        d["networks"]["decoder"]["file"] = "missing.pt2"

    edit(folder, break_it)
    problems = {p.key: p.message for p in validate_addon(folder)}
    assert problems["audio.sample_rate"] == "Input should be greater than 0"
    assert problems["audio.n_mels"] == "missing required key"
    assert problems["colour"] == "unknown key"
    assert problems["symbols"].startswith("Value error, symbols repeat:")


def test_a_network_file_that_is_not_there_is_named(addon_copy):
    folder = addon_copy()
    edit(folder, lambda d: d["networks"]["decoder"].update(file="missing.pt2"))
    assert [str(p) for p in validate_addon(folder)] == [
        "networks.decoder.file: file 'missing.pt2' is not in the addon folder"
    ]


def test_a_network_whose_inputs_differ_from_the_declaration_is_refused(addon_copy):
    folder = addon_copy()

    def rename(d):
        d["networks"]["decoder"]["inputs"][0]["name"] = "hidden"
        d["networks"]["vocoder"]["outputs"][0]["shape"] = ["batch", "length", 1]

    edit(folder, rename)
    problems = [str(p) for p in validate_addon(folder)]
    assert (
        "networks.decoder.inputs: declared ['hidden', 'mask'], the archive takes ['frames', 'mask']"
        in problems
    )
    assert "networks.vocoder.outputs.audio: declared rank 3, the archive has 2" in problems


def test_a_format_version_this_loader_does_not_read_is_refused(addon_copy):
    folder = addon_copy()
    edit(folder, lambda d: d.update(format_version=99))
    with pytest.raises(
        AddonError, match="format_version: Value error, format_version 99 is not supported"
    ):
        load_addon(folder)


def test_stack_problems_are_reported_by_validate(addon_copy):
    folder = addon_copy()
    edit(folder, lambda d: d["stack"].append({"type": "Reverb"}))
    (problem,) = validate_addon(folder)
    assert problem.key == "stack[2]" and "unknown block type 'Reverb'" in problem.message


def test_an_archive_that_would_unpickle_code_is_reported_not_loaded(addon_copy, tmp_path):
    folder = addon_copy()
    (folder / "vocoder.pt2").write_bytes(pickle.dumps({"not": "a network"}))
    (problem,) = validate_addon(folder)
    assert problem.key == "networks.vocoder.file" and "pickle" in problem.message


def test_invalid_json_is_one_clear_problem(addon_copy):
    folder = addon_copy()
    (folder / "addon.json").write_text("{ not json")
    (problem,) = validate_addon(folder)
    assert problem.key == "addon.json" and problem.message.startswith("not valid JSON")


def test_inspect_shows_networks_shapes_symbols_and_stack_as_a_tree(voices_dir):
    text = inspect_addon(voices_dir / "test-duration")
    assert f"test-duration {TEST_VOICES_VERSION} (duration, en-US" in text
    assert "decoder [decoder] decoder.pt2" in text and "receptive field ±6 frames" in text
    assert (
        "in  symbols: int64[batch, length]" in text
        and "out audio: float32[batch, length*256]" in text
    )
    assert "[0] StreamablePipeline" in text and "sequence_block: Encoders" in text
    assert "stack[1]: Decoder" in text and "[1] Vocoder" in text
    assert "symbols (" in text


def test_voices_are_found_on_the_search_path(voices_dir, monkeypatch):
    monkeypatch.setenv("VOICESTACK_ADDONS", str(voices_dir))
    found = {v.name: v for v in find_voices()}
    assert found["test-duration"].architecture == "duration"
    assert found["test-attention"].path == (voices_dir / "test-attention").resolve()
    with pytest.raises(LookupError, match=r"unknown voice 'nope' \(known: .*test-duration"):
        find_voice("nope")


def test_with_no_voice_installed_the_test_voices_are_built_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setattr("voicestack.addons.search_path.BUNDLED", tmp_path / "none")
    monkeypatch.setattr("voicestack.addons.search_path.PACKAGED_PIPER_VOICES", {})
    monkeypatch.delenv("VOICESTACK_ADDONS", raising=False)
    monkeypatch.setenv("VOICESTACK_CACHE", str(tmp_path / "cache"))
    voices = find_voices()
    assert sorted(v.name for v in voices) == ["test-attention", "test-duration"]
    assert all(str(v.path).startswith(str(tmp_path / "cache")) for v in voices)
    assert validate_addon(voices[0].path) == []
