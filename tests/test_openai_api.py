"""OpenAI's speech API on the real service: the official `openai` client, unmodified, streams
every response format as audio and as server-sent events from `joe` (by OpenAI's voice name)
and the attention test voice; bad requests are 4xx in OpenAI's error shape before any audio.

The service starts with an alias table, an input bound and an API key in its environment (the
ingress reads them when it starts), so that those settings are checked end to end too."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from voicestack.addons.search_path import find_voice
from voicestack.serve_app import openai_api
from voicestack.serve_app.formats import FORMATS, StreamEncoder

from .ray_service import running_service, wav_samples

pytestmark = pytest.mark.ray

TEXT = "Hello there. How are you today?"
SEED = 5
KEY = "sk-voicestack-test"
MAX_INPUT = 2000
#: nova speaks with the attention voice, narrator is a new name for joe, echo is removed.
ALIASES = {"nova": "test-attention", "narrator": "joe", "echo": None}
ENV = {
    openai_api.ALIASES_ENV: json.dumps(ALIASES),
    openai_api.MAX_INPUT_ENV: str(MAX_INPUT),
    "VOICESTACK_API_KEYS": KEY,
}
#: test-attention plays one stream at a time and lets none wait: the second is shed at once.
ADMISSION = {"streams": {"max_active": 1, "max_waiting": 0, "max_wait_s": 1, "retry_after_s": 3}}
PLACEMENT = {
    "default": {"num_cpus": 0.1},
    "blocks": {
        "Decoder": {"batching": {"max_batch_size": 16, "wait_ms": 2}},
        "Vocoder": {"batching": {"max_batch_size": 16, "wait_ms": 2}},
    },
    "voices": {"test-attention": {"Composer": ADMISSION}},
}
#: FFmpeg's demuxer for each compressed format.
DEMUXERS = {"mp3": "mp3", "opus": "ogg", "aac": "aac", "flac": "flac"}


@pytest.fixture(scope="module")
def service(voices_dir):
    """joe and test-attention; the environment the local Ray's processes start with carries
    the OpenAI settings (restored afterwards)."""
    voices = [str(find_voice("joe").path), str(voices_dir / "test-attention")]
    with running_service(voices, PLACEMENT, env=ENV) as running:
        url = f"http://127.0.0.1:{running['port']}"
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            yield {**running, "url": url, "http": http}


@pytest.fixture(scope="module")
def client(service) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{service['url']}/v1", api_key=KEY)


def speak(client: openai.OpenAI, **fields: Any) -> tuple[httpx.Headers, bytes]:
    """One request through the official client's streaming response: (headers, body)."""
    body = {"model": "tts-1", "voice": "alloy", "input": TEXT, "extra_body": {"seed": SEED}}
    body.update(fields)
    with client.audio.speech.with_streaming_response.create(**body) as response:
        assert response.status_code == 200
        data = b"".join(response.iter_bytes())
        return response.headers, data


def events(body: bytes) -> list[dict]:
    """The server-sent events of a body: each a `data:` line of JSON, then a blank line."""
    assert body.endswith(b"\n\n")
    out = []
    for block in body[:-2].split(b"\n\n"):
        assert block.startswith(b"data: "), block[:40]
        out.append(json.loads(block[len(b"data: ") :]))
    return out


def decode(fmt: str, data: bytes) -> tuple[int, np.ndarray]:
    """(sample rate, mono float samples) of a response body in `fmt`."""
    if fmt == "wav":
        rate, samples = wav_samples(data)
        return rate, samples / 32767
    if fmt == "pcm":
        return openai_api.PCM_RATE, np.frombuffer(data, dtype="<i2") / 32767
    import av

    with av.open(io.BytesIO(data), format=DEMUXERS[fmt]) as container:
        frames = list(container.decode(audio=0))
    assert frames, f"no audio decoded from {len(data)} bytes of {fmt}"
    rates = {f.sample_rate for f in frames}
    assert len(rates) == 1
    samples = np.concatenate([f.to_ndarray().astype(np.float64).reshape(-1) for f in frames])
    if frames[0].format.name.startswith("s16"):
        samples /= 32767
    return rates.pop(), samples


@pytest.fixture(scope="module")
def reference(client) -> np.ndarray:
    """joe's int16 samples for TEXT with SEED at its own rate, 22.05 kHz (a wav)."""
    headers, body = speak(client, response_format="wav")
    rate, samples = wav_samples(body)
    assert rate == 22050 and headers["x-voice"] == "joe" and headers["x-voice-alias"] == "alloy"
    return samples


def needs(fmt: str) -> None:
    if fmt not in FORMATS:
        pytest.skip(f"serve_app/formats.py has no {fmt} encoder yet")


