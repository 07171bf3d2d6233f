"""What a request may ask of a voice besides its text (blocks/core/request.py): a speed where the
voice has durations to scale, a speaker where it has speakers. What a voice cannot do is a
RequestError naming the field and the voice, in the local runtime as in the service (whose
tests check the HTTP 400), never silently ignored."""

from __future__ import annotations

import math

import pytest
from voicestack.blocks.errors import RequestError
from voicestack.cli.main import main
from voicestack.runtime.local import synthesize
from voicestack.runtime.voice import build_voice

TEXT = "Hello there, how are you today?"


def test_twice_the_speed_is_half_the_length_on_a_duration_voice(duration_addon):
    voice = build_voice(duration_addon)
    normal = synthesize(voice, TEXT).size
    # Durations are divided by the speed and rounded per phoneme: half, within rounding.
    assert abs(synthesize(voice, TEXT, speed=2.0).size / normal - 0.5) < 0.06
    assert abs(synthesize(voice, TEXT, speed=0.5).size / normal - 2.0) < 0.12


def test_a_voice_without_durations_refuses_a_speed_naming_itself(attention_addon):
    voice = build_voice(attention_addon)
    with pytest.raises(RequestError) as caught:
        synthesize(voice, TEXT, speed=1.5)
    assert caught.value.field == "speed"
    assert f"{voice.name!r} cannot change its speed" in str(caught.value)
    assert synthesize(voice, "Hi.", speed=1.0).size > 0  # the default is no request at all


@pytest.mark.parametrize("speed", [0.1, 4.5, math.nan, math.inf])
def test_a_speed_outside_a_quarter_to_four_is_refused(duration_addon, speed):
    with pytest.raises(RequestError, match="speed: .* is outside 0.25 to 4.0"):
        synthesize(build_voice(duration_addon), TEXT, speed=speed)


def test_a_one_speaker_voice_refuses_a_speaker(duration_addon):
    with pytest.raises(RequestError, match="has one speaker"):
        synthesize(build_voice(duration_addon), TEXT, speaker="alice")


def test_the_cli_says_what_a_voice_cannot_do(voices_dir, tmp_path, capsys):
    out = str(tmp_path / "x.wav")
    argv = ["synth", "--voice", str(voices_dir / "test-attention"), "--text", "Hi.", "-o", out]
    assert main([*argv, "--speed", "2"]) == 2
    assert "speed: voice 'test-attention' cannot change its speed" in capsys.readouterr().err
    assert main([*argv, "--speaker", "bob"]) == 2
    assert "has one speaker" in capsys.readouterr().err


def test_a_request_error_keeps_its_field_across_processes():
    import pickle

    error = pickle.loads(pickle.dumps(RequestError("speaker", "no such speaker")))
    assert (error.field, str(error), error.status) == (
        "speaker",
        "speaker: no such speaker",
        400,
    )
