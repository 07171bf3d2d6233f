"""Bad input, answered honestly: a catalogue of malformed requests to both synthesis routes of
the running service, each answered with a 4xx JSON error naming the problem (or with audio,
where the text has something speakable), never a 5xx, a hang, or another request's audio; and
the service healthy afterwards, giving the same audio for the same request as before.

One Ray and one service for the module: the duration test voice and the Piper voice joe."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
import pytest
from voicestack.addons.search_path import find_voice

from .ray_service import running_service, wav_samples
from .same_audio import SAME_TEXT_LSB

pytestmark = pytest.mark.ray

#: As tests/test_piper_serve.py: chunks of streams that meet are one network call.
PLACEMENT = {
    "default": {"num_cpus": 0.1},
    "blocks": {
        "Decoder": {"batching": {"max_batch_size": 16, "wait_ms": 2}},
        "Vocoder": {"batching": {"max_batch_size": 16, "wait_ms": 2}},
    },
}
#: A case that takes longer than this is a hang: the test fails instead of waiting.
CASE_TIMEOUT_S = 60

SYNTH = "/v1/synthesize"
SPEECH = "/v1/audio/speech"
DUR = "test-duration"
AUDIO = "audio"


@pytest.fixture(scope="module")
def service(voices_dir):
    voices = [str(voices_dir / DUR), str(find_voice("joe").path)]
    with running_service(voices, PLACEMENT) as running:
        yield running


@dataclass(frozen=True)
class Case:
    """One malformed request: `body` is a dict sent as JSON or the raw bytes of the body;
    `expect` the status, or AUDIO; `words` what the error message must contain."""

    id: str
    route: str
    body: dict | bytes | str
    expect: int | str
    words: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    #: Audio for minutes: only its first bytes are read, then the client hangs up.
    partial: bool = False


def S(id: str, body, expect, *words: str, **headers: str) -> Case:  # noqa: N802
    return Case(id, SYNTH, body, expect, words, headers)


def O(id: str, body, expect, *words: str, **headers: str) -> Case:  # noqa: N802, E743
    return Case(id, SPEECH, body, expect, words, headers)


def syn(**fields) -> dict:
    return {"voice": DUR, "text": "Hello there."} | fields


def oai(**fields) -> dict:
    return {"model": "tts-1", "input": "Hello there.", "voice": "joe"} | fields


def raw(text: str) -> bytes:
    """A body written as JSON text (escapes, NaN, duplicate keys as they stand)."""
    return text.encode("utf-8")


NOTHING = "nothing to say"
SSML = "<speak>Hello <break time='500ms'/> there.</speak>"
CATALOGUE: list[Case] = [
    # --- POST /v1/synthesize: not a request -------------------------------------------------
    S("syn-not-json", b"not json", 422, "JSON"),
    S("syn-empty-body", b"", 422, "no body"),
    S("syn-json-array", raw('["test-duration", "Hello."]'), 422, "valid dictionary"),
    S("syn-json-string", raw('"Hello."'), 422, "valid dictionary"),
    S("syn-json-null", raw("null"), 422, "valid dictionary"),
    # Starlette's words for a body it cannot parse (OpenAI's routes say it in their shape).
    S(
        "syn-invalid-utf8",
        b'{"voice": "test-duration", "text": "caf\xe9 \xff\xfe"}',
        400,
        "parsing",
    ),
    S("syn-nested-5000", b"[" * 5000 + b"]" * 5000, 400, "parsing"),
    S(
        "syn-text-plain-type",
        json.dumps(syn()),
        422,
        "valid dictionary",
        **{"content-type": "text/plain"},
    ),
    # --- wrong types, field by field ---------------------------------------------------------
    S("syn-voice-int", syn(voice=5), 422, "voice"),
    S("syn-voice-missing", {"text": "Hi."}, 422, "voice", "missing required key"),
    S("syn-text-int", syn(text=5), 422, "text"),
    S("syn-text-list", syn(text=["Hi."]), 422, "text"),
    S("syn-text-null", syn(text=None), 422, "text"),
    S("syn-format-int", syn(format=5), 422, "format"),
    S("syn-format-unknown", syn(format="ogg"), 422, "format", "opus"),
    S("syn-with-mel-string", syn(with_mel="yes please"), 422, "with_mel"),
    S("syn-seed-string", syn(seed="abc"), 422, "seed"),
    S("syn-seed-huge", syn(seed=10**30), 422, "seed"),
    S("syn-seed-negative", syn(seed=-1), 422, "seed"),
    S("syn-speaker-list", syn(speaker=[1]), 422, "speaker"),
    S("syn-speed-string", syn(speed="fast"), 422, "speed"),
    S("syn-speed-zero", syn(speed=0), 422, "speed"),
    S("syn-rate-0", syn(sample_rate=0), 422, "sample_rate"),
    S("syn-rate-minus-1", syn(sample_rate=-1), 422, "sample_rate"),
    S("syn-rate-1e12", syn(sample_rate=10**12), 422, "sample_rate"),
    S("syn-rate-abc", syn(sample_rate="abc"), 422, "sample_rate"),
    S("syn-rate-float", syn(sample_rate=16000.5), 422, "sample_rate"),
    S("syn-unknown-field", syn(volume=2, ssml=True), 422, "volume", "ssml"),
    # --- JSON that Python reads but JSON does not have ---------------------------------------
    S(
        "syn-speed-nan",
        raw('{"voice": "test-duration", "text": "Hi.", "speed": NaN}'),
        422,
        "speed",
    ),
    S(
        "syn-speed-infinity",
        raw('{"voice": "test-duration", "text": "Hi.", "speed": Infinity}'),
        422,
        "speed",
    ),
    S(
        "syn-rate-minus-infinity",
        raw('{"voice": "test-duration", "text": "Hi.", "sample_rate": -Infinity}'),
        422,
        "sample_rate",
    ),
    # Duplicate keys: the last one wins (Python's json), as most parsers do.
    S(
        "syn-duplicate-key-last-empty",
        raw('{"voice": "test-duration", "text": "Hello.", "text": "..."}'),
        400,
        NOTHING,
    ),
    S(
        "syn-duplicate-key-last-speakable",
        raw('{"voice": "nobody", "text": "...", "voice": "test-duration", "text": "Hi."}'),
        AUDIO,
    ),
    # --- the voice's name -----------------------------------------------------------------
    S("syn-voice-path", syn(voice="../etc"), 404, "unknown voice '../etc'", DUR),
    S("syn-voice-path-deep", syn(voice="../../etc/passwd"), 404, "unknown voice"),
    S("syn-voice-empty", syn(voice=""), 422, "voice"),
    S("syn-voice-nul", syn(voice="joe\x00"), 404, "unknown voice"),
    # --- text with nothing, or something, to say --------------------------------------------
    S("syn-text-empty", syn(text=""), 422, "text"),
    S("syn-text-whitespace", syn(text=" \n\t\r  "), 400, NOTHING),
    S("syn-text-punctuation", syn(text="?!...;;--,,"), 400, NOTHING),
    S("syn-text-emoji", syn(text="😀😀 🎉👍🏽"), 400, NOTHING),
    S("syn-text-control-only", syn(text="\x00\x01\x07\x1b\x7f"), 400, NOTHING),
    S("syn-text-control-and-words", syn(text="Hello\x00 wor\x07ld.\x1b"), AUDIO),
    # A lone surrogate is no character: pydantic's JSON parser refuses it, naming the field
    # (the WebSocket route reads JSON with Python's json, which lets it through: see below).
    S(
        "syn-text-lone-surrogate",
        raw('{"voice": "test-duration", "text": "\\ud800"}'),
        422,
        "text",
        "unicode",
    ),
    S(
        "syn-text-surrogate-in-word",
        raw('{"voice": "test-duration", "text": "Hello wor\\udfffld.", "format": "msgpack"}'),
        422,
        "text",
        "unicode",
    ),
    S("syn-text-rtl-hebrew", syn(text="שלום עולם"), 400, NOTHING),
    S("syn-text-rtl-override", syn(text="Hello \u202eworld\u202c."), AUDIO),
    S("syn-text-combining", syn(text="Cafe\u0301 nai\u0308ve, n\u0303\u0303\u0303."), AUDIO),
    S("syn-text-chinese", syn(text="你好世界。"), 400, NOTHING),
    S("syn-text-arabic", syn(text="مرحبا بالعالم"), 400, NOTHING),
    S("syn-text-devanagari", syn(text="नमस्ते दुनिया"), 400, NOTHING),
    S("syn-text-dots-20000", syn(text="." * 20_000), 400, NOTHING),
    Case("syn-text-word-5000", SYNTH, syn(text="ab" * 2_500), AUDIO, partial=True),
    Case("syn-text-digits-2000", SYNTH, syn(text="7" * 2_000), AUDIO, partial=True),
    # SSML is not interpreted: the markup is text, its symbols skipped, its words spoken.
    S("syn-ssml", syn(text=SSML), AUDIO),
    S("syn-body-2mb", syn(text="word " * 400_000), 413, "larger than"),
    S("syn-text-over-100000", syn(text="a " * 50_001), 422, "text", "100000"),
    # --- POST /v1/audio/speech (OpenAI's shape: 400 where FastAPI says 422) ------------------
    O("oai-not-json", b"{not json", 400, "JSON"),
    O("oai-json-array", raw('[{"model": "tts-1"}]'), 400, "valid dictionary"),
    O("oai-json-number", raw("42"), 400, "valid dictionary"),
    O("oai-invalid-utf8", b'{"model": "tts-1", "input": "\xc3\x28", "voice": "joe"}', 400),
    O("oai-model-missing", {"input": "Hi.", "voice": "joe"}, 400, "model"),
    O("oai-model-int", oai(model=1), 400, "model"),
    O("oai-input-int", oai(input=12), 400, "input"),
    O("oai-input-null", oai(input=None), 400, "input"),
    O("oai-input-empty", oai(input=""), 400, "input"),
    O("oai-input-whitespace", oai(input="   \n "), 400, NOTHING),
    O("oai-input-punctuation", oai(input="?!...;;--,,"), 400, NOTHING),
    # joe reads as Piper does: espeak-ng says "exclamation" for "!!!???..." and names emoji
    # ("grinning", "party"); the duration voice finds nothing to say in either.
    O("oai-input-exclamations-joe", oai(input="!!!???...", response_format="wav"), AUDIO),
    O("oai-input-emoji-joe", oai(input="😀🎉", response_format="wav"), AUDIO),
    O("oai-input-emoji-duration", oai(input="😀🎉", voice=DUR), 400, NOTHING),
    O("oai-input-over-4096", oai(input="a" * 5_000), 400, "input", "4096"),
    O("oai-voice-path", oai(voice="../etc"), 400, "unknown voice '../etc'"),
    O("oai-voice-object-empty", oai(voice={"id": ""}), 400, "voice"),
    O("oai-voice-object-unknown-key", oai(voice={"name": "joe"}), 400, "voice"),
    O("oai-voice-list", oai(voice=["joe"]), 400, "voice"),
    O("oai-format-unknown", oai(response_format="ogg"), 400, "response_format"),
    O("oai-stream-format-unknown", oai(stream_format="websocket"), 400, "stream_format"),
    O("oai-speed-string", oai(speed="fast"), 400, "speed"),
    O(
        "oai-speed-nan",
        raw('{"model": "tts-1", "input": "Hi.", "voice": "joe", "speed": NaN}'),
        400,
        "speed",
    ),
    O("oai-rate-1e12", oai(sample_rate=10**12), 400, "sample_rate"),
    O("oai-rate-abc", oai(sample_rate="abc"), 400, "sample_rate"),
    O("oai-seed-huge", oai(seed=2**64), 400, "seed"),
    O("oai-timestamps-string", oai(timestamps="sometimes"), 400, "timestamps"),
    O("oai-instructions-int", oai(instructions=5), 400, "instructions"),
    O("oai-unknown-field", oai(temperature=0.7), 400, "temperature"),
    O(
        "oai-duplicate-keys",
        raw('{"model": "tts-1", "input": "Hi.", "voice": "joe", "voice": "../etc"}'),
        400,
        "../etc",
    ),
    O("oai-body-2mb", oai(input="word " * 400_000), 413, "larger than"),
    # Text joe's espeak-ng reads (it names what it cannot read as letters of their script).
    O("oai-input-nul-and-words", oai(input="Hello\x00 there.", response_format="wav"), AUDIO),
    O(
        "oai-input-surrogate",
        raw('{"model": "tts-1", "input": "Hel\\ud800lo.", "voice": "joe", "timestamps": true}'),
        400,
        "input",
        "unicode",
    ),
    O("oai-input-chinese", oai(input="你好。", response_format="wav"), AUDIO),
    O("oai-input-arabic", oai(input="مرحبا", response_format="wav"), AUDIO),
    O("oai-input-devanagari", oai(input="नमस्ते", response_format="wav"), AUDIO),
    O("oai-input-rtl-combining", oai(input="e\u0301\u0301 \u202eab", response_format="wav"), AUDIO),
    O("oai-input-ssml", oai(input=SSML, response_format="wav"), AUDIO),
    Case(
        "oai-input-digits-2000",
        SPEECH,
        oai(input="3" * 2_000, voice=DUR, response_format="pcm"),
        AUDIO,
        partial=True,
    ),
]


#: What a `partial` case reads of its audio before it hangs up.
PARTIAL_BYTES = 64_000


def send(client: httpx.Client, case: Case) -> httpx.Response:
    """The response to `case`; a timeout between two pieces of the body is a hang."""
    headers = {"content-type": "application/json"} | case.headers
    content = json.dumps(case.body).encode() if isinstance(case.body, dict) else case.body
    if not case.partial:
        return client.post(case.route, content=content, headers=headers, timeout=CASE_TIMEOUT_S)
    request = client.build_request(
        "POST", case.route, content=content, headers=headers, timeout=CASE_TIMEOUT_S
    )
    response = client.send(request, stream=True)
    try:
        got = b""
        for piece in response.iter_bytes():
            got += piece
            if len(got) >= PARTIAL_BYTES:
                break
    finally:
        response.close()
    response._content = got  # what was read, as the body
    return response


def error_message(case: Case, response: httpx.Response) -> str:
    body = response.json()
    if case.route == SPEECH:  # OpenAI's shape
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}, body
        assert error["type"] == "invalid_request_error", body
        return error["message"]
    assert isinstance(body["error"], str), body
    return body["error"]


def check(client: httpx.Client, case: Case) -> str:
    """The outcome of one case, "" when it is as expected, else what went wrong."""
    try:
        response = send(client, case)
    except httpx.TimeoutException:
        return f"no answer in {CASE_TIMEOUT_S} s (a hang)"
    except httpx.TransportError as e:  # a stream cut off after it started
        return f"the response broke off: {type(e).__name__}: {e}"
    status = response.status_code
    if status >= 500:
        return f"{status}: {response.text[:300]}"
    if case.expect == AUDIO:
        if status != 200:
            return f"expected audio, got {status}: {response.text[:300]}"
        kind = response.headers["content-type"]
        if kind == "application/json":  # timestamps: the audio in base64 with its words
            audio = response.json()["audio"]
            return "" if len(audio) > 100 else f"no audio: {response.text[:200]}"
        if kind.startswith("text/event-stream"):
            events = [
                json.loads(line[6:]) for line in response.text.splitlines() if line[:6] == "data: "
            ]
            kinds = [e["type"] for e in events]
            if "error" in kinds or kinds[-1:] != ["speech.audio.done"]:
                return f"the event stream failed: {events[-1]}"
            return ""
        if kind == "application/x-msgpack":
            from voicestack.serve_app.formats import decode_msgpack_stream

            messages = decode_msgpack_stream(response.content)
            if messages[-1]["type"] != "end":
                return f"the stream ended with {messages[-1]}"
            return ""
        if len(response.content) <= 44:
            return f"an empty {kind} body ({len(response.content)} bytes)"
        return ""
    if status != case.expect:
        return f"expected {case.expect}, got {status}: {response.text[:300]}"
    try:
        message = error_message(case, response)
    except (ValueError, KeyError, AssertionError) as e:
        return f"not a JSON error in the API's shape ({e!r}): {response.text[:300]}"
    missing = [w for w in case.words if w.lower() not in message.lower()]
    if missing:
        return f"the error does not say {missing}: {message[:300]}"
    return ""


def normal(client: httpx.Client) -> np.ndarray:
    response = client.post(
        SYNTH, json={"voice": DUR, "text": "Still here, and well."}, timeout=CASE_TIMEOUT_S
    )
    assert response.status_code == 200, response.text
    return wav_samples(response.content)[1]


def test_the_catalogue_has_at_least_forty_cases_with_unique_names():
    assert len(CATALOGUE) >= 40
    assert len({c.id for c in CATALOGUE}) == len(CATALOGUE)


def test_every_malformed_request_is_answered_honestly_and_the_service_stays_well(service):
    client = service["client"]
    before = normal(client)
    failures, took = {}, {}
    for case in CATALOGUE:
        t0 = time.monotonic()
        outcome = check(client, case)
        took[case.id] = round(time.monotonic() - t0, 2)
        if outcome:
            failures[case.id] = outcome
    slowest = sorted(took.items(), key=lambda kv: -kv[1])[:5]
    print(f"{len(CATALOGUE)} cases, {len(failures)} failed; slowest: {slowest}")
    assert not failures, "\n".join(f"{k}: {v}" for k, v in failures.items())
    health = client.get("/healthz", timeout=CASE_TIMEOUT_S)
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    after = normal(client)
    assert after.shape == before.shape  # not one sample more or less: no other request's audio
    assert np.abs(after.astype(int) - before.astype(int)).max() <= SAME_TEXT_LSB


# --- generated requests: schemathesis, from the service's own OpenAPI schema ----------------

#: Generated requests per operation and mode (positive: fits the schema; negative: does not).
SCHEMA_EXAMPLES = 30


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("path", [SYNTH, SPEECH])
def test_requests_generated_from_the_openapi_schema_get_no_server_error(service, path, mode):
    """schemathesis reads `/openapi.json` from the running service and sends what it generates
    for the operation; half the positive cases name a deployed voice, so that they reach one.
    No answer may be a 5xx or take longer than CASE_TIMEOUT_S; every 4xx is a JSON error in the
    route's shape, every 200 carries a body."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation.modes import GenerationMode

    base = f"http://127.0.0.1:{service['port']}"
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json", wait_for_schema=60)
    operation = schema[path]["POST"]
    cases = operation.as_strategy(GenerationMode(mode))
    voices = st.sampled_from([None, DUR, "joe"]) if mode == "positive" else st.none()
    field_of_voice = "voice"
    seen: list[int] = []

    @settings(
        max_examples=SCHEMA_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, voice=voices)
    def run(case, voice) -> None:
        if voice is not None and isinstance(case.body, dict):
            case.body[field_of_voice] = voice
        response = case.call(base_url=base, timeout=CASE_TIMEOUT_S)
        seen.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])
        if 400 <= response.status_code < 500:
            error = response.json()["error"]
            message = error["message"] if path == SPEECH else error
            assert isinstance(message, str) and message, response.text
        else:
            assert response.status_code == 200 and response.content, response.status_code

    run()
    counts = {s: seen.count(s) for s in sorted(set(seen))}
    print(f"{path} {mode}: {len(seen)} requests, statuses {counts}")
    assert client_ok(service["client"])


