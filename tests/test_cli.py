"""The `voicestack` command, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
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


def decoded_seconds(path: Path) -> float:
    """The duration of an audio file as FFmpeg decodes it (through PyAV)."""
    import av

    with av.open(io.BytesIO(path.read_bytes())) as container:
        frames = list(container.decode(audio=0))
    return sum(f.samples for f in frames) / frames[0].sample_rate


#: How much longer than the WAV file a decoded file may be, in seconds (tests/test_formats.py,
#: EXTRA_SAMPLES, says why): MP3 up to 3409 samples of delay and padding (0.155 s at 22.05 kHz);
#: Ogg Opus states its length, give or take a sample of resampling; FLAC is exact.
EXTRA_S = {"mp3": (0.0, 0.155), "opus": (-1 / 22050, 1 / 22050), "flac": (0.0, 0.0)}


def test_synth_writes_the_format_its_file_name_asks_for_with_the_wavs_audio(voices_dir, tmp_path):
    voice, text = str(voices_dir / "test-duration"), "Hello there. How are you?"
    wav = tmp_path / "x.wav"
    voicestack("synth", "--voice", voice, "--text", text, "-o", str(wav))
    blob = wav.read_bytes()
    # Written as it was made, and still with the exact sizes in its header.
    riff_size, data_size = struct.unpack("<4xI32xI", blob[:44])
    assert (riff_size, data_size) == (len(blob) - 8, len(blob) - 44)
    with wave.open(str(wav)) as w:
        seconds = w.getnframes() / w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")

    for name, fmt in [("x.mp3", "mp3"), ("x.ogg", "opus"), ("x.audio", "flac")]:
        out = tmp_path / name
        extra = ["--format", fmt] if name == "x.audio" else []
        voicestack("synth", "--voice", voice, "--text", text, "-o", str(out), *extra)
        low, high = EXTRA_S[fmt]
        assert low <= decoded_seconds(out) - seconds <= high, (name, decoded_seconds(out), seconds)
    # FLAC is lossless: the same samples as the WAV file (the voice is deterministic).
    import av

    with av.open(str(tmp_path / "x.audio")) as container:
        assert container.format.name == "flac"
        flac = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    np.testing.assert_array_equal(flac, samples)


def test_synth_to_a_file_of_unknown_extension_fails_before_synthesizing(voices_dir, tmp_path):
    out = tmp_path / "x.m4a"
    result = voicestack(
        "synth",
        "--voice",
        "test-duration",
        "--text",
        "Hi.",
        "-o",
        str(out),
        env_addons=voices_dir,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("voicestack: error: ")
    assert "'" + str(out) + "'" in result.stderr and ".mp3" in result.stderr
    assert "--format" in result.stderr
    assert not out.exists()


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


LONG = " ".join(f"Page {n} begins here, and then it ends." for n in range(1, 7))


def test_synth_reads_a_text_file_and_writes_its_words_with_no_bar_on_a_pipe(voices_dir, tmp_path):
    (tmp_path / "book.txt").write_text(LONG, encoding="utf-8")
    out, words = tmp_path / "book.wav", tmp_path / "words.json"
    result = voicestack(
        "synth",
        "--voice",
        "test-duration",
        "-i",
        str(tmp_path / "book.txt"),
        "-o",
        str(out),
        "--words",
        str(words),
        env_addons=voices_dir,
    )
    # stderr is a pipe here: the one summary line, no progress bar
    assert result.stderr.count("\n") == 1 and "real-time factor" in result.stderr
    spoken = json.loads(words.read_text())
    assert [w["word"] for w in spoken] == [w.strip(",.") for w in LONG.split()]
    with wave.open(str(out)) as w:
        assert spoken[-1]["end_s"] <= w.getnframes() / w.getframerate()


def test_the_progress_bar_counts_characters_audio_and_real_time_factor_on_a_terminal():
    from voicestack.cli.synth import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    progress = Progress(100, rate=1000, stream=screen)
    progress.audio(2500)
    progress.spoken(40)
    progress.close(complete=True)
    shown = screen.getvalue()
    assert "100/100" in shown and "2.5 s audio" in shown and "RTF" in shown
    assert Progress(100, rate=1000, stream=io.StringIO()).bar is None  # not a terminal


def test_the_demo_writes_each_voice_with_the_synth_loop_and_logs_each_chunk(
    duration_addon, tmp_path
):
    """`voicestack demo`'s loop for one voice: the same `write_audio` as `synth`, with a line
    per chunk instead of a bar."""
    from voicestack.cli.synth import ChunkLog, local_events, write_audio
    from voicestack.runtime.voice import build_voice

    voice = build_voice(duration_addon)
    log, path = io.StringIO(), tmp_path / "demo.wav"
    events = local_events(voice, "Hello there. Bye.", None, None, 1.0)
    written = write_audio(
        path, "wav", voice.sample_rate, events, ChunkLog("v", 22050, 0.0, log), 0.0
    )
    lines = log.getvalue().splitlines()
    assert len(lines) == written.chunks >= 2 and lines[0].startswith("v: chunk 0 (")
    with wave.open(str(path)) as w:
        assert w.getnframes() == written.samples
