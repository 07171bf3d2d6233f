"""The service's Prometheus metrics (serve_app/metrics.py), as an operator scrapes them: from
Ray's metrics export port, after a few good requests and a bad one."""

from __future__ import annotations

import time

import httpx
import pytest

from .prometheus import REPORT_INTERVAL, SCRAPE_TIMEOUT_S, scrape, value
from .ray_service import free_port, running_service

pytestmark = pytest.mark.ray

VOICE = "test-duration"
PLACEMENT = {
    "default": {"num_cpus": 0.1},
    "blocks": {"Decoder": {"batching": {"max_batch_size": 8, "wait_ms": 5}}},
}
GOOD = ["Hello there.", "The quick brown fox jumps over the lazy dog.", "Seven apples. Why not?"]
#: Admitted, then refused: no speakable sentence (400).
BAD = "..."
#: The test voice's leaf deployments (the `block` tag): sequence, source, chunk steps.
SEQUENCE, SOURCE, CHUNK_STEPS = "Encoders", "Upsampler", ("Decoder", "Vocoder")


@pytest.fixture(scope="module")
def service(voices_dir):
    with running_service(
        [str(voices_dir / VOICE)], PLACEMENT, metrics_port=free_port(), env=REPORT_INTERVAL
    ) as running:
        yield running


def test_an_operator_scrapes_latency_outcomes_audio_and_batching(service):
    client = service["client"]
    for text in GOOD:
        response = client.post("/v1/synthesize", json={"voice": VOICE, "text": text})
        assert response.status_code == 200, response.text
    bad = client.post("/v1/synthesize", json={"voice": VOICE, "text": BAD})
    assert bad.status_code == 400, bad.text

    def compute(samples, block: str) -> float | None:
        return value(samples, "ray_voicestack_block_compute_seconds_count", block=block)

    def ready(samples) -> bool:
        """Every count final: each process reports on its own, every second."""
        chunks = value(samples, "ray_voicestack_block_queue_wait_seconds_count", block="Decoder")
        return (
            value(samples, "ray_voicestack_requests_total", voice=VOICE, status="200") == len(GOOD)
            and value(samples, "ray_voicestack_requests_total", voice=VOICE, status="400") == 1
            and value(samples, "ray_voicestack_ttfa_seconds_count", voice=VOICE) == len(GOOD)
            and value(samples, "ray_voicestack_characters_total", voice=VOICE) is not None
            and value(samples, "ray_voicestack_streams_playing", voice=VOICE) is not None
            and chunks is not None
            and compute(samples, SOURCE) == chunks
            and value(samples, "ray_voicestack_block_chunks_total", block=SOURCE) == chunks
            and (compute(samples, SEQUENCE) or 0) >= len(GOOD)
            and all(
                compute(samples, block)
                == value(samples, "ray_voicestack_block_batch_size_count", block=block)
                for block in CHUNK_STEPS
            )
        )

    deadline = time.monotonic() + SCRAPE_TIMEOUT_S
    samples = []
    while time.monotonic() < deadline:
        try:
            samples = scrape(service["metrics_port"])
        except httpx.HTTPError:  # the agent's exporter not up yet
            samples = []
        if ready(samples):
            break
        time.sleep(1)
    ours = sorted(
        (n, tags.get("voice") or tags.get("block"), tags.get("status"), v)
        for n, tags, v in samples
        if n.startswith("ray_voicestack_") and not n.endswith("_bucket")
    )
    assert ready(samples), f"voicestack metrics after {SCRAPE_TIMEOUT_S}s: {ours}"

    # Characters in: every text admitted, the refused one too (its 400 came after its slot).
    sent = sum(len(text) for text in [*GOOD, BAD])
    assert value(samples, "ray_voicestack_characters_total", voice=VOICE) == sent

    # Every good stream: its first audio within the histogram's range, and one RTF.
    ttfa_sum = value(samples, "ray_voicestack_ttfa_seconds_sum", voice=VOICE)
    assert 0 < ttfa_sum < 10 * len(GOOD)
    assert value(samples, "ray_voicestack_stream_rtf_count", voice=VOICE) == len(GOOD)
    assert value(samples, "ray_voicestack_ttfa_seconds_bucket", voice=VOICE, le="+Inf") == len(GOOD)
    # The texts make a few seconds of audio between them; later chunks came with a gap.
    audio_s = value(samples, "ray_voicestack_audio_seconds_total", voice=VOICE)
    assert 0.5 < audio_s < 60
    assert value(samples, "ray_voicestack_chunk_gap_seconds_count", voice=VOICE) is not None
    # Nothing was shed, and nothing plays any more: the gauges still exported, at 0, long
    # after their last change (Ray's agent drops a gauge not reported for two intervals).
    assert value(samples, "ray_voicestack_streams_shed_total", voice=VOICE) in (None, 0)
    time.sleep(3)  # three report intervals
    later = scrape(service["metrics_port"])
    assert value(later, "ray_voicestack_streams_playing", voice=VOICE) == 0
    assert value(later, "ray_voicestack_streams_waiting", voice=VOICE) == 0
    # The Decoder's batches, and each chunk's wait before its batch: as many waits as chunks.
    # (Ray exports a histogram's _sum estimated from its buckets' midpoints, so the chunks are
    # counted by the waits, not by the batch sizes' sum.)
    batches = value(samples, "ray_voicestack_block_batch_size_count", block="Decoder")
    chunks = value(samples, "ray_voicestack_block_queue_wait_seconds_count", block="Decoder")
    assert 1 <= batches <= chunks
    assert value(samples, "ray_voicestack_block_batch_size_bucket", block="Decoder", le="64.0") == (
        batches
    )
    waited = value(
        samples, "ray_voicestack_block_queue_wait_seconds_bucket", block="Decoder", le="2.0"
    )
    assert waited == chunks  # none waited 2 s
    # Compute time per block call: the source timed each chunk it made (as many as reached the
    # Decoder), each chunk step each batch, the Encoders each sentence (the warm-up's too).
    # All within the histogram's range, each call well under its 10 s top bucket.
    for block in (SEQUENCE, SOURCE, *CHUNK_STEPS):
        calls = compute(samples, block)
        assert calls >= 1, block
        assert (
            value(samples, "ray_voicestack_block_compute_seconds_bucket", block=block, le="10.0")
            == calls
        ), block
        assert (
            0
            < value(samples, "ray_voicestack_block_compute_seconds_sum", block=block)
            < (10 * calls)
        ), block
    assert compute(samples, SOURCE) == chunks
