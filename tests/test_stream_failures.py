"""Replicas that die in the middle of streams (SIGKILL, as the kernel's OOM killer would).

- A block replica that dies (an encoder, the source, the decoder, a vocoder shared by two
  voices): the sentence is made again by the replica Serve starts in its place and the chunks
  already sent are skipped, so the stream completes with the audio it would have had.
- A composer or the ingress that dies: the work is gone with the process that held the stream,
  and the client is told: an `error` message in msgpack, an `error` event in SSE, and a
  response aborted before its end for formats that cannot carry an error (wav, pcm, mp3);
  never a clean end of short audio.
- A request whose voice had sent no audio yet is sent again, unseen by the client.
- Streams of another voice go on untouched; the service answers new requests again.

bench/faults.py runs the same kills again and again, and measures how soon the service
answers again (docs/reliability.md).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from .faults import (
    ABORTED,
    COMPLETE,
    ERROR,
    REFUSED,
    in_background,
    kill,
    stream,
    wait_until_served,
)
from .ray_service import running_service
from .same_audio import SAME_TEXT_LSB

pytestmark = pytest.mark.ray

LONG = " ".join(f"Sentence number {n} is here, and it goes on for a while." for n in range(1, 31))
#: Both test voices, their vocoders in one shared deployment (a universal vocoder); the
#: attention voice plays one stream at a time, so that a second waits (no audio yet) for its turn.
PLACEMENT = {
    "default": {"num_cpus": 0.1},
    "blocks": {"Vocoder": {"group": "universal"}},
    "voices": {"test-attention": {"Composer": {"streams": {"max_active": 1, "max_wait_s": 120}}}},
}
DURATION, ATTENTION = "voice-test-duration", "voice-test-attention"
SHARED_VOCODER = "group-universal-vocoder"
#: Bytes received before the kill: audio is flowing, most of the text is still to come.
KILL_AFTER = 20_000


@pytest.fixture(scope="module")
def service(voices_dir):
    voices = [str(voices_dir / "test-duration"), str(voices_dir / "test-attention")]
    with running_service(voices, PLACEMENT) as running:
        running["url"] = f"http://127.0.0.1:{running['port']}"
        yield running


def request(voice: str, fmt: str = "msgpack", text: str = LONG) -> dict:
    return {"voice": voice, "text": text, "format": fmt, "seed": 7}


@pytest.fixture(scope="module")
def whole(service):
    """Each voice's long request, made once without a fault."""
    out = {}
    for voice in ("test-duration", "test-attention"):
        seen = stream(service["client"], request(voice))
        assert seen.outcome() == COMPLETE
        out[voice] = seen.audio()
    return out


def assert_same_audio(got: np.ndarray, expected: np.ndarray) -> None:
    """Equal to the request made without a fault, within what batching with other streams'
    chunks can change (tests/same_audio.py)."""
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= SAME_TEXT_LSB


@pytest.mark.parametrize(
    ("voice", "app", "deployment"),
    [
        ("test-duration", DURATION, "Encoders"),
        ("test-duration", DURATION, "Upsampler"),
        ("test-duration", DURATION, "Decoder"),
        ("test-duration", SHARED_VOCODER, "Vocoder"),
        ("test-attention", ATTENTION, "AttentionDecoder"),
    ],
)
def test_a_stream_whose_block_replica_dies_completes_with_the_audio_it_would_have_had(
    service, whole, voice, app, deployment
):
    other = "test-attention" if voice == "test-duration" else "test-duration"
    thread, others = in_background(service["url"], request(other))
    killed: list[int] = []
    seen = stream(
        service["client"],
        request(voice),
        kill_after=KILL_AFTER,
        killing=(app, deployment),
        killed=killed,
    )
    thread.join(300)
    assert killed, "the stream ended before the kill"
    assert seen.outcome() == COMPLETE, seen.messages[-1:]
    assert_same_audio(seen.audio(), whole[voice])
    # The other voice's stream (sharing the vocoder replica, when that was killed) completed.
    assert others and others[0].outcome() == COMPLETE, others[0].messages[-1:]
    assert_same_audio(others[0].audio(), whole[other])
    wait_until_served(service["client"], voice)


