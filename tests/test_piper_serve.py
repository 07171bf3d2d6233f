"""The Piper voice in the service: `joe` streams chunk by chunk through its own Encoders,
Upsampler, Decoder and Vocoder deployments on a real local Ray, and a request's seed makes its
audio reproducible and equal to the local runtime's."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from voicestack.addons.loader import load_addon
from voicestack.addons.search_path import find_voice
from voicestack.runtime.local import synthesize
from voicestack.runtime.voice import build_voice
from voicestack.serve_app.formats import decode_msgpack_stream

from .ray_service import running_service

pytestmark = pytest.mark.ray

TEXT = "Hello there. The weather is lovely today, is it not?"
#: The laptop placement's batching: chunks of streams that meet are one network call.
PLACEMENT = {
    "default": {"num_cpus": 0.1},
    "blocks": {
        "Decoder": {"batching": {"max_batch_size": 16, "wait_ms": 2}},
        "Vocoder": {"batching": {"max_batch_size": 16, "wait_ms": 2}},
    },
}


@pytest.fixture(scope="module")
def trio(tmp_path_factory) -> str:
    """A multi-speaker Piper voice (random weights, tests/piper_voices.py), imported."""
    from voicestack.addons.piper_import import import_piper

    from .piper_voices import build_multispeaker_piper

    model = build_multispeaker_piper(tmp_path_factory.mktemp("trio-model"))
    return str(import_piper(model, None, tmp_path_factory.mktemp("trio") / "trio"))


@pytest.fixture(scope="module")
def service(trio):
    with running_service([str(find_voice("joe").path), trio], PLACEMENT) as running:
        yield running


def speak(service, **body) -> list[dict]:
    response = service["client"].post(
        "/v1/synthesize", json={"voice": "joe", "text": TEXT, "format": "msgpack"} | body
    )
    assert response.status_code == 200, response.text
    return decode_msgpack_stream(response.content)


def samples(messages: list[dict]) -> np.ndarray:
    pcm = b"".join(m["pcm16"] for m in messages if m["type"] == "audio")
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    error = np.sum((reference - other) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / max(error, 1e-30)))


def test_joe_runs_as_one_deployment_per_block(service):
    from ray import serve

    app = serve.status().applications["voice-joe"]
    assert set(app.deployments) == {"Composer", "Encoders", "Upsampler", "Decoder", "Vocoder"}


def test_a_multi_speaker_voice_speaks_as_the_speaker_asked_for_by_name(service, trio):
    voices = {v["name"]: v for v in service["client"].get("/v1/voices").json()["voices"]}
    assert voices["trio"]["speakers"] == ["alice", "bob", "carol"]
    assert voices["joe"]["speakers"] == []
    messages = speak(service, voice="trio", speaker="bob", seed=4)
    local = synthesize(build_voice(load_addon(trio)), TEXT, seed=4, speaker="bob")
    expected = np.clip(np.round(local * 32767), -32768, 32767)
    got = samples(messages)
    assert got.shape == expected.shape
    assert snr_db(expected, got) >= 40
    alice = samples(speak(service, voice="trio", speaker="alice", seed=4))
    assert alice.shape != got.shape or snr_db(alice, got) < 20


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"voice": "trio", "speaker": "dave"}, ["no speaker 'dave'", "alice, bob, carol"]),
        ({"voice": "trio", "speaker": 5}, ["no speaker 5"]),
        ({"voice": "joe", "speaker": "alice"}, ["'joe' has one speaker"]),
    ],
)
def test_a_speaker_the_voice_lacks_is_a_400_naming_its_speakers(service, body, words):
    response = service["client"].post("/v1/synthesize", json={"text": TEXT, **body})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("speaker:") and all(w in error for w in words), error


def test_speed_scales_the_durations(service):
    normal = samples(speak(service, seed=2))
    fast = samples(speak(service, seed=2, speed=2.0))
    slow = samples(speak(service, seed=2, speed=0.5))
    # Durations are divided by the speed, then rounded up per phoneme (half a frame added on
    # average, at each speed): twice the speed is a little more than half the length, half
    # the speed a little less than twice (measured 0.55 and 1.80).
    assert 0.45 < fast.size / normal.size < 0.65
    assert 1.6 < slow.size / normal.size < 2.05


def test_joe_streams_in_chunks_and_equals_the_local_runtime_with_the_same_seed(service):
    messages = speak(service, seed=11)
    audio = [m for m in messages if m["type"] == "audio"]
    assert messages[-1]["type"] == "end" and messages[-1]["seed"] == 11
    assert len(audio) >= 4  # chunks within each of the two sentences, not one per sentence
    local = synthesize(build_voice(load_addon(find_voice("joe").path)), TEXT, seed=11)
    expected = np.clip(np.round(local * 32767), -32768, 32767)
    got = samples(messages)
    assert got.shape == expected.shape
    # Chunks of one stream may meet in a batch: float rounding only (measured above 60 dB).
    assert snr_db(expected, got) >= 40


def test_without_a_seed_the_end_says_which_one_reproduces_the_audio(service):
    first = speak(service)
    seed = first[-1]["seed"]
    again = speak(service, seed=seed)
    assert samples(first).shape == samples(again).shape
    assert snr_db(samples(first), samples(again)) >= 40


def test_the_voice_list_shows_joe_as_a_vits_voice(service):
    voices = {v["name"]: v for v in service["client"].get("/v1/voices").json()["voices"]}
    assert voices["joe"]["architecture"] == "vits"
    assert voices["joe"]["sample_rate"] == 22050


def test_the_msgpack_stream_says_each_words_time_before_its_audio(service):
    from voicestack.blocks.core.chunk import Chunk
    from voicestack.runtime.local import synthesize_events

    messages = speak(service, seed=3)
    heard_s = 0.0
    words = []
    for message in messages:
        if message["type"] == "audio":
            heard_s += len(message["pcm16"]) / 2 / message["sample_rate"]
        elif message["type"] == "word":
            assert message["start_s"] >= heard_s  # sent before any of its audio
            words.append(message)
    local = [
        e
        for e in synthesize_events(build_voice(load_addon(find_voice("joe").path)), TEXT, seed=3)
        if not isinstance(e, Chunk)
    ]
    assert [w["word"] for w in words] == [w["word"] for w in local]
    assert [w["sentence"] for w in words] == [0, 0] + [1] * 8
    # The same durations, so the same frames: times agree to float rounding.
    for served, made in zip(words, local, strict=True):
        assert abs(served["start_s"] - made["start_s"]) < 1e-3
        assert abs(served["end_s"] - made["end_s"]) < 1e-3


PARAGRAPH = (
    "Good morning. The train to the coast leaves at nine, so we should hurry. "
    "Bring a coat, because the wind is cold by the sea! Do you have the tickets?"
)


async def _talk(port: int, pieces: list[str], config: dict, wait_after: int):
    """Send `config`, then `pieces` (waiting for the first audio once `wait_after` pieces are
    out), then a flush; return (binary audio, JSON messages, pieces sent when audio came)."""
    import contextlib
    import json

    import websockets

    audio, messages, sent, heard_at = bytearray(), [], 0, None
    first_audio = asyncio.Event()

    async with websockets.connect(f"ws://127.0.0.1:{port}/v1/audio/speech/stream") as socket:

        async def receive():
            nonlocal heard_at
            with contextlib.suppress(websockets.ConnectionClosed):  # the close code says how
                async for message in socket:
                    if isinstance(message, bytes):
                        if heard_at is None:
                            heard_at = sent
                            first_audio.set()
                        audio.extend(message)
                    else:
                        messages.append(json.loads(message))

        receiving = asyncio.create_task(receive())
        with contextlib.suppress(websockets.ConnectionClosed):  # refused: closed on us
            await socket.send(json.dumps(config))
            for piece in pieces:
                await socket.send(json.dumps({"text": piece}))
                sent += 1
                if sent == wait_after:
                    await asyncio.wait_for(first_audio.wait(), timeout=120)
            await socket.send(json.dumps({"flush": True}))
        await asyncio.wait_for(receiving, timeout=300)
        return bytes(audio), messages, heard_at, socket.close_code


def test_text_sent_as_it_is_written_streams_back_as_one_request_would(service):
    words = PARAGRAPH.split(" ")
    pieces = [" ".join(words[i : i + 2]) + " " for i in range(0, len(words), 2)]
    config = {"voice": "joe", "format": "pcm", "seed": 9}
    # After the third piece the second sentence has begun: the first can be spoken.
    audio, messages, heard_at, code = asyncio.run(_talk(service["port"], pieces, config, 3))
    assert heard_at == 3 < len(pieces)  # audio came before the rest of the text was written
    assert code == 1000 and messages[-1]["type"] == "end" and messages[-1]["sentences"] == 4
    whole = service["client"].post(
        "/v1/synthesize", json={"voice": "joe", "text": PARAGRAPH, "format": "pcm", "seed": 9}
    )
    expected = np.frombuffer(whole.content, "<i2").astype(np.float64)
    got = np.frombuffer(audio, "<i2").astype(np.float64)
    assert got.shape == expected.shape
    assert snr_db(expected, got) >= 40  # batching's float rounding only
    spoken = [m for m in messages if m["type"] == "word"]
    assert [m["word"] for m in spoken] == [w.strip(".,!?") for w in PARAGRAPH.split()]
    assert all(PARAGRAPH[m["text_start"] : m["text_end"]] == m["word"] for m in spoken)
    starts = [m["start_s"] for m in spoken]
    assert starts == sorted(starts) and starts[-1] < got.size / 22050


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"voice": "nobody"}, ["unknown voice 'nobody'"]),
        ({"voice": "joe", "format": "msgpack"}, ["format"]),
        ({"voice": "joe", "speed": 9}, ["speed"]),
        ({"voice": "joe", "colour": "red"}, ["colour"]),
    ],
)
def test_a_bad_first_message_is_an_error_message_and_a_policy_close(service, config, words):
    audio, messages, _, code = asyncio.run(_talk(service["port"], ["Hello."], config, 0))
    assert audio == b"" and code == 1008
    assert messages[-1]["type"] == "error" and messages[-1]["status"] in (400, 404)
    assert all(w in messages[-1]["message"] for w in words), messages[-1]


def test_the_cli_sends_long_text_to_the_running_service(service, tmp_path):
    import wave

    from voicestack.cli.main import main

    (tmp_path / "text.txt").write_text(PARAGRAPH, encoding="utf-8")
    url = f"http://127.0.0.1:{service['port']}"
    argv = ["synth", "--voice", "joe", "--url", url, "-i", str(tmp_path / "text.txt")]
    out = tmp_path / "out.wav"
    assert main([*argv, "--seed", "6", "-o", str(out), "--words", str(tmp_path / "w.json")]) == 0
    with wave.open(str(out)) as w:
        got = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
    whole = service["client"].post(
        "/v1/synthesize", json={"voice": "joe", "text": PARAGRAPH, "format": "pcm", "seed": 6}
    )
    expected = np.frombuffer(whole.content, "<i2").astype(np.float64)
    assert got.shape == expected.shape and snr_db(expected, got) >= 40
    import json

    words = json.loads((tmp_path / "w.json").read_text())
    assert len(words) == len(PARAGRAPH.split())
    assert main([*argv, "--voice", "nobody", "-o", str(tmp_path / "x.wav")]) == 2