def client_ok(client: httpx.Client) -> bool:
    health = client.get("/healthz", timeout=CASE_TIMEOUT_S)
    return health.status_code == 200 and health.json()["status"] == "ok"


def test_a_lone_surrogate_sent_over_the_websocket_is_spoken_around(service):
    """The WebSocket route reads its JSON with Python's json, which keeps a lone surrogate
    ("\\ud800" escaped in JSON): the duration voice skips it as a character it cannot speak
    (its front end once handed it to espeak-ng and failed), speaks the rest, and sends the
    word that holds it with U+FFFD in its place (a surrogate cannot be sent as UTF-8)."""
    import asyncio

    import websockets

    async def talk() -> tuple[bytes, list[dict]]:
        audio, messages = bytearray(), []
        url = f"ws://127.0.0.1:{service['port']}/v1/audio/speech/stream"
        async with websockets.connect(url) as socket:
            await socket.send(json.dumps({"voice": DUR, "format": "pcm"}))
            await socket.send(json.dumps({"text": "Hello wor\ud800ld. And more."}))
            await socket.send(json.dumps({"flush": True}))
            async for message in socket:
                if isinstance(message, bytes):
                    audio.extend(message)
                else:
                    messages.append(json.loads(message))
                    if messages[-1]["type"] in ("end", "error"):
                        break
        return bytes(audio), messages

    audio, messages = asyncio.run(asyncio.wait_for(talk(), CASE_TIMEOUT_S))
    assert messages[-1]["type"] == "end", messages[-1]
    assert len(audio) > 1000
    words = [m["word"] for m in messages if m["type"] == "word"]
    assert "wor\ufffdld" in words, words
