"""Streaming equals one-shot: the concatenated stream is the audio of the same networks run on
the whole utterance at once, for both architectures and any chunk size. This is what keeps
clicks out of chunk seams.

The one-shot reference below calls the exported networks directly (torch.export.load), not
through any block, so it checks the blocks rather than repeating them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from voicestack.addons.build_env import AddonBuildEnv
from voicestack.runtime.local import synthesize, synthesize_stream

from .conftest import voice_with

WORDS = [
    "hello",
    "there",
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "seven",
    "apples",
    "why",
    "not",
    "speech",
    "is",
    "made",
    "of",
    "sounds",
    "Anna",
    "Bob",
]
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(lambda w: " ".join(w) + ".")


def _net(addon, name):
    return torch.export.load(addon.root / addon.config.networks[name].file).module()


def one_shot_duration(addon, symbols: torch.Tensor) -> np.ndarray:
    x, mask = symbols.unsqueeze(0), torch.ones(1, symbols.shape[0])
    with torch.inference_mode():
        encodings = _net(addon, "text_encoder")(x, mask)[0]
        durations = _net(addon, "duration_predictor")(x, mask)[0]
        frames = torch.repeat_interleave(
            encodings, torch.round(durations).clamp(min=0).long(), dim=0
        )
        ones = torch.ones(1, frames.shape[0])
        mel = _net(addon, "decoder")(frames.unsqueeze(0), ones)
        return _net(addon, "vocoder")(mel, ones)[0].numpy()


def one_shot_attention(addon, symbols: torch.Tensor) -> np.ndarray:
    x, mask = symbols.unsqueeze(0), torch.ones(1, symbols.shape[0])
    step = _net(addon, "attention_decoder")
    frames = []
    with torch.inference_mode():
        memory = _net(addon, "encoder")(x, mask)
        frame, hidden, position = torch.zeros(1, 80), torch.zeros(1, 64), torch.zeros(1, 1)
        for _ in range(min(4000, int(12 * symbols.shape[0]))):
            frame, stop, hidden, position, _ = step(frame, hidden, position, memory, mask)
            frames.append(frame)
            if stop.item() > 0:  # sigmoid(stop) > 0.5
                break
        mel = torch.stack(frames, dim=1)
        return _net(addon, "vocoder")(mel, torch.ones(1, mel.shape[1]))[0].numpy()


def symbols_of(voice, text: str) -> torch.Tensor:
    (sentence,) = voice.sentences(text)
    return voice.frontend({"text": sentence})["symbols"]


SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    text=texts,
    chunk=st.integers(1, 48),
    first=st.integers(1, 16),
    growth=st.sampled_from([None, 1.5, 2.0]),
    extra=st.integers(0, 4),
    dec_extra=st.integers(0, 4),
)
def test_duration_voice_stream_equals_one_shot(
    duration_addon, text, chunk, first, growth, extra, dec_extra
):
    stack = [
        {
            "type": "StreamablePipeline",
            "sequence_block": {"type": "Encoders"},
            "streamable_block": {
                "type": "StreamableStack",
                "stack": [
                    {
                        "type": "Upsampler",
                        "chunk_frames": chunk,
                        "first_chunk_frames": first,
                        "growth": growth,
                    },
                    {"type": "Decoder", "context_frames": 6 + dec_extra},
                ],
            },
        },
        {"type": "Vocoder", "context_frames": 3 + extra},
    ]
    voice = voice_with(duration_addon, stack=stack)
    chunks = list(synthesize_stream(voice, text))
    streamed = np.concatenate([c.core[:, 0].numpy() for c in chunks])
    reference = one_shot_duration(duration_addon, symbols_of(voice, text))
    assert streamed.shape == reference.shape
    np.testing.assert_allclose(streamed, reference, atol=1e-4)
    assert len(chunks) >= 1 and chunks[-1].is_last


def test_chunks_grow_from_the_first_size_to_the_chunk_size(duration_addon):
    """A small first chunk for an early first sound, then ever larger ones (fewer hops, less
    context recomputed), never larger than chunk_frames."""
    from voicestack.blocks.library.upsampler import Upsampler

    config = Upsampler.Config(chunk_frames=96, first_chunk_frames=16, growth=2)
    upsampler = Upsampler(config, AddonBuildEnv(duration_addon))
    features = {"encodings": torch.zeros(40, 4), "durations": torch.full((40,), 10.0)}
    features["durations"][-1] = 15.0  # 405 frames: the last chunk has what is left
    sizes = [c.length for c in upsampler.stream(features, None)]
    assert sizes == [16, 32, 64, 96, 96, 96, 5]


@SETTINGS
@given(text=texts, chunk=st.integers(1, 40), extra=st.integers(0, 4))
def test_attention_voice_stream_equals_one_shot(attention_addon, text, chunk, extra):
    stack = [
        {
            "type": "StreamablePipeline",
            "sequence_block": {"type": "Encoders"},
            "streamable_block": {"type": "AttentionDecoder", "chunk_frames": chunk},
        },
        {"type": "Vocoder", "context_frames": 3 + extra},
    ]
    voice = voice_with(attention_addon, stack=stack)
    streamed = np.concatenate([c.core[:, 0].numpy() for c in synthesize_stream(voice, text)])
    reference = one_shot_attention(attention_addon, symbols_of(voice, text))
    assert streamed.shape == reference.shape
    np.testing.assert_allclose(streamed, reference, atol=1e-4)


@pytest.mark.parametrize("addon_name", ["duration_addon", "attention_addon"])
def test_the_first_sentence_is_heard_before_the_second_is_encoded(addon_name, request):
    voice = voice_with(request.getfixturevalue(addon_name))
    encoders = voice.stack.stack[0].sequence_block.blocks
    events: list[str] = []
    for encoder in encoders:
        run = encoder.network.run
        encoder.network.run = lambda inputs, boundaries=None, run=run: (
            events.append("encode"),
            run(inputs, boundaries),
        )[1]
    stream = synthesize_stream(voice, "First sentence here. Second one follows. And a third.")
    next(stream)
    events.append("audio")
    list(stream)
    per_sentence = len(encoders)
    assert events.index("audio") == per_sentence  # only the first sentence's encoders ran
    assert events.count("encode") == 3 * per_sentence


def test_the_one_shot_api_is_the_stream_concatenated(duration_addon):
    voice = voice_with(duration_addon)
    text = "One sentence. Then another!"
    chunks = list(synthesize_stream(voice, text))
    assert sum(c.is_last for c in chunks) == 2  # one last chunk per sentence
    np.testing.assert_array_equal(
        synthesize(voice, text), np.concatenate([c.core[:, 0].numpy() for c in chunks])
    )


def test_gain_scales_and_diagnostics_pass_the_stream_through_unchanged(duration_addon):
    base = voice_with(duration_addon)
    stack = base.addon.config.stack
    plain = synthesize(base, "Hello there.")
    diag = voice_with(
        duration_addon,
        stack=stack[:1]
        + [{"type": "Diagnostics", "label": "mel"}]
        + stack[1:]
        + [{"type": "Gain", "gain_db": -6.0}, {"type": "Diagnostics"}],
    )
    out = synthesize(diag, "Hello there.")
    np.testing.assert_allclose(out, plain * 10 ** (-6 / 20), atol=1e-6)
    mel_records = list(diag.stack.stack[1].records)
    audio_records = list(diag.stack.stack[-1].records)
    assert [r.index for r in mel_records] == list(range(len(mel_records)))
    assert mel_records[-1].is_last and mel_records[0].channels == 80
    assert sum(r.frames for r in audio_records) == out.size
    assert all(r.upstream_s >= 0 and r.peak >= r.rms >= 0 for r in audio_records)
