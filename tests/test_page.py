"""The page at `/` (serve_app/page.html) in a real headless browser: Debian's Chromium driven by
Playwright, against the real service with two voices. Play streams the msgpack response,
schedules each chunk on Web Audio as it arrives and lights each word when the audio clock
reaches it; Stop aborts the stream; errors show the API's message; Download saves a file.

Chromium in a container has no sound card: its Web Audio clock runs anyway, on a null sink
(checked below: the clock passes the end of every chunk scheduled), so nothing is faked.
`make test` installs Chromium (apt-get) where it is missing; without it these tests fail,
saying so, rather than skip."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
import pytest
from voicestack.addons.search_path import find_voice
from voicestack.blocks.errors import ServiceError
from voicestack.serve_app.admission import Admission, Overloaded
from voicestack.serve_app.auth import refusal
from voicestack.serve_app.formats import decode_msgpack_stream
from voicestack.serve_app.ingress import refusal_response

from .ray_service import running_service

pytestmark = pytest.mark.ray

CHROMIUM = "/usr/bin/chromium"
VOICES = ["espeak-duration", "joe"]
TEXT = "Hello there. The weather is lovely today, is it not?"
WORDS = [w.strip(".,!?") for w in TEXT.split()]
#: Twenty sentences: a stream of several seconds, to stop in its middle.
LONG = " ".join(f"This is sentence number {n}, and it goes on for a while." for n in range(1, 21))
#: As tests/test_piper_serve.py: the laptop placement's batching.
PLACEMENT = {
    "default": {"num_cpus": 0.1},
    "blocks": {
        "Decoder": {"batching": {"max_batch_size": 16, "wait_ms": 2}},
        "Vocoder": {"batching": {"max_batch_size": 16, "wait_ms": 2}},
    },
}
#: Synthesis on two shared cores, and the audio played in real time: generous bounds.
WAIT_MS = 180_000


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the page test drives Debian's Chromium. `make test` "
            "installs it where apt-get is available; elsewhere, install the `chromium` package.",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: pip install -e '.[test]'", pytrace=False)
    args = ["--autoplay-policy=no-user-gesture-required"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root in its sandbox
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def service(browser):  # the browser first: a missing Chromium fails before Ray starts
    voices = [str(find_voice(name).path) for name in VOICES]
    with running_service(voices, PLACEMENT) as running:
        running["url"] = f"http://127.0.0.1:{running['port']}/"
        yield running


@pytest.fixture
def page(browser, service):
    """The page, loaded, its voices listed; afterwards: no script error, nothing fetched but
    the service's own routes."""
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    urls: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: urls.append(request.url))
    page.goto(service["url"])
    page.wait_for_function("() => window.voicestack.voices.length > 0", timeout=WAIT_MS)
    yield page
    context.close()
    assert errors == []
    elsewhere = [u for u in urls if not u.startswith((service["url"], "data:", "blob:"))]
    assert elsewhere == []


def status(page) -> dict:
    return page.evaluate("({...window.voicestack})")


def finished(page, states: str = "done stopped error") -> dict:
    page.wait_for_function(
        f"() => {states.split()!r}.includes(window.voicestack.state)", timeout=WAIT_MS
    )
    return status(page)


def test_the_page_is_one_self_contained_file_that_needs_no_key(service):
    response = service["client"].get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    # Nothing from elsewhere: no address in it, no script or style file, and a policy that
    # lets the browser fetch nothing but this service.
    assert not re.search(r"https?:|<script[^>]*\ssrc=|<link[^>]*stylesheet", response.text)
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "connect-src 'self'" in response.headers["content-security-policy"]
    # With keys configured the page is still open (its API calls send the key typed in).
    assert refusal("/", None, {"a-key"}) is None
    assert refusal("/v1/voices", None, {"a-key"}) is not None