@pytest.mark.parametrize("stream_format", ["audio", "sse"])
@pytest.mark.parametrize("fmt", openai_api.RESPONSE_FORMATS)
def test_the_official_client_streams_every_format(client, reference, fmt, stream_format):
    needs(fmt)
    headers, body = speak(client, response_format=fmt, stream_format=stream_format)
    if stream_format == "sse":
        assert headers["content-type"].startswith("text/event-stream")
        *streamed, done = events(body)
        # joe says when each word is spoken, before the audio holding it
        assert {e["type"] for e in streamed} == {"speech.audio.delta", "word"}
        deltas = [e for e in streamed if e["type"] == "speech.audio.delta"]
        assert len(deltas) >= 2  # streamed piece by piece, not one blob at the end
        data = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    else:
        data = body
    rate, samples = decode(fmt, data)
    expected_s = reference.size / 22050
    got_s = samples.size / rate
    if fmt in ("wav", "pcm", "flac"):  # lossless: the same samples (pcm at 24 kHz)
        if fmt != "pcm":
            assert samples.size == reference.size
            assert np.abs(samples * 32767 - reference).max() <= 2
        assert abs(got_s - expected_s) < 0.01
    else:  # lossy codecs add an encoder delay and pad to a whole frame
        assert expected_s - 0.01 < got_s < expected_s + 0.15
        assert np.abs(samples).max() > 0.05  # speech, not silence
    if stream_format == "sse":
        usage = done["usage"]
        assert done["type"] == "speech.audio.done"
        assert usage["input_tokens"] == len(TEXT)
        # voicestack's output tokens: the audio's milliseconds at the rate it was sent
        assert abs(usage["output_tokens"] - 1000 * expected_s) <= 20
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_the_sse_stream_carries_the_bytes_of_the_audio_stream(client):
    _, audio = speak(client, response_format="pcm")
    _, sse = speak(client, response_format="pcm", stream_format="sse")
    deltas = [e for e in events(sse) if e["type"] == "speech.audio.delta"]
    joined = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    got, expected = np.frombuffer(joined, "<i2"), np.frombuffer(audio, "<i2")
    assert got.size == expected.size
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 2


