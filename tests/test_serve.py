"""The service, end to end, on a real local Ray: Serve deployments per block, the HTTP ingress,
and a real HTTP client. One Ray and one service for the whole module."""

from __future__ import annotations

import itertools
import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from voicestack.addons.loader import load_addon
from voicestack.runtime.local import synthesize
from voicestack.runtime.voice import build_voice
from voicestack.serve_app.formats import COMPRESSED, MEDIA_TYPES, decode_msgpack_stream
from voicestack.serve_app.serve_config import serve_config

from .conftest import voice_with
from .prometheus import REPORT_INTERVAL, settled, value
from .ray_service import apply_config, free_port, pcm16, running_service, wav_samples
from .same_audio import SAME_TEXT_LSB
from .test_formats import EXTRA_SAMPLES, decode

pytestmark = pytest.mark.ray

BATCHED = {"batching": {"max_batch_size": 8, "wait_ms": 5}}
#: test-attention's composer plays two streams at once and lets one more wait.
ADMISSION = {"streams": {"max_active": 2, "max_waiting": 1, "max_wait_s": 60, "retry_after_s": 3}}
PLACEMENT = {
    "default": {"num_cpus": 0.1},
    "blocks": {"Decoder": BATCHED, "Vocoder": BATCHED},
    "voices": {"test-attention": {"Composer": ADMISSION}},
}
LONG = " ".join(f"Sentence number {n} is here." for n in range(1, 9))


@pytest.fixture(scope="module")
def service(voices_dir):
    voices = [str(voices_dir / "test-duration"), str(voices_dir / "test-attention")]
    with running_service(
        voices, PLACEMENT, metrics_port=free_port(), env=REPORT_INTERVAL
    ) as running:
        yield running


def post(client: httpx.Client, **body) -> httpx.Response:
    return client.post("/v1/synthesize", json=body)


def handle(app: str, deployment: str):
    from ray import serve

    return serve.get_deployment_handle(deployment, app_name=app)


def test_both_voices_stream_at_the_same_time_and_equal_the_local_runtime(
    service, duration_addon, attention_addon
):
    texts = {
        # A sentence with nothing to say in the middle: both runtimes skip it.
        "test-duration": "Hello there. ☃☃! The quick brown fox jumps over the lazy dog.",
        "test-attention": "Seven apples. Why not?",
    }
    with ThreadPoolExecutor(2) as pool:
        replies = pool.map(lambda v: post(service["client"], voice=v, text=texts[v]), texts)
        responses = dict(zip(texts, replies, strict=True))
    for name, addon in [("test-duration", duration_addon), ("test-attention", attention_addon)]:
        response = responses[name]
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "audio/wav"
        rate, got = wav_samples(response.content)
        expected = pcm16(synthesize(voice_with(addon), texts[name]))
        assert rate == 22050
        assert got.shape == expected.shape
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 2  # 1e-4 of full scale


def decoder_batches_of_several(samples) -> float | None:
    """test-duration's Decoder batches of more than one chunk, from its batch size histogram."""
    tags = {"application": "voice-test-duration", "block": "Decoder"}
    every = value(samples, "ray_voicestack_block_batch_size_count", **tags)
    alone = value(samples, "ray_voicestack_block_batch_size_bucket", le="1.0", **tags)
    return None if every is None else every - (alone or 0)


def test_the_first_chunk_leaves_before_the_later_sentences_are_encoded(service):
    several_before = settled(service["metrics_port"], decoder_batches_of_several)
    with ThreadPoolExecutor(2) as pool:  # two streams at once: their chunks meet in batches
        replies = list(
            pool.map(
                lambda _: post(
                    service["client"], voice="test-duration", text=LONG, format="msgpack"
                ),
                range(2),
            )
        )
    response = replies[0]
    messages = decode_msgpack_stream(response.content)
    audio = [m for m in messages if m["type"] == "audio"]
    end = messages[-1]
    assert end["type"] == "end" and end["sentences"] == 8
    # When the first chunk was sent, only sentences 1 and 2 had been handed to the encoders.
    assert audio[0]["timing"]["sentences_started"] == 2
    assert audio[-1]["timing"]["sentences_started"] == 8
    assert end["chunks"] == len(audio)
    # Chunks of both streams (and several of each in flight) reach the decoder together.
    assert settled(service["metrics_port"], decoder_batches_of_several) > several_before