def test_the_voice_picker_lists_every_voice_with_its_language(page, service):
    listed = service["client"].get("/v1/voices").json()["voices"]
    options = page.locator("#voice option")
    assert options.evaluate_all("os => os.map(o => o.value)") == VOICES
    assert options.all_inner_texts() == [
        f"{v['name']} ({v['language']})" for v in sorted(listed, key=lambda v: v["name"])
    ]
    # Every control is named by its label, for a screen reader and for the keyboard.
    for label, tag in [("Text", "textarea"), ("Voice", "select"), ("Download as", "select")]:
        assert page.get_by_label(label, exact=True).evaluate("e => e.localName") == tag
    for name in ("Play", "Stop", "Download", "Reload voices"):
        assert page.get_by_role("button", name=name, exact=True).count() == 1
    for voice in VOICES:  # one speaker each, both with durations: a speed, no speaker
        page.select_option("#voice", voice)
        assert page.get_by_label("Speed").is_visible() and page.is_hidden("#speaker")


@pytest.mark.parametrize("voice", VOICES)
def test_play_streams_each_chunk_and_lights_each_word_when_it_is_heard(page, service, voice):
    page.select_option("#voice", voice)
    page.fill("#text", TEXT)
    if voice == "joe":  # from the keyboard: Ctrl+Enter in the text
        page.focus("#text")
        page.keyboard.press("Control+Enter")
    else:
        page.click("#play")
    page.wait_for_function("() => window.voicestack.chunks > 0", timeout=WAIT_MS)
    heard = finished(page)
    assert heard["state"] == "done", heard["error"]
    assert heard["chunks"] >= 2 and heard["streamEnded"]
    rate = 22050
    assert abs(heard["audioSeconds"] - heard["samples"] / rate) < 1e-6
    if voice == "espeak-duration":  # no noise: as long as the same request's pcm
        pcm = service["client"].post(
            "/v1/synthesize", json={"voice": voice, "text": TEXT, "format": "pcm"}
        )
        assert heard["samples"] == len(pcm.content) // 2
    # Played as it came: the first chunk was scheduled before the stream's end.
    assert 0 < heard["firstAudioMs"] < heard["streamSeconds"] * 1000
    assert heard["rtf"] == pytest.approx(heard["streamSeconds"] / heard["audioSeconds"])
    # The audio clock ran (a null sink, no sound card) past the end of every chunk.
    assert heard["audioClock"] >= heard["audioSeconds"]
    # Each word of the text lit in order, once the clock reached its start, never before.
    assert heard["words"] == WORDS
    times = heard["wordTimes"]
    assert [t["heard_s"] for t in times] == sorted(t["heard_s"] for t in times)
    late = [t["heard_s"] - t["start_s"] for t in times]
    assert all(0 <= d < 1.0 for d in late), times  # a 25 ms tick, on a busy machine
    assert page.locator("#spoken .word.said").all_inner_texts() == WORDS
    assert page.locator("#spoken").inner_text() == TEXT
    line = page.inner_text("#status")
    assert "first audio after" in line and "real-time factor" in line, line
    assert page.is_hidden("#error") and page.is_disabled("#stop")


@pytest.mark.parametrize(
    ("voice", "text", "message"),
    [
        ("nobody", TEXT, "unknown voice 'nobody' (known: espeak-duration, joe)"),
        ("espeak-duration", "", "text: String should have at least 1 character"),
        ("espeak-duration", "\U0001f642 \U0001f642", "nothing to say"),
    ],
)
def test_a_refused_request_shows_the_apis_message(page, voice, text, message):
    if voice not in VOICES:  # a voice gone since the list was read
        page.evaluate(f"document.getElementById('voice').add(new Option({voice!r}, {voice!r}))")
    page.select_option("#voice", voice)
    page.fill("#text", text)
    page.click("#play")
    shown = finished(page)
    assert shown["state"] == "error" and message in shown["error"]
    assert page.locator("#error").is_visible()
    assert message in page.inner_text("#error") and shown["chunks"] == 0


