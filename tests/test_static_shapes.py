"""The static shape policy: every network call has an exported size, and the audio matches the
dynamic policy. Switching policies is a placement change only."""

from __future__ import annotations

import numpy as np
import pytest
from voicestack.runtime.local import synthesize

from .conftest import voice_with

ENCODER_SIZES, WINDOW, VOCODER_WINDOW = [16, 32, 64], 48, 40
STATIC = {
    "blocks": {
        "Encoder": {"shapes": {"kind": "static", "sizes": ENCODER_SIZES}},
        "AttentionDecoder": {"shapes": {"kind": "static", "sizes": ENCODER_SIZES}},
        "Decoder": {"shapes": {"kind": "static", "sizes": [WINDOW]}},
        "Vocoder": {"shapes": {"kind": "static", "sizes": [VOCODER_WINDOW]}},
    }
}
ALLOWED = {
    "text_encoder": ENCODER_SIZES,
    "duration_predictor": ENCODER_SIZES,
    "encoder": ENCODER_SIZES,
    "attention_decoder": ENCODER_SIZES,
    "decoder": [WINDOW],
    "vocoder": [VOCODER_WINDOW],
}


def recording(voice):
    networks = voice.networks()
    for n in networks:
        n.recording, n.calls = True, []
    return networks


def length_sizes(network) -> set[int]:
    axes = {t.name: t.length_axis for t in network.spec.inputs if t.length_axis is not None}
    return {
        shape[axes[name]]
        for call in network.calls
        for name, shape in call.shapes.items()
        if name in axes
    }


@pytest.mark.parametrize("addon_name", ["duration_addon", "attention_addon"])
def test_static_calls_use_only_exported_sizes_and_match_dynamic(addon_name, request):
    addon = request.getfixturevalue(addon_name)
    text = "The quick brown fox jumps over the lazy dog."
    dynamic = synthesize(voice_with(addon), text)
    static_voice = voice_with(addon, placement=STATIC)
    networks = recording(static_voice)
    static = synthesize(static_voice, text)
    for network in networks:
        assert network.calls, f"{network.name} was not called"
        assert length_sizes(network) <= set(ALLOWED[network.name]), network.name
    assert static.shape == dynamic.shape
    np.testing.assert_allclose(static, dynamic, atol=1e-4)


def test_dynamic_calls_run_at_the_inputs_own_length(duration_addon):
    voice = voice_with(duration_addon)
    networks = recording(voice)
    synthesize(voice, "The quick brown fox jumps over the lazy dog.")
    encoder = next(n for n in networks if n.name == "text_encoder")
    assert len(length_sizes(encoder)) == 1 and length_sizes(encoder) != set(ENCODER_SIZES)


def test_an_input_past_the_largest_bucket_is_split_at_word_starts(duration_addon):
    text = "Speech is made of sounds and the quick brown fox jumps over the lazy dog seven times before anyone sees it."
    voice = voice_with(duration_addon, placement=STATIC)
    (sentence,) = voice.sentences(text)
    features = voice.frontend({"text": sentence})
    n = features["symbols"].shape[0]
    assert n > max(ENCODER_SIZES)
    encoder = voice.stack.stack[0].sequence_block.blocks[0].network
    encoder.recording, encoder.calls = True, []
    out = voice.stack.stack[0].sequence_block(features)
    assert out["encodings"].shape[0] == n and out["durations"].shape[0] == n
    assert all(call.shapes["symbols"][1] in ENCODER_SIZES for call in encoder.calls)
    assert len(encoder.calls) >= 2
    # the pieces' real lengths add up to the input, and every cut falls on a word start
    real = [call.length for call in encoder.calls]
    assert sum(real) == n
    cuts = np.cumsum(real)[:-1].tolist()
    assert set(cuts) <= set(features["word_starts"].tolist())


def test_a_long_sentence_under_static_shapes_still_makes_audio_close_in_length(duration_addon):
    text = "Speech is made of sounds and the quick brown fox jumps over the lazy dog seven times before anyone sees it."
    dynamic = synthesize(voice_with(duration_addon), text)
    static = synthesize(voice_with(duration_addon, placement=STATIC), text)
    assert abs(static.size - dynamic.size) / dynamic.size < 0.1


def test_warm_up_runs_every_static_size_once(duration_addon):
    voice = voice_with(duration_addon, placement=STATIC)
    decoder = voice.stack.stack[0].streamable_block.stack[1].network
    decoder.recording, decoder.calls = True, []
    decoder.warm_up()
    assert [c.shapes["frames"][1] for c in decoder.calls] == [WINDOW]


def test_a_static_size_the_archive_was_not_exported_for_is_refused_at_load(duration_addon):
    from voicestack.blocks.errors import StackError

    with pytest.raises(
        StackError,
        match=r"static sizes \[9000\] are outside the lengths the archive was exported for \(1\.\.8192\)",
    ):
        voice_with(
            duration_addon,
            placement={"blocks": {"Decoder": {"shapes": {"kind": "static", "sizes": [64, 9000]}}}},
        )
