"""Piper voices of every shape import with one command. A multi-speaker voice takes a
request's speaker (by name or id), whose embedding conditions the duration predictor, the
flow and the generator as in Piper's own model, and refuses a speaker it lacks, naming its
speakers; low and high quality voices (other rates, another generator) stream as medium ones
do. The voices are Piper's model with random weights (tests/piper_voices.py): joe, a
one-speaker medium voice, is the only trained voice installable offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from voicestack.addons.loader import load_addon, read_config
from voicestack.addons.piper_import import import_piper
from voicestack.blocks.errors import RequestError
from voicestack.cli.main import main
from voicestack.runtime.local import synthesize
from voicestack.runtime.plan import stream_local
from voicestack.runtime.voice import build_voice

from .piper_voices import SPEAKERS, build_multispeaker_piper, build_piper_voice

IDS = [1, 20, 59, 3, 25, 61, 14, 3, 39, 121, 27, 3, 32, 102, 35, 10, 2]  # ^h…$, Piper's ids


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    error = np.sum((reference - other) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / max(error, 1e-30)))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_multispeaker_piper(tmp_path_factory.mktemp("trio-model"))


@pytest.fixture(scope="module")
def trio(model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trio") / "trio"
    assert main(["addon", "import", "piper", str(model), "-o", str(out)]) == 0
    return out


def quiet(trio: Path, dest: Path) -> Path:
    """The addon with its noise scales at 0, as Piper runs with scales (0, 1, 0)."""
    import shutil

    shutil.copytree(trio, dest)
    config = json.loads((dest / "addon.json").read_text())
    config["stack"][0]["streamable_block"]["stack"][0]["prior"]["noise_scale"] = 0.0
    config["networks"]["encoder"]["inputs"][2]["noise"] = 0.0
    (dest / "addon.json").write_text(json.dumps(config))
    return dest


def streamed(voice, speaker: int, seed: int = 0) -> tuple[np.ndarray, int]:
    features = {
        "symbols": torch.tensor(IDS),
        "word_starts": torch.tensor([0]),
        "seed": seed,
        "speaker": torch.tensor(speaker),
        "speed": 1.0,
    }
    chunks = list(stream_local(voice.plan, features))
    return np.concatenate([c.core[:, 0].numpy() for c in chunks]), len(chunks)


def test_the_addon_lists_the_speakers_and_carries_the_speaker_to_every_network(trio):
    config = read_config(trio)
    assert config.speakers == SPEAKERS
    encoder = config.networks["encoder"]
    assert [t.name for t in encoder.inputs] == ["symbols", "mask", "dp_noise", "speaker"]
    # The id rides one channel after the latent ones, through the upsampler to both decoders.
    assert encoder.outputs[0].shape[-1] == 2 * 16 + 1
    assert config.networks["decoder"].inputs[0].shape[-1] == 16 + 1
    assert config.networks["vocoder"].inputs[0].shape[-1] == 16 + 1
    assert config.stack[0]["streamable_block"]["stack"][0]["prior"]["carry"] == 1


def test_with_the_noise_off_each_speakers_stream_equals_the_whole_model(model, trio, tmp_path):
    voice = build_voice(load_addon(quiet(trio, tmp_path / "quiet")))
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    heard = {}
    for name, sid in SPEAKERS.items():
        (whole,) = session.run(
            None,
            {
                "input": np.array([IDS]),
                "input_lengths": np.array([len(IDS)]),
                "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32),
                "sid": np.array([sid]),
            },
        )
        ours, chunks = streamed(voice, sid)
        assert chunks > 1  # streamed, not one call
        assert ours.shape == whole.reshape(-1).shape
        # Float rounding of differently cut convolutions only.
        assert snr_db(whole.reshape(-1), ours) >= 40
        heard[name] = ours
    # The speaker changes the audio (its durations, so its length, or its samples).
    alice, bob = heard["alice"], heard["bob"]
    assert alice.shape != bob.shape or snr_db(alice, bob) < 20


def test_a_speaker_is_asked_for_by_name_or_id(trio):
    voice = build_voice(load_addon(trio))
    assert voice.speakers == ["alice", "bob", "carol"]
    by_name = synthesize(voice, "Hello there.", seed=3, speaker="bob")
    by_id = synthesize(voice, "Hello there.", seed=3, speaker=1)
    first = synthesize(voice, "Hello there.", seed=3)
    np.testing.assert_array_equal(by_name, by_id)
    np.testing.assert_array_equal(first, synthesize(voice, "Hello there.", seed=3, speaker=0))


@pytest.mark.parametrize("speaker", ["dave", 3, -1])
def test_a_speaker_the_voice_lacks_is_refused_naming_its_speakers(trio, speaker):
    voice = build_voice(load_addon(trio))
    with pytest.raises(RequestError) as caught:
        synthesize(voice, "Hello.", speaker=speaker)
    assert caught.value.field == "speaker" and caught.value.status == 400
    assert "alice, bob, carol" in str(caught.value) and "'trio'" in str(caught.value)


def test_speakers_without_names_are_named_by_their_ids(model, tmp_path):
    config = json.loads(Path(f"{model}.json").read_text())
    config["speaker_id_map"] = {"bob": 1}
    (tmp_path / "partial.json").write_text(json.dumps(config))
    out = import_piper(model, tmp_path / "partial.json", tmp_path / "out")
    assert read_config(out).speakers == {"0": 0, "bob": 1, "2": 2}


@pytest.mark.parametrize("quality", ["low", "high"])
def test_piper_voices_of_every_quality_import_and_equal_the_whole_model(quality, tmp_path):
    """Low voices speak at 16 kHz; high ones have another generator (resblock 1, four
    upsampling stages): the cut, the measured receptive fields and the hop follow the model."""
    model = build_piper_voice(tmp_path / "model", quality, {}, quality)
    addon = import_piper(model, None, tmp_path / quality)
    config = read_config(addon)
    assert config.audio.sample_rate == {"low": 16000, "high": 22050}[quality]
    assert config.audio.hop_length == 256 and not config.speakers
    voice = build_voice(load_addon(quiet(addon, tmp_path / "quiet")))
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (whole,) = session.run(
        None,
        {
            "input": np.array([IDS]),
            "input_lengths": np.array([len(IDS)]),
            "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32),
        },
    )
    features = {"symbols": torch.tensor(IDS), "word_starts": torch.tensor([0]), "seed": 0}
    ours = np.concatenate([c.core[:, 0].numpy() for c in stream_local(voice.plan, features)])
    assert ours.shape == whole.reshape(-1).shape
    assert snr_db(whole.reshape(-1), ours) >= 40