def test_a_stream_whose_composer_dies_says_it_failed_in_every_format(service, whole):
    """Five streams of one composer, each in another format, and the composer killed."""
    bodies = [
        ("/v1/synthesize", request("test-duration", "wav")),
        ("/v1/synthesize", request("test-duration", "pcm")),
        ("/v1/synthesize", request("test-duration", "mp3")),
        ("/v1/synthesize", request("test-duration", "msgpack")),
        (
            "/v1/audio/speech",
            {
                "model": "tts-1",
                "voice": "test-duration",
                "input": LONG[:4000],
                "response_format": "wav",
                "stream_format": "sse",
            },
        ),
    ]
    threads = [in_background(service["url"], body, route) for route, body in bodies[1:]]
    time.sleep(0.5)  # the other four under way
    seen = stream(
        service["client"], bodies[0][1], kill_after=KILL_AFTER, killing=(DURATION, "Composer")
    )
    for thread, _ in threads:
        thread.join(300)
    wav, pcm, mp3, msgpack, sse = [seen] + [out[0] for _, out in threads]
    assert [s.outcome() for s in (wav, pcm, mp3)] == [ABORTED] * 3, [wav.error, pcm.error]
    assert msgpack.outcome() == ERROR and msgpack.messages[-1]["status"] == 500
    assert any(m["type"] == "audio" for m in msgpack.messages)
    assert sse.outcome() == ERROR and sse.messages[-1]["type"] == "error"
    assert sse.messages[-1]["error"]["type"] == "server_error"
    wait_until_served(service["client"], "test-duration")


def test_a_stream_whose_ingress_dies_is_aborted_and_other_requests_are_served_again(service):
    thread, others = in_background(service["url"], request("test-attention", "msgpack"))
    seen = stream(
        service["client"],
        request("test-duration", "wav"),
        kill_after=KILL_AFTER,
        killing=("voicestack", "Ingress"),
    )
    thread.join(300)
    assert seen.outcome() == ABORTED
    # The other request went through the same ingress: it cannot have ended cleanly. Before
    # its headers were sent, Serve's proxy answers it 500.
    assert others[0].outcome() in (ABORTED, ERROR, REFUSED), others[0]
    wait_until_served(service["client"], "test-duration")


def test_a_request_whose_voice_had_sent_no_audio_yet_is_made_again_unseen(service, whole):
    """The attention voice's composer plays one stream; a second request waits in it for its
    turn, and the composer is killed: the first stream fails (it had audio), the second is
    sent again to the composer Serve starts, and its client sees only its whole audio."""
    from ray import serve

    composer = serve.get_deployment_handle("Composer", app_name=ATTENTION)
    # Long enough to be still playing however long finding and killing the replica takes.
    audio_flows = threading.Event()
    playing, played = in_background(
        service["url"],
        request("test-attention", "wav", text=" ".join([LONG] * 6)),
        started=audio_flows,
    )
    assert audio_flows.wait(300), "the first stream sent no audio"
    deadline = time.monotonic() + 120
    waiting, waited = in_background(service["url"], request("test-attention"))
    while composer.load.remote().result()["waiting"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    kill(ATTENTION, "Composer")
    playing.join(600)
    waiting.join(600)
    assert played and waited, "a request did not end"
    assert played[0].outcome() == ABORTED
    assert waited[0].status == 200 and waited[0].outcome() == COMPLETE, waited[0].body[:300]
    assert_same_audio(waited[0].audio(), whole["test-attention"])


def test_a_voice_whose_addon_fails_to_load_leaves_the_others_serving_and_health_says_why(
    service, voices_dir, tmp_path
):
    import json
    import shutil

    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    broken = tmp_path / "test-broken"
    shutil.copytree(voices_dir / "test-duration", broken)
    data = json.loads((broken / "addon.json").read_text())
    data["name"] = "test-broken"
    (broken / "addon.json").write_text(json.dumps(data))
    network = next(iter(data["networks"].values()))["file"]
    (broken / network).write_bytes(b"not an archive")  # refused by the loader, by name
    config = service["config"]
    (app,) = [a for a in config["applications"] if a["name"] == DURATION]
    failing = json.loads(json.dumps(app))
    failing["name"], failing["args"]["addon"] = "voice-test-broken", str(broken)
    config = {**config, "applications": [*config["applications"], failing]}
    _get_global_client().deploy_apps(ServeDeploySchema.model_validate(config))

    client = service["client"]
    deadline = time.monotonic() + 300
    while "test-broken" not in (health := client.get("/healthz").json())["failed"]:
        assert time.monotonic() < deadline, health
        time.sleep(1)
    assert health["status"] == "degraded" and "test-duration" in health["voices"]
    assert (
        network in health["failed"]["test-broken"] or "archive" in health["failed"]["test-broken"]
    )
    refused = client.post("/v1/synthesize", json={"voice": "test-broken", "text": "Hello."})
    assert refused.status_code == 503 and "failed to deploy" in refused.json()["error"]
    wait_until_served(client, "test-duration")  # the other voice serves on
