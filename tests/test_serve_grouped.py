"""A placement group on a real local Ray: both test voices' vocoders in one deployment (a
universal vocoder), the same audio as with a vocoder per voice."""

from __future__ import annotations

import numpy as np
import pytest
from voicestack.runtime.local import synthesize

from .conftest import voice_with
from .ray_service import pcm16, running_service, wav_samples

pytestmark = pytest.mark.ray

GROUPED = {"default": {"num_cpus": 0.1}, "blocks": {"Vocoder": {"group": "universal"}}}


@pytest.fixture(scope="module")
def grouped(voices_dir):
    voices = [str(voices_dir / "test-duration"), str(voices_dir / "test-attention")]
    with running_service(voices, GROUPED) as running:
        yield running


def test_one_vocoder_deployment_serves_both_voices_and_loads_their_shared_network_once(grouped):
    from ray import serve

    apps = [a["name"] for a in grouped["config"]["applications"]]
    assert apps == [
        "voicestack",
        "voice-test-duration",
        "voice-test-attention",
        "group-universal-vocoder",
    ]
    vocoder = serve.get_deployment_handle("Vocoder", app_name="group-universal-vocoder")
    where = vocoder.where.remote().result()
    assert where["voices"] == ["test-attention", "test-duration"]
    assert where["networks"] == 1  # the test voices ship byte-identical vocoders
    for app in ("voice-test-duration", "voice-test-attention"):
        composer = serve.get_deployment_handle("Composer", app_name=app)
        assert composer.where.remote().result()["Vocoder@universal"]["pid"] == where["pid"]


@pytest.mark.parametrize("name", ["test-duration", "test-attention"])
def test_grouped_audio_equals_the_local_runtime(grouped, name, duration_addon, attention_addon):
    addon = duration_addon if name == "test-duration" else attention_addon
    text = "Hello there. Why not?"
    response = grouped["client"].post("/v1/synthesize", json={"voice": name, "text": text})
    assert response.status_code == 200, response.text
    _, got = wav_samples(response.content)
    expected = pcm16(synthesize(voice_with(addon), text))
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 2
