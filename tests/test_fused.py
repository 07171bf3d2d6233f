"""Fusing: the blocks a placement puts where the composer is (same device, resources and
replicas) and marks `fuse` run in the composer's process, with no hop to them; a block placed
otherwise keeps its deployment. The voice speaks as it did, alone or beside other streams.

A real local Ray and Serve (tests/ray_service.py), the two test voices: every block fused
except test-duration's Decoder, which reserves more CPU than the composer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from voicestack.runtime.local import synthesize

from .conftest import voice_with
from .ray_service import pcm16, running_service, wav_samples
from .same_audio import SAME_TEXT_LSB

pytestmark = pytest.mark.ray

BATCHED = {"batching": {"max_batch_size": 8, "wait_ms": 5}}
PLACEMENT = {
    "default": {"num_cpus": 0.1, "fuse": True},
    "blocks": {"Decoder": {"num_cpus": 0.2, **BATCHED}, "Vocoder": BATCHED},
}
TEXTS = {
    "test-duration": "Hello there. ☃☃! The quick brown fox jumps over the lazy dog.",
    "test-attention": "Seven apples. Why not?",
}


@pytest.fixture(scope="module")
def service(voices_dir):
    voices = [str(voices_dir / "test-duration"), str(voices_dir / "test-attention")]
    with running_service(voices, PLACEMENT) as running:
        yield running


def deployments(app: str) -> set[str]:
    from ray import serve

    return set(serve.status().applications[app].deployments)


def where(voice: str) -> dict:
    from ray import serve

    composer = serve.get_deployment_handle("Composer", app_name=f"voice-{voice}")
    return composer.where.remote().result()


def test_blocks_placed_like_the_composer_run_in_its_process_and_others_keep_a_deployment(
    service,
):
    assert deployments("voice-test-duration") == {"Composer", "Decoder"}
    assert deployments("voice-test-attention") == {"Composer"}
    duration = where("test-duration")
    fused = {key for key, w in duration.items() if w.get("fused")}
    assert fused == set(duration) - {"Decoder"}
    assert len({duration[key]["pid"] for key in fused}) == 1  # one process: the composer's
    assert duration["Decoder"]["pid"] != duration[next(iter(fused))]["pid"]
    attention = where("test-attention")
    assert attention and all(w.get("fused") for w in attention.values())


def test_a_fused_voice_speaks_as_the_local_runtime_does(service, duration_addon, attention_addon):
    for name, addon in [("test-duration", duration_addon), ("test-attention", attention_addon)]:
        reply = service["client"].post("/v1/synthesize", json={"voice": name, "text": TEXTS[name]})
        assert reply.status_code == 200, reply.text
        _rate, got = wav_samples(reply.content)
        expected = pcm16(synthesize(voice_with(addon), TEXTS[name]))
        assert got.shape == expected.shape
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= SAME_TEXT_LSB


def test_streams_of_a_fused_voice_batched_together_each_get_their_own_audio(service):
    """Eight streams of three texts at once (their chunks batched in the composer's process,
    the attention voice's frames stepped together): each equals its text sent alone, within
    the tolerance cross-request batching allows (tests/same_audio.py)."""
    texts = [f"Number {n} is here, and it is a fine number." for n in range(3)]
    client = service["client"]

    def say(voice: str, text: str) -> np.ndarray:
        reply = client.post("/v1/synthesize", json={"voice": voice, "text": text})
        assert reply.status_code == 200, reply.text
        return wav_samples(reply.content)[1]

    for voice in TEXTS:
        alone = {text: say(voice, text) for text in texts}
        requests = [texts[i % 3] for i in range(8)]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda t, v=voice: say(v, t), requests))
        for text, got in zip(requests, together, strict=True):
            assert got.shape == alone[text].shape, (voice, text)
            gap = int(np.abs(got.astype(int) - alone[text].astype(int)).max())
            assert gap <= SAME_TEXT_LSB, (voice, text, gap)