def test_pcm_is_24_khz_unless_sample_rate_says_otherwise(client, reference):
    headers, body = speak(client, response_format="pcm")
    assert headers["content-type"].startswith("audio/pcm;rate=24000")
    assert headers["x-sample-rate"] == "24000"
    ratio = (len(body) // 2) / reference.size
    assert abs(ratio - 24000 / 22050) < 0.005
    headers, body = speak(
        client, response_format="pcm", extra_body={"seed": SEED, "sample_rate": 22050}
    )
    assert headers["x-sample-rate"] == "22050"
    assert len(body) // 2 == reference.size


def test_speed_2_speaks_in_about_half_the_time(client, reference):
    _, body = speak(client, response_format="wav", speed=2.0)
    _, fast = wav_samples(body)
    # Durations are divided by the speed, then rounded up per phoneme (measured 0.55).
    assert 0.45 < fast.size / reference.size < 0.65


@pytest.mark.parametrize(
    "fields",
    [{"voice": "test-attention"}, {"model": "test-attention", "voice": "alloy"}, {"voice": "nova"}],
    ids=["by-voice", "by-model", "by-alias"],
)
def test_speed_on_a_voice_that_cannot_change_it_is_a_400_naming_the_voice(client, fields):
    with pytest.raises(openai.BadRequestError) as refused:
        speak(client, speed=2.0, **fields)
    assert refused.value.status_code == 400
    assert refused.value.param == "speed"
    assert "'test-attention' cannot change its speed" in refused.value.message


def test_which_voice_speaks_model_voice_and_aliases(client):
    """A voice's name; an alias, by the table in the environment; a voice named by `model`
    when `voice` is an alias; OpenAI's custom voice object."""
    cases = [
        ({"voice": "joe"}, "joe", None),
        ({"voice": "narrator"}, "joe", "narrator"),
        ({"voice": "nova"}, "test-attention", "nova"),
        ({"model": "test-attention", "voice": "shimmer"}, "test-attention", "shimmer"),
        ({"model": "test-attention", "voice": "joe"}, "joe", None),  # a voice's name wins
        ({"voice": {"id": "joe"}}, "joe", None),
    ]
    for fields, voice, alias in cases:
        headers, body = speak(client, response_format="pcm", input="Why not?", **fields)
        assert headers["x-voice"] == voice, fields
        assert headers.get("x-voice-alias") == alias, fields
        assert len(body) > 2000


def test_instructions_are_accepted_and_said_to_be_ignored(client):
    headers, _ = speak(client, response_format="pcm", instructions="Speak like a pirate.")
    assert headers["x-instructions-ignored"] == "true"
    assert "cannot follow instructions" in headers["x-instructions-ignored-reason"]
    headers, _ = speak(client, response_format="pcm")
    assert "x-instructions-ignored" not in headers


GOOD = {"model": "tts-1", "voice": "alloy", "input": TEXT, "response_format": "wav"}
#: (what changes in a good request, the param the error names, words its message has)
BAD = [
    ({"volume": 2}, "volume", ["volume: unknown key"]),
    ({"input": "x" * (MAX_INPUT + 1)}, "input", [f"at most {MAX_INPUT}"]),
    ({"input": ""}, "input", ["input"]),
    ({"speed": 4.5}, "speed", ["speed"]),
    ({"speed": 0.1}, "speed", ["speed"]),
    ({"response_format": "ogg"}, "response_format", ["response_format"]),
    ({"stream_format": "chunks"}, "stream_format", ["stream_format"]),
    ({"voice": "nobody"}, "voice", ["unknown voice 'nobody'", "joe", "test-attention", "alloy"]),
    ({"voice": "echo"}, "voice", ["unknown voice 'echo'"]),  # removed by the alias table
    ({"speaker": "bob"}, "speaker", ["one speaker"]),
    ({"sample_rate": 5}, "sample_rate", ["sample_rate"]),
]


@pytest.mark.parametrize(("change", "param", "words"), BAD, ids=[b[1] for b in BAD])
def test_a_bad_request_is_a_400_in_openais_shape_naming_the_param(
    service, client, change, param, words
):
    body = {**GOOD, **change}
    response = service["http"].post("/v1/audio/speech", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert all(w in error["message"] for w in words), error

    # The official client raises it, with the param; fields it lacks go in extra_body.
    known = {"model", "voice", "input", "response_format", "speed", "instructions"}
    fields = {k: v for k, v in body.items() if k in known | {"stream_format"}}
    extra = {k: v for k, v in body.items() if k not in fields}
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(**fields, extra_body=extra or None)
    assert refused.value.param == param
    assert refused.value.type == "invalid_request_error"


def test_a_body_that_is_not_json_is_a_400_in_openais_shape(service):
    response = service["http"].post(
        "/v1/audio/speech", content=b"not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_without_the_key_each_route_refuses_in_its_own_shape(service):
    with httpx.Client(base_url=service["url"], timeout=60) as anonymous:
        speech = anonymous.post("/v1/audio/speech", json=GOOD)
        native = anonymous.post("/v1/synthesize", json={"voice": "joe", "text": TEXT})
        models = anonymous.get("/v1/models")
    assert speech.status_code == native.status_code == models.status_code == 401
    assert speech.json()["error"]["code"] == "invalid_api_key"
    assert models.json()["error"]["type"] == "invalid_request_error"
    assert isinstance(native.json()["error"], str)  # /v1/synthesize keeps its own shape
    wrong = openai.OpenAI(base_url=f"{service['url']}/v1", api_key="sk-wrong")
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_a_voice_at_capacity_is_a_503_with_retry_after_in_openais_shape(service, client):
    long = " ".join(["Why not speak for a while?"] * 70)  # within MAX_INPUT
    assert len(long) <= MAX_INPUT
    body = {**GOOD, "voice": "nova", "input": long, "response_format": "pcm"}
    with service["http"].stream("POST", "/v1/audio/speech", json=body) as playing:
        assert playing.status_code == 200
        chunks = playing.iter_raw()
        assert len(next(chunks)) > 0  # one stream plays: the voice's only slot
        shed = service["http"].post("/v1/audio/speech", json={**body, "input": "Hi."})
        assert shed.status_code == 503 and shed.headers["retry-after"] == "3"
        assert shed.json()["error"]["type"] == "server_error"
        assert "capacity" in shed.json()["error"]["message"]
        # The official client would retry after 3 s; without retries it raises at once.
        with pytest.raises(openai.InternalServerError) as refused:
            client.with_options(max_retries=0).audio.speech.create(
                model="tts-1", voice="nova", input="Hi.", response_format="pcm"
            )
        assert refused.value.status_code == 503
    for _ in range(50):  # the hung-up stream frees its slot
        if service["http"].post("/v1/audio/speech", json={**body, "input": "Hi."}).is_success:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the voice stayed at capacity after its stream was closed")


def test_models_lists_openais_models_and_each_voice(service, client):
    models = {m.id: m for m in client.models.list()}
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "joe", "test-attention"} <= set(models)
    assert all(m.object == "model" and m.owned_by == "voicestack" for m in models.values())
    raw = service["http"].get("/v1/models").json()
    assert raw["object"] == "list"
    assert set(raw["data"][0]) == {"id", "object", "created", "owned_by"}
    assert client.models.retrieve("joe").id == "joe"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("whisper-1")
    audio_models = service["http"].get("/v1/audio/models").json()["models"]
    assert {"id": "tts-1"} in audio_models


def test_audio_voices_lists_voices_and_aliases_with_id_and_name(service):
    voices = {v["id"]: v for v in service["http"].get("/v1/audio/voices").json()["voices"]}
    assert voices["joe"]["name"] == "joe" and voices["test-attention"]["name"] == "test-attention"
    assert voices["alloy"]["alias_of"] == "joe"
    assert voices["nova"]["alias_of"] == "test-attention"
    assert voices["narrator"]["alias_of"] == "joe"
    assert "echo" not in voices
    assert set(openai_api.OPENAI_VOICES) - {"echo"} <= set(voices)
    native = service["http"].get("/v1/voices").json()
    assert native["aliases"]["alloy"] == "joe" and native["aliases"]["nova"] == "test-attention"


# --- without a service: the settings and the events -------------------------------------


def test_the_default_settings_are_openais():
    settings = openai_api.Settings.from_env({})
    assert settings.max_input_chars == 4096
    assert settings.aliases == dict.fromkeys(openai_api.OPENAI_VOICES)
    assert openai_api.default_voice(["espeak-duration", "joe"]) == "joe"
    assert openai_api.default_voice(["espeak-duration", "lessac"]) == "espeak-duration"
    assert openai_api.default_voice([], ["joe"]) == "joe"
    assert openai_api.default_voice([]) is None


@pytest.mark.parametrize(
    "env",
    [
        {openai_api.ALIASES_ENV: "[1]"},
        {openai_api.ALIASES_ENV: '{"alloy": 3}'},
        {openai_api.ALIASES_ENV: "{"},
        {openai_api.MAX_INPUT_ENV: "lots"},
        {openai_api.MAX_INPUT_ENV: "0"},
    ],
)
def test_settings_that_cannot_be_read_stop_the_ingress_naming_the_variable(env):
    with pytest.raises(ValueError, match=next(iter(env))):
        openai_api.Settings.from_env(env)


class FailingStream:
    """A voice's stream that fails after its first audio."""

    def __init__(self) -> None:
        self.cancelled = False

    async def __anext__(self) -> dict:
        raise RuntimeError("the vocoder fell over")

    def cancel(self) -> None:
        self.cancelled = True


async def _drain(body) -> bytes:
    return b"".join([part async for part in body])


def test_an_sse_stream_that_fails_after_it_started_ends_with_an_error_event():
    import asyncio

    from voicestack.serve_app.ingress import _body

    stream = FailingStream()
    first = {"type": "audio", "samples": np.full(2205, 0.1, dtype=np.float32)}
    encoder = openai_api.SseEncoder(StreamEncoder("pcm", 22050), len(TEXT))
    body = asyncio.run(_drain(_body(stream, first, encoder, None)))
    delta, error = events(body)
    assert delta["type"] == "speech.audio.delta"
    assert len(base64.b64decode(delta["audio"])) == 2 * 2205
    assert error["type"] == "error"
    assert error["error"]["type"] == "server_error"
    assert "the vocoder fell over" in error["error"]["message"]
    assert stream.cancelled


def test_sse_words_come_before_the_audio_that_holds_them(client):
    _, body = speak(client, response_format="pcm", stream_format="sse")
    sent_s = 0.0  # audio sent before each event, in seconds at 24 kHz
    words = []
    for event in events(body):
        if event["type"] == "speech.audio.delta":
            sent_s += len(base64.b64decode(event["audio"])) / 2 / openai_api.PCM_RATE
        elif event["type"] == "word":
            assert event["start_s"] >= sent_s - 0.02  # not yet heard (one resampler block)
            words.append(event)
    assert [w["word"] for w in words] == ["Hello", "there", "How", "are", "you", "today"]
    assert all(TEXT[w["text_start"] : w["text_end"]] == w["word"] for w in words)


def test_timestamps_true_answers_the_audio_and_its_words_in_one_json(service, reference):
    response = service["http"].post(
        "/v1/audio/speech",
        json={
            "model": "tts-1",
            "voice": "joe",
            "input": TEXT,
            "response_format": "wav",
            "timestamps": True,
            "seed": SEED,
        },
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["audio_format"] == "wav" and body["sample_rate"] == 22050
    rate, samples = wav_samples(base64.b64decode(body["audio"]))
    assert rate == 22050 and np.abs(samples - reference).max() <= 2
    words = body["timestamps"]
    assert [w["word"] for w in words] == ["Hello", "there", "How", "are", "you", "today"]
    times = [t for w in words for t in (w["start_time"], w["end_time"])]
    assert times == sorted(times) and times[-1] <= samples.size / rate


def test_timestamps_with_an_sse_stream_is_a_400_naming_the_field(service):
    response = service["http"].post(
        "/v1/audio/speech",
        json={
            "model": "tts-1",
            "voice": "joe",
            "input": TEXT,
            "stream_format": "sse",
            "timestamps": True,
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "timestamps"