def test_a_voice_at_capacity_shows_its_503_message(page):
    """The 503 is a fake, routed in the browser (as the multi-speaker test below routes its
    refusal): the body and Retry-After the ingress sends (`refusal_response`) for the message
    a full voice gives (a composer's `Admission` with its one slot taken). Filling a real voice
    here would take a second stream held open on two shared cores; real shedding, end to end,
    is tests/test_serve.py's and tests/test_openai_api.py's."""
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's loop
        message = thread.submit(asyncio.run, _at_capacity("joe")).result()
    assert message == "voice 'joe' is at capacity: 1 streams playing and 0 waiting"
    refused = ServiceError(503, message, code="voice_at_capacity", headers={"Retry-After": "2"})
    shed = refusal_response(refused)
    asked: list[str] = []

    def synthesize(route):
        asked.append(route.request.post_data_json["voice"])
        route.fulfill(
            status=shed.status_code,
            headers={k: v for k, v in shed.headers.items() if k != "content-length"},
            body=shed.body,
        )

    page.route("**/v1/synthesize", synthesize)
    page.select_option("#voice", "joe")
    page.fill("#text", TEXT)
    page.click("#play")
    shown = finished(page)
    assert asked == ["joe"]
    assert shown["state"] == "error" and shown["error"] == message and shown["chunks"] == 0
    assert page.locator("#error").is_visible() and page.inner_text("#error") == message
    assert page.is_disabled("#stop")


async def _at_capacity(voice: str) -> str:
    """The composer's 503 message for `voice` when its one slot is taken and none may wait."""
    admission = Admission(max_active=1, max_waiting=0, max_wait_s=1, retry_after_s=2)
    async with admission.slot():
        try:
            async with admission.slot():
                raise AssertionError("a second stream was admitted")
        except Overloaded as e:
            return f"voice {voice!r} is {e}"


def test_stop_aborts_a_long_text_mid_stream(page, service):
    began = time.monotonic()
    whole = service["client"].post(
        "/v1/synthesize", json={"voice": "espeak-duration", "text": LONG, "format": "msgpack"}
    )
    full = sum(m["type"] == "audio" for m in decode_msgpack_stream(whole.content))
    whole_s = time.monotonic() - began
    page.select_option("#voice", "espeak-duration")
    page.fill("#text", LONG)
    page.click("#play")
    page.wait_for_function("() => window.voicestack.chunks >= 2", timeout=WAIT_MS)
    page.click("#stop")
    stopped_at = time.monotonic()
    stopped = status(page)
    assert stopped["state"] == "stopped" and not stopped["streamEnded"]
    # The abort reached the voice: its composer lets go of the stream, in far less time than
    # the rest of the stream would take to make (asked from a thread: Playwright's sync API
    # keeps an event loop on this one, and Ray's handles refuse to block it).
    with ThreadPoolExecutor(1) as thread:
        assert thread.submit(_streams_end, "espeak-duration", whole_s).result() == 0
    assert time.monotonic() - stopped_at < whole_s / 2
    time.sleep(1.0)
    after = status(page)
    assert after["state"] == "stopped" and after["chunks"] == stopped["chunks"] < full
    assert page.is_disabled("#stop") and "Stopped after" in page.inner_text("#status")


def _streams_end(voice: str, timeout_s: float) -> int:
    """Streams the voice's composer still plays, once none do or `timeout_s` is up."""
    from ray import serve

    composer = serve.get_app_handle(f"voice-{voice}")
    deadline = time.monotonic() + timeout_s
    while (active := composer.load.remote().result()["active"]) and time.monotonic() < deadline:
        time.sleep(0.25)
    return active


def test_download_saves_the_text_in_the_chosen_format(page):
    page.select_option("#voice", "espeak-duration")
    page.fill("#text", "Hello there.")
    page.select_option("#format", "flac")
    with page.expect_download(timeout=WAIT_MS) as saving:
        page.click("#download")
    saved = saving.value
    assert saved.suggested_filename == "espeak-duration.flac"
    data = Path(saved.path()).read_bytes()
    assert data[:4] == b"fLaC" and len(data) > 1000
    assert page.locator("#saved").is_visible()


