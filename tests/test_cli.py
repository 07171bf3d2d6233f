"""The `voicestack` command, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest


def voicestack(
    *args: str, env_addons: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if env_addons is not None:
        env["VOICESTACK_ADDONS"] = str(env_addons)
    cmd = [sys.executable, "-m", "voicestack.cli.main", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed: {result.stderr}")
    return result


def test_voices_json_lists_name_architecture_and_path(voices_dir):
    voices = {
        v["name"]: v
        for v in json.loads(voicestack("voices", "--json", env_addons=voices_dir).stdout)
    }
    assert voices["test-duration"]["architecture"] == "duration"
    assert voices["test-attention"]["architecture"] == "attention"
    assert Path(voices["test-attention"]["path"]) == (voices_dir / "test-attention").resolve()


@pytest.mark.parametrize("name", ["test-duration", "test-attention"])
def test_synth_writes_a_playable_wav(voices_dir, tmp_path, name):
    out = tmp_path / "hello.wav"
    result = voicestack(
        "synth", "--voice", name, "--text", "Hello there.", "-o", str(out), env_addons=voices_dir
    )
    assert "first chunk after" in result.stderr
    with wave.open(str(out)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050)
        assert w.getnframes() > 22050 // 10


def test_synth_of_an_unknown_voice_names_the_known_ones(voices_dir, tmp_path):
    result = voicestack(
        "synth",
        "--voice",
        "nope",
        "--text",
        "Hi.",
        "-o",
        str(tmp_path / "x.wav"),
        env_addons=voices_dir,
        check=False,
    )
    assert (
        result.returncode == 2
        and "unknown voice 'nope'" in result.stderr
        and "test-duration" in result.stderr
    )


def test_validate_exits_0_on_a_good_addon_and_1_with_every_problem(voices_dir, tmp_path):
    assert voicestack("addon", "validate", str(voices_dir / "test-duration")).returncode == 0
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "addon.json").write_text(
        json.dumps({"format_version": 1, "name": "Bad Name", "audio": {}})
    )
    result = voicestack("addon", "validate", str(bad), check=False)
    assert result.returncode == 1
    for key in ("name:", "audio.sample_rate:", "version:", "networks:", "stack:", "symbols:"):
        assert key in result.stderr


def test_inspect_prints_the_tree(voices_dir):
    out = voicestack("addon", "inspect", str(voices_dir / "test-attention")).stdout
    assert (
        "attention_decoder [attention_decoder]" in out
        and "streamable_block: AttentionDecoder" in out
    )