def assert_same_audio(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape  # not one sample more or less
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= SAME_TEXT_LSB


def test_pcm_and_msgpack_carry_the_same_samples_as_wav(service):
    client = service["client"]
    text = "Hello there. How are you?"
    wav = post(client, voice="test-duration", text=text)
    pcm = post(client, voice="test-duration", text=text, format="pcm")
    packed = post(client, voice="test-duration", text=text, format="msgpack")
    assert [r.status_code for r in (wav, pcm, packed)] == [200, 200, 200]
    assert wav.headers["content-type"] == "audio/wav"
    assert pcm.headers["content-type"].startswith("audio/pcm;rate=22050")
    assert pcm.headers["x-sample-rate"] == "22050"
    assert packed.headers["content-type"] == "application/x-msgpack"
    rate, from_wav = wav_samples(wav.content)
    assert rate == 22050
    from_pcm = np.frombuffer(pcm.content, dtype="<i2")
    messages = decode_msgpack_stream(packed.content)
    from_msgpack = np.frombuffer(
        b"".join(m["pcm16"] for m in messages if m["type"] == "audio"), dtype="<i2"
    )
    # Three requests: the same samples up to the rounding of differently batched chunks.
    assert_same_audio(from_pcm, from_wav)
    assert_same_audio(from_msgpack, from_wav)


def test_a_msgpack_stream_carries_each_chunk_once_in_order_with_its_mel(service):
    response = post(
        service["client"],
        voice="test-duration",
        text="Hello there. How are you?",
        format="msgpack",
        with_mel=True,
    )
    assert response.status_code == 200
    messages = decode_msgpack_stream(response.content)
    *streamed, end = messages
    assert end["type"] == "end" and end["sentences"] == 2
    # Each sentence's words come first (tests/test_word_timestamps.py says what they hold).
    words = [m["word"] for m in streamed if m["type"] == "word"]
    assert words == ["Hello", "there", "How", "are", "you"]
    chunks = [m for m in streamed if m["type"] != "word"]
    # Each chunk: its mel frames, then the audio the vocoder made of them (256 samples a frame).
    assert [m["type"] for m in chunks] == ["mel", "audio"] * (len(chunks) // 2)
    mels, audio = chunks[0::2], chunks[1::2]
    assert end["chunks"] == len(audio)
    for mel, chunk in zip(mels, audio, strict=True):
        assert mel["n_mels"] == 80
        assert len(mel["f32"]) == mel["frames"] * 80 * 4
        assert np.isfinite(np.frombuffer(mel["f32"], dtype="<f4")).all()
        assert chunk["sample_rate"] == 22050
        assert len(chunk["pcm16"]) // 2 == mel["frames"] * 256
    # Audio positions count samples of the whole utterance: no gap, no overlap.
    sizes = [len(m["pcm16"]) // 2 for m in audio]
    assert [m["start"] for m in audio] == [sum(sizes[:i]) for i in range(len(sizes))]
    assert end["audio_s"] == round(sum(sizes) / 22050, 4)
    # Mel positions count frames of one sentence: each sentence starts again at 0.
    for before, mel in itertools.pairwise(mels):
        assert mel["start"] in (0, before["start"] + before["frames"])
    assert mels[0]["start"] == 0 and sum(m["start"] == 0 for m in mels) == end["sentences"]


def test_each_compressed_format_decodes_to_the_audio_of_the_wav_response(service):
    client = service["client"]
    text = "Hello there. How are you?"
    _, wav = wav_samples(post(client, voice="test-duration", text=text).content)
    for fmt in COMPRESSED:
        response = post(client, voice="test-duration", text=text, format=fmt)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == MEDIA_TYPES[fmt]
        rate, decoded = decode(response.content)
        # Longer than the WAV's samples by at most the codec's delay and padding (in samples
        # at 22.05 kHz; Opus decodes at 48 kHz): tests/test_formats.py says how much and why.
        extra = len(decoded) * 22050 / rate - len(wav)
        low, high = EXTRA_SAMPLES[fmt]
        assert low <= extra <= high, (fmt, extra)
        if fmt == "flac":  # lossless: the WAV's samples, up to batching's rounding
            assert_same_audio(decoded, wav)
    # At a requested rate (resampled in the ingress, then MP3's 16 kHz; Opus's 16 kHz).
    for fmt in ("mp3", "opus"):
        response = post(client, voice="test-duration", text=text, format=fmt, sample_rate=16000)
        assert response.status_code == 200 and response.headers["x-sample-rate"] == "16000"
        rate, decoded = decode(response.content)
        extra = len(decoded) * 16000 / rate - len(wav) * 16000 / 22050
        low, high = EXTRA_SAMPLES[fmt]
        assert low - 1 <= extra <= high + 1, (fmt, extra)  # a sample of resampling each way


def test_an_mp3_response_starts_while_the_voice_is_still_speaking(service):
    """Not buffered: the first MP3 bytes reach the client while the voice's composer is still
    making the rest of a long text."""
    composer = handle("voice-test-duration", "Composer")
    text = " ".join(f"Sentence number {n} is here." for n in range(1, 25))
    body = {"voice": "test-duration", "text": text, "format": "mp3"}
    url = f"http://127.0.0.1:{service['port']}"
    with (
        httpx.Client(base_url=url, timeout=120) as client,
        client.stream("POST", "/v1/synthesize", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/mpeg"
        parts = response.iter_raw()
        received = next(p for p in parts if p)  # the first bytes of the body
        load = composer.load.remote().result()
        received += b"".join(parts)
    assert load["active"] >= 1, load
    # And what followed completes it: the whole text's audio, as the same text in PCM.
    rate, decoded = decode(received)
    samples = len(post(service["client"], voice="test-duration", text=text, format="pcm").content)
    low, high = EXTRA_SAMPLES["mp3"]
    assert rate == 22050 and low <= len(decoded) - samples // 2 <= high


def test_a_requested_sample_rate_resamples_the_stream(service):
    client = service["client"]
    native = post(client, voice="test-duration", text="Hello there.", format="pcm")
    low = post(client, voice="test-duration", text="Hello there.", format="pcm", sample_rate=16000)
    assert low.status_code == 200 and low.headers["x-sample-rate"] == "16000"
    expected = len(native.content) // 2 * 16000 / 22050
    assert abs(len(low.content) // 2 - expected) <= 0.01 * expected


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"voice": "nobody", "text": "Hi."}, 404, ["unknown voice 'nobody'", "test-duration"]),
        ({"voice": "test-duration", "text": "Hi.", "format": "ogg"}, 422, ["format", "opus"]),
        ({"voice": "test-duration", "text": ""}, 422, ["text"]),
        ({"voice": "test-duration", "text": "Hi.", "volume": 2}, 422, ["volume"]),
        ({"voice": "test-duration", "text": "..."}, 400, ["nothing to say"]),
        # Something, but nothing this voice can speak: an error, never an empty 44-byte WAV.
        ({"voice": "test-duration", "text": "😀😀 🎉"}, 400, ["nothing to say"]),
        ({"voice": "test-duration", "text": "你好世界。"}, 400, ["nothing to say"]),
        ({"voice": "test-duration", "text": "مرحبا بالعالم"}, 400, ["nothing to say"]),
        ({"voice": "test-duration", "text": "Hi.", "with_mel": True}, 422, ["msgpack"]),
        ({"voice": "test-duration", "text": "Hi.", "sample_rate": 5}, 422, ["sample_rate"]),
        ({"voice": "test-duration", "text": "Hi.", "speaker": "bob"}, 400, ["one speaker"]),
        ({"voice": "test-duration", "text": "Hi.", "speed": 9}, 422, ["speed"]),
        # Frame-by-frame attention decoding has no durations to scale.
        ({"voice": "test-attention", "text": "Hi.", "speed": 2}, 400, ["cannot change its speed"]),
    ],
)
def test_a_bad_request_gets_a_json_4xx_naming_the_problem_and_costs_no_one_audio(
    service, body, status, words
):
    client = service["client"]
    response = client.post("/v1/synthesize", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert all(w in error for w in words), error
    assert post(client, voice="test-duration", text="Still here.").status_code == 200


def test_a_body_that_is_not_json_is_a_4xx_with_a_json_error(service):
    response = service["client"].post(
        "/v1/synthesize", content=b"not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "JSON" in response.json()["error"]


@pytest.mark.parametrize(
    "raw",
    [b'{"voice": "test-duration", "text": "caf\xe9"}', b"[" * 5000 + b"]" * 5000],
    ids=["not-utf8", "nested-5000-deep"],
)
def test_a_body_that_cannot_be_read_is_a_4xx_in_the_apis_error_shape(service, raw):
    response = service["client"].post(
        "/v1/synthesize", content=raw, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert isinstance(response.json()["error"], str) and response.json()["error"]


def test_a_body_over_the_size_limit_is_a_413_before_it_is_read(service):
    text = "word " * 400_000  # 2 MB
    response = service["client"].post(
        "/v1/synthesize", json={"voice": "test-duration", "text": text}
    )
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]


def test_voices_lists_each_voice_with_its_architecture_rate_stack_and_placement(service):
    voices = {v["name"]: v for v in service["client"].get("/v1/voices").json()["voices"]}
    assert set(voices) == {"test-duration", "test-attention"}
    assert voices["test-duration"]["architecture"] == "duration"
    assert voices["test-attention"]["architecture"] == "attention"
    assert voices["test-duration"]["sample_rate"] == 22050
    assert voices["test-duration"]["stack"][0]["type"] == "StreamablePipeline"
    assert voices["test-attention"]["placement"]["default"]["num_cpus"] == 0.1
    health = service["client"].get("/healthz").json()
    assert health["status"] == "ok" and health["voices"] == ["test-attention", "test-duration"]


@pytest.mark.parametrize("fmt", ["pcm", "mp3"])
def test_a_client_that_disconnects_stops_its_stream(service, fmt):
    def made(samples) -> float | None:  # chunks test-attention's source has made
        return value(
            samples,
            "ray_voicestack_block_chunks_total",
            application="voice-test-attention",
            block="AttentionDecoder",
        )

    port = service["metrics_port"]
    text = " ".join(["Why not speak for a while?"] * 12)
    before = settled(port, made)
    post(service["client"], voice="test-attention", text=text, format=fmt)
    whole = settled(port, made) - before

    before = settled(port, made)
    body = {"voice": "test-attention", "text": text, "format": fmt}
    url = f"http://127.0.0.1:{service['port']}"
    with (
        httpx.Client(base_url=url, timeout=60) as client,
        client.stream("POST", "/v1/synthesize", json=body) as response,
    ):
        next(p for p in response.iter_raw() if p)  # the first audio arrived; now hang up
    after_hang_up = settled(port, made) - before
    assert after_hang_up < whole / 2, (after_hang_up, whole)


def test_a_voice_at_capacity_queues_then_sheds_load_with_503_and_retry_after(service):
    url = f"http://127.0.0.1:{service['port']}"
    long = " ".join(["Why not speak for a while?"] * 1000)  # far longer than the test lasts
    body = {"voice": "test-attention", "text": long}
    composer = handle("voice-test-attention", "Composer")
    pool = ThreadPoolExecutor(1)
    with (
        httpx.Client(base_url=url, timeout=60) as a,
        httpx.Client(base_url=url, timeout=60) as b,
        a.stream("POST", "/v1/synthesize", json=body) as first,
        b.stream("POST", "/v1/synthesize", json=body) as second,
    ):
        # Two streams are playing (their iterators kept: a dropped one closes the connection).
        playing = [first.iter_raw(), second.iter_raw()]
        assert [len(next(p)) > 0 for p in playing] == [True, True]
        waiting = pool.submit(post, service["client"], voice="test-attention", text="Waiting.")
        for _ in range(100):
            if composer.load.remote().result() == {"active": 2, "waiting": 1}:
                break
            time.sleep(0.05)
        assert composer.load.remote().result() == {"active": 2, "waiting": 1}

        shed = post(service["client"], voice="test-attention", text="One too many.")
        assert shed.status_code == 503 and shed.headers["retry-after"] == "3"
        assert "capacity" in shed.json()["error"]
        other = post(service["client"], voice="test-duration", text="Another voice plays.")
        assert other.status_code == 200  # the limit is per voice
        assert not waiting.done()
    # The two streams hung up: the waiting request got a slot and its audio.
    assert waiting.result(timeout=60).status_code == 200
    pool.shutdown()
    assert composer.load.remote().result() == {"active": 0, "waiting": 0}


def test_adding_a_voice_does_not_interrupt_the_streams_of_the_other_voices(
    service, voices_dir, tmp_path
):
    extra = tmp_path / "test-extra"
    shutil.copytree(voices_dir / "test-duration", extra)
    data = json.loads((extra / "addon.json").read_text())
    data["name"] = "test-extra"
    # A stateful consumer between decoder and vocoder: it and the blocks after it run in the
    # composer, on fetched chunks.
    data["stack"] = [data["stack"][0], {"type": "Diagnostics"}, *data["stack"][1:]]
    (extra / "addon.json").write_text(json.dumps(data))
    composer = handle("voice-test-duration", "Composer")
    pids_before = composer.where.remote().result()

    client = service["client"]
    done: dict = {}
    gate = threading.Event()

    def listen() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{service['port']}", timeout=120) as c:
            body = {"voice": "test-duration", "text": LONG, "format": "msgpack"}
            with c.stream("POST", "/v1/synthesize", json=body) as response:
                received = b""
                for part in response.iter_raw():
                    received += part
                    gate.set()
                    time.sleep(0.05)  # a slow client: the stream is open while we deploy
            done["messages"] = decode_msgpack_stream(received)

    listener = threading.Thread(target=listen)
    listener.start()
    assert gate.wait(60)
    voices = [str(voices_dir / "test-duration"), str(voices_dir / "test-attention"), str(extra)]
    apply_config(serve_config(voices, PLACEMENT, port=service["port"]))
    listener.join(120)

    messages = done["messages"]
    assert messages[-1]["type"] == "end" and messages[-1]["sentences"] == 8
    assert not [m for m in messages if m["type"] == "error"]
    assert composer.where.remote().result() == pids_before  # its replicas were not restarted
    response = post(client, voice="test-extra", text="New voice. Same networks.")
    assert response.status_code == 200
    _, got = wav_samples(response.content)
    expected = pcm16(synthesize(build_voice(load_addon(extra)), "New voice. Same networks."))
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 2


def test_the_attention_voice_streams_its_words_as_its_alignment_passes_them(service):
    response = post(
        service["client"],
        voice="test-attention",
        text="Hello there. How are you?",
        format="msgpack",
    )
    assert response.status_code == 200
    heard_s, words = 0.0, []
    for message in decode_msgpack_stream(response.content):
        if message["type"] == "audio":
            heard_s += len(message["pcm16"]) / 2 / 22050
        elif message["type"] == "word":
            assert message["end_s"] >= heard_s - 1e-4  # before the audio its end is in
            words.append(message)
    assert [w["word"] for w in words] == ["Hello", "there", "How", "are", "you"]
    times = [t for w in words for t in (w["start_s"], w["end_s"])]
    assert times == sorted(times) and times[-1] <= heard_s + 1e-4