def test_a_multi_speaker_voice_gets_a_speaker_picker_and_a_typed_key_is_sent(browser, service):
    """The voice list and the refusal are made up here (routed in the browser): a voice with
    three speakers and no speed, and what the page sends for it."""
    context = browser.new_context()
    page = context.new_page()
    sent: list[tuple] = []
    trio = {
        "name": "trio",
        "language": "en-GB",
        "architecture": "vits",
        "sample_rate": 22050,
        "speakers": ["alice", "bob", "carol"],
        "speed": False,
        "word_timestamps": True,
    }

    def voices(route):
        sent.append(("voices", route.request.headers.get("authorization")))
        route.fulfill(json={"voices": [trio], "aliases": {}})

    def synthesize(route):
        request = route.request
        sent.append(("synthesize", request.headers.get("authorization"), request.post_data_json))
        route.fulfill(status=400, json={"error": "speaker: made up by the test"})

    page.route("**/v1/voices", voices)
    page.route("**/v1/synthesize", synthesize)
    page.goto(service["url"])
    page.wait_for_function("() => window.voicestack.voices.length > 0")
    assert page.is_visible("#speaker") and page.is_hidden("#speed")
    speakers = page.locator("#speaker option").evaluate_all("os => os.map(o => o.value)")
    assert speakers == ["alice", "bob", "carol"]
    page.click("summary")  # the API key's field
    page.fill("#key", "k-one")
    page.press("#key", "Tab")  # changed: the voices are asked for again, with the key
    page.wait_for_function("() => window.voicestack.voiceLists === 2")
    page.select_option("#speaker", "bob")
    page.fill("#text", TEXT)
    page.click("#play")
    assert finished(page)["error"] == "speaker: made up by the test"
    assert sent[0] == ("voices", None) and ("voices", "Bearer k-one") in sent
    body = {"voice": "trio", "text": TEXT, "format": "msgpack", "speaker": "bob"}
    assert sent[-1] == ("synthesize", "Bearer k-one", body)
    context.close()


def _plain(value):
    """A value as the page's decoder gives it, through JSON: bytes as hex, big ints as text."""
    if isinstance(value, bytes):
        return "bin:" + value.hex()
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53 - 1:
        return f"big:{value}"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


DECODE = """([data, piece]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const stream = new window.voicestack.MsgpackStream();
  const out = [];
  for (let i = 0; i < bytes.length; i += piece) {
    stream.push(bytes.subarray(i, i + piece));
    for (let item = stream.next(); item !== null; item = stream.next()) out.push(item.value);
  }
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return JSON.stringify({ out, pending: stream.pending }, (k, v) =>
    typeof v === "bigint" ? `big:${v}` : v instanceof Uint8Array ? `bin:${hex(v)}` : v);
}"""


def test_the_pages_msgpack_decoder_reads_each_type_in_pieces_of_any_size(page):
    ints = [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1, 2**64 - 1]
    ints += [-1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)]
    small = [
        {"type": "audio", "pcm16": bytes(range(256)) * 2, "sample_rate": 22050, "start": 0},
        {"nil": None, "yes": True, "no": False, "ints": ints, "f64": 0.1, "nested": {"a": [[]]}},
        "",
        "é" * 31,
        "ü" * 200,
        list(range(16)),
        {str(i): i for i in range(16)},
        [b"", {}, []],
    ]
    large = ["x" * 70_000, bytes(70_000), list(range(70_000)), {str(i): i for i in range(70_000)}]
    single = msgpack.packb(1.5, use_single_float=True)
    for values, pieces in ((small, (1, 3, 1 << 20)), (small + large, (4093, 1 << 20))):
        data = b"".join(msgpack.packb(v, use_bin_type=True) for v in values) + single
        encoded = base64.b64encode(data).decode()
        for piece in pieces:
            decoded = json.loads(page.evaluate(DECODE, [encoded, piece]))
            assert decoded == {"out": _plain(values) + [1.5], "pending": 0}, piece
