"""The bundled reference voices and the data recipe they are trained from.

Fast checks only (seconds): the intelligibility measures are bench/quality.py's job.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from voicestack.addons.loader import load_addon
from voicestack.addons.recipes import corpus
from voicestack.addons.recipes.corpus import PhonemeEvent, align, frame_count
from voicestack.addons.search_path import BUNDLED
from voicestack.blocks.core.chunk import Chunk
from voicestack.runtime.local import synthesize
from voicestack.runtime.validate import validate_addon
from voicestack.runtime.voice import build_voice

REFERENCE_VOICES = ["espeak-duration", "espeak-attention"]
SENTENCE = "Where did Maria put the 7 red books on Tuesday?"
MAX_ADDON_BYTES = 15 * 1024 * 1024


@pytest.fixture(scope="module")
def espeak_reference() -> corpus.Utterance:
    utterances, stats = corpus.make_utterances([SENTENCE], "en-us", keep_audio=True)
    assert stats["skipped"] == 0
    return utterances[0]


@pytest.mark.parametrize("name", REFERENCE_VOICES)
def test_bundled_voice_validates_and_fits(name: str) -> None:
    folder = BUNDLED / name
    assert validate_addon(folder) == []
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    assert size <= MAX_ADDON_BYTES, f"{name} is {size / 2**20:.1f} MB"


@pytest.mark.parametrize("name", REFERENCE_VOICES)
def test_bundled_voice_speaks_with_espeak_timing(
    name: str, espeak_reference: corpus.Utterance
) -> None:
    torch.set_num_threads(1)
    voice = build_voice(load_addon(BUNDLED / name))
    audio = synthesize(voice, SENTENCE)
    assert voice.sample_rate == corpus.SAMPLE_RATE
    assert np.isfinite(audio).all()
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms > 0.01, f"near silence (rms {rms:.4f})"
    assert np.abs(audio).max() <= 1.0
    # Trained on espeak-ng's timing: the length should be close to espeak-ng's own.
    ratio = audio.shape[0] / espeak_reference.audio.shape[0]
    assert 0.8 < ratio < 1.25, (
        f"{audio.shape[0]} samples vs espeak-ng's {espeak_reference.audio.shape[0]}"
    )


def test_corpus_durations_sum_to_the_audio_frames(espeak_reference: corpus.Utterance) -> None:
    u = espeak_reference
    samples = u.audio.shape[0]
    assert u.durations.shape == u.symbols.shape
    assert int(u.durations.sum()) == frame_count(samples) == u.mel.shape[0]
    assert (u.durations >= 0).all()
    assert u.mel.shape[1] == corpus.N_MELS


def test_corpus_symbols_are_the_serving_front_end_s(espeak_reference: corpus.Utterance) -> None:
    from voicestack.addons.build_env import AddonBuildEnv
    from voicestack.blocks.text.frontend import Frontend

    frontend = Frontend(Frontend.Config(language="en-us"), AddonBuildEnv())
    served = frontend({"text": frontend.sentences(SENTENCE)[0]})["symbols"]
    assert torch.equal(served, espeak_reference.symbols)


def test_align_gives_pauses_to_punctuation_and_merges_extra_phonemes() -> None:
    symbols = ["h", "ˈ", "aɪ", ",", " ", "j", "uː", "."]
    events = [
        PhonemeEvent("h", 256),
        PhonemeEvent("aɪ", 1280),
        PhonemeEvent("", 2560),  # pause after the comma
        PhonemeEvent("j", 3840),
        PhonemeEvent("ʔ", 4352),  # not in the front end's symbols: merged into "j"
        PhonemeEvent("uː", 5120),
        PhonemeEvent("", 6400),  # final pause
    ]
    samples = 7680
    result = align(symbols, events, samples)
    assert sum(result.durations) == frame_count(samples)
    by_symbol = dict(zip(range(len(symbols)), result.durations, strict=True))
    assert by_symbol[1] == 0 and by_symbol[4] == 0  # stress mark, word separator
    assert by_symbol[3] == 5  # the comma holds the pause, 2560..3840
    assert by_symbol[5] == 5  # "j" 3840..5120, its extra phoneme included
    assert result.matched == 4 and result.extra == 1 and result.missing == 0


def test_heldout_sentences_are_fixed_and_unseen_in_training() -> None:
    heldout = corpus.sentences("heldout", 250)
    assert len(set(heldout)) == 250
    assert heldout == corpus.sentences("heldout", 250)
    assert not set(heldout) & set(corpus.sentences("train", 500))


def test_no_generated_corpus_in_the_repository() -> None:
    root = Path(__file__).resolve().parent.parent
    assert not list(root.glob("addons/**/*-en-us.pt"))


def test_duration_voice_mel_stream_equals_one_shot() -> None:
    """The trained decoder's declared receptive field is right: its mel, streamed in small
    chunks with that much context, equals one call on the whole sentence."""
    from tests.conftest import with_config

    addon = load_addon(BUNDLED / "espeak-duration")
    stack = addon.config.model_dump(mode="json")["stack"]
    stack[0]["streamable_block"]["stack"][0].update(chunk_frames=7, first_chunk_frames=3)
    voice = build_voice(with_config(addon, stack=stack))
    features = voice.frontend({"text": "Is the tiny lamp in Tokyo really broken?"})
    pipeline = voice.stack.stack[0]
    streamed = torch.cat([c.core for c in pipeline.stream(features, None)])

    symbols = features["symbols"].unsqueeze(0)
    mask = torch.ones_like(symbols, dtype=torch.float32)
    nets = {
        n: torch.export.load(addon.root / s.file).module() for n, s in addon.config.networks.items()
    }
    with torch.inference_mode():
        encodings = nets["text_encoder"](symbols, mask)[0]
        frames = torch.round(nets["duration_predictor"](symbols, mask)[0]).clamp(min=0).long()
        upsampled = torch.repeat_interleave(encodings, frames, dim=0).unsqueeze(0)
        one_shot = nets["decoder"](upsampled, torch.ones(1, upsampled.shape[1]))[0]
    assert streamed.shape == one_shot.shape
    assert torch.allclose(streamed, one_shot, atol=1e-4)


def test_duration_voice_decoder_batches_chunks_of_different_streams() -> None:
    """The reference decoder is exported with a dynamic batch, so the serving layer's
    cross-request batching runs one call for many streams' chunks, each getting what it gets
    alone (padding masked)."""
    from voicestack.blocks.library.network_chunks import apply_batch

    voice = build_voice(load_addon(BUNDLED / "espeak-duration"))
    step = voice.plan.segments[0].steps[0]
    decoder, keep = step.block, step.keep
    assert decoder.network.max_batch >= 16
    g = torch.Generator().manual_seed(0)
    need = decoder.context[0] + keep[0]
    chunks = [
        Chunk(torch.randn(n + 2 * need, 192, generator=g), start=need + i, left=need, right=need)
        for i, n in enumerate([3, 32, 17, 40])
    ]
    alone = [decoder.apply(c, keep) for c in chunks]
    decoder.network.recording, decoder.network.calls = True, []
    try:
        together = apply_batch([(decoder, c, keep) for c in chunks])
    finally:
        decoder.network.recording = False
    assert {call.shapes["frames"][0] for call in decoder.network.calls} == {4}
    for a, b in zip(alone, together, strict=True):
        assert torch.allclose(a.frames, b.frames, atol=1e-4), (a.frames - b.frames).abs().max()


def test_griffin_lim_voice_batched_beside_other_streams_stays_within_the_stated_snr() -> None:
    """espeak-duration's decoder chunks, each run in one call with other streams' chunks as the
    service batches them, give audio within ITERATIVE_SAME_TEXT_SNR_DB of the stream made alone
    (tests/same_audio.py), whatever the batch beside them."""
    from voicestack.runtime.pcm import pcm16

    from tests.same_audio import (
        ITERATIVE_SAME_TEXT_SNR_DB,
        batch_beside_other_streams,
        same_audio,
        snr_db,
    )

    voice = build_voice(load_addon(BUNDLED / "espeak-duration"))
    text = "Hello there. How are you?"
    alone = np.frombuffer(pcm16(synthesize(voice, text, seed=1)), "<i2")
    decoder = voice.plan.segments[0].steps[0].block
    assert type(decoder).__name__ == "Decoder"
    batches = batch_beside_other_streams(decoder)
    batched = np.frombuffer(pcm16(synthesize(voice, text, seed=1)), "<i2")
    assert batched.shape == alone.shape
    assert batches, "the decoder's chunks went through the batched call"
    assert snr_db(batched, alone) >= ITERATIVE_SAME_TEXT_SNR_DB
    # A one-sample shift, the smallest real fault, is far outside it.
    assert not same_audio(np.roll(alone, 1), alone, iterative_vocoder=True)
