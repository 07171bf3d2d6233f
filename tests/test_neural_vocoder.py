"""The universal neural vocoder (addons/recipes/vocoder_network.py, trained by
addons/recipes/vocoder.py) as the `Vocoder` block serves it.

Checked on the shipped architecture with seeded random weights (the trained file is not
needed): its inverse STFT is torch.istft's; its declared receptive field is exactly what a
streamed chunk needs, convolutions and window overlap together, so streamed audio equals
one-shot audio; batching and padding do not change an item; and the exported archive passes
the addon safety inspection and validation as it is.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from voicestack.addons.loader import load_addon
from voicestack.addons.recipes import vocoder as recipe
from voicestack.addons.recipes.vocoder_network import InverseSTFT
from voicestack.blocks.core.chunk import Chunk
from voicestack.blocks.library.network_chunks import apply_batch
from voicestack.runtime.validate import validate_addon
from voicestack.runtime.voice import build_voice

from .conftest import voice_with


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = recipe.build_network()
    # The head starts at zero (phase 0, magnitude = the mel prior); random weights everywhere
    # make every frame's phase depend on its neighbours, as a trained network's does.
    torch.nn.init.normal_(net.head.weight, std=0.05)
    return net.eval()


@pytest.fixture(scope="module")
def addon(model, voices_dir, tmp_path_factory):
    """The test duration voice with this vocoder installed by the recipe's `install`."""
    export_dir = tmp_path_factory.mktemp("vocoder-export")
    recipe.export_vocoder(model, export_dir, {"steps": 0})
    folder = tmp_path_factory.mktemp("voices") / "test-duration"
    shutil.copytree(voices_dir / "test-duration", folder)
    recipe.install(folder, export_dir)
    return load_addon(folder)


def mel_of(frames: int, seed: int = 1) -> torch.Tensor:
    """A smooth random log-mel of speech-like level (the network is not trained: any input)."""
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(frames, 80, generator=g).cumsum(0) * 0.3
    return mel - mel.mean() - 4.0


def test_inverse_stft_is_torch_istft():
    torch.manual_seed(0)
    spectrum = torch.randn(513, 40, dtype=torch.complex64)
    window = torch.hann_window(1024)
    expected = torch.istft(spectrum, 1024, 256, 1024, window, center=True, length=40 * 256)
    got = InverseSTFT(1024, 256, window)(
        spectrum.real.T[None], spectrum.imag.T[None], torch.ones(1, 40)
    )[0]
    assert torch.allclose(got, expected, atol=1e-6)


def test_receptive_field_counts_the_window_overlap(model):
    # A sample of frame t has the windows of frames t-1 .. t+2 over it (n_fft 1024, hop 256).
    assert model.istft.reach == (1, 2)
    assert model.receptive_field == model.convolution_reach + 2


def test_the_archive_passes_inspection_and_the_voice_validates(addon):
    assert validate_addon(addon.root) == []
    spec = addon.config.networks["vocoder"]
    assert spec.receptive_field_frames == recipe.build_network().receptive_field
    assert addon.config.stack[-1] == {"type": "Vocoder"}


def test_the_exported_network_is_the_trained_module(model, addon):
    exported = torch.export.load(addon.root / recipe.FILE).module()
    mel = torch.stack([mel_of(37, 1), mel_of(37, 2)])
    with torch.inference_mode():
        assert torch.allclose(exported(mel, torch.ones(2, 37)), model(mel, torch.ones(2, 37)))


@pytest.mark.parametrize("chunk_frames", [1, 7, 32])
def test_streamed_audio_equals_one_shot(model, addon, chunk_frames):
    voice = build_voice(addon)
    vocoder = voice.stack.stack[-1]
    assert vocoder.context == (model.receptive_field, model.receptive_field)
    mel = mel_of(150)
    with torch.inference_mode():
        one_shot = model(mel[None], torch.ones(1, 150))[0]
    chunks = [
        Chunk(mel[s : s + chunk_frames], s, is_last=s + chunk_frames >= 150)
        for s in range(0, 150, chunk_frames)
    ]
    streamed = torch.cat([c.core[:, 0] for c in vocoder.stream({}, iter(chunks))])
    assert streamed.shape == one_shot.shape == (150 * 256,)
    assert (streamed - one_shot).abs().max() < 1e-4


def test_the_receptive_field_is_exact(model):
    """The audio of frame t (samples t*hop .. (t+1)*hop - 1) depends on mel frames
    t - R + 1 .. t + R and on no others, R the declared receptive field: the convolutions'
    reach, plus one frame before and two after whose windows overlap those samples."""
    frames, t, rf = 64, 30, model.receptive_field
    mel = mel_of(frames).requires_grad_(True)
    audio = model(mel[None], torch.ones(1, frames))[0]
    audio[t * 256 : (t + 1) * 256].square().sum().backward()
    depends = (mel.grad.abs().sum(-1) > 0).nonzero().flatten().tolist()
    assert depends == list(range(t - rf + 1, t + rf + 1))


@pytest.mark.parametrize(
    "placement",
    [None, {"blocks": {"Vocoder": {"shapes": {"kind": "static", "sizes": [80]}}}}],
    ids=["dynamic", "static"],
)
def test_a_batch_gives_each_chunk_what_it_gets_alone(addon, placement):
    voice = voice_with(addon, placement=placement)
    vocoder = voice.stack.stack[-1]
    rf = vocoder.context[0]
    chunks = [
        Chunk(mel_of(n + 2 * rf, seed=n), start=rf + 5 * i, left=rf, right=rf)
        for i, n in enumerate([3, 32, 17, 40])
    ]
    alone = [vocoder.apply(c) for c in chunks]
    together = apply_batch([(vocoder, c, (0, 0)) for c in chunks])
    for a, b in zip(alone, together, strict=True):
        assert a.frames.shape == b.frames.shape
        assert (a.frames - b.frames).abs().max() < 1e-5
