"""The Wyoming server (serve_app/wyoming_server.py), driven by the `wyoming` package's own
client as Home Assistant drives it: `describe` lists every voice with its language, `synthesize`
answers audio-start, audio-chunks as they are made, audio-stop; a text streamed in pieces is
spoken sentence by sentence before its end arrives, then synthesize-stopped; what cannot be
spoken is an `error` event on a connection that stays open. The server runs in this process (a
thread with its own event loop) on a free port, backed by the local runtime; one test backs it
with a real running service."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from voicestack.addons.search_path import find_voice
from voicestack.serve_app.wyoming_server import (
    Catalog,
    LocalBackend,
    Pcm,
    SentenceCutter,
    ServiceBackend,
    VoiceInfo,
    start_server,
)
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from .ray_service import free_port, running_service

TEXT = "Hello there, how are you today?"
#: Generous: the machine running the tests may be busy; a stalled server still fails.
READ_TIMEOUT_S = 120


@contextmanager
def wyoming_server(catalog: Catalog) -> Iterator[int]:
    """The server on a free port, listening, in a thread with its own event loop; its port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="wyoming-server", daemon=True)
    thread.start()
    port = free_port()
    server = asyncio.run_coroutine_threadsafe(
        start_server(f"tcp://127.0.0.1:{port}", catalog), loop
    ).result(60)
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(60)
        asyncio.run_coroutine_threadsafe(catalog.aclose(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)
        loop.close()


def talk(port: int, conversation: Callable[[AsyncTcpClient], Awaitable]):
    """Run `conversation` with a client connected to the server on `port`."""

    async def run():
        async with AsyncTcpClient("127.0.0.1", port, read_timeout=READ_TIMEOUT_S) as client:
            return await conversation(client)

    return asyncio.run(run())


async def read_until(client: AsyncTcpClient, last: str) -> list[Event]:
    """Events up to and with the first of type `last`."""
    events = []
    while True:
        event = await client.read_event()
        assert event is not None, f"connection closed before {last}: {types(events)}"
        events.append(event)
        if event.type == last:
            return events


def types(events: list[Event]) -> list[str]:
    return [e.type for e in events]


def audio_seconds(events: list[Event]) -> float:
    return sum(AudioChunk.from_event(e).seconds for e in events if AudioChunk.is_type(e.type))


def synthesize(port: int, text: str = TEXT, **voice) -> list[Event]:
    async def conversation(client):
        given = SynthesizeVoice(**voice) if voice else None
        await client.write_event(Synthesize(text=text, voice=given).event())
        return await read_until(client, "audio-stop")

    return talk(port, conversation)


def assert_one_audio_stream(events: list[Event], rate: int = 22050) -> None:
    """audio-start (rate, 16-bit, mono), one audio-chunk or more in that format, audio-stop."""
    assert events[0].type == "audio-start", types(events)
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (rate, 2, 1)
    chunks = events[1:-1]
    assert chunks and all(e.type == "audio-chunk" for e in chunks), types(events)
    for chunk in map(AudioChunk.from_event, chunks):
        assert (chunk.rate, chunk.width, chunk.channels) == (rate, 2, 1)
        assert len(chunk.audio) % 2 == 0
    assert events[-1].type == "audio-stop"


# --- the local runtime ---------------------------------------------------------------------

LOCAL_VOICES = ["espeak-duration", "joe", "test-duration", "trio"]


@pytest.fixture(scope="module")
def trio(tmp_path_factory) -> Path:
    """A multi-speaker Piper voice (random weights, tests/piper_voices.py), imported."""
    from voicestack.addons.piper_import import import_piper

    from .piper_voices import build_multispeaker_piper

    model = build_multispeaker_piper(tmp_path_factory.mktemp("trio-model"))
    return import_piper(model, None, tmp_path_factory.mktemp("trio") / "trio")


@pytest.fixture(scope="module")
def local(voices_dir, trio) -> Iterator[int]:
    """The server on the local runtime with the bundled voices, a test voice and trio."""
    paths = [
        find_voice("espeak-duration").path,
        find_voice("joe").path,
        voices_dir / "test-duration",
        trio,
    ]
    with wyoming_server(Catalog(LocalBackend(paths))) as port:
        yield port


def test_describe_lists_every_voice_with_its_language_and_speakers(local):
    async def conversation(client):
        await client.write_event(Describe().event())
        return await client.read_event()

    event = talk(local, conversation)
    assert Info.is_type(event.type)
    (program,) = Info.from_event(event).tts
    assert program.installed and program.supports_synthesize_streaming
    voices = {v.name: v for v in program.voices}
    assert list(voices) == LOCAL_VOICES
    assert all(v.languages == ["en-US"] and v.installed for v in voices.values())
    assert [s.name for s in voices["trio"].speakers] == ["alice", "bob", "carol"]
    assert voices["joe"].speakers is None


@pytest.mark.parametrize("voice", ["espeak-duration", "joe", "test-duration"])
def test_synthesize_answers_one_audio_stream_of_the_texts_length(local, voice):
    events = synthesize(local, name=voice)
    assert_one_audio_stream(events)
    assert 0.5 < audio_seconds(events) < 5.0


def test_a_text_of_several_sentences_is_still_one_audio_stream(local):
    events = synthesize(local, "Hello there. How are you today? It is sunny.", name="joe")
    assert_one_audio_stream(events)
    assert 1.5 < audio_seconds(events) < 10.0


def test_without_a_voice_the_first_speaks_and_a_language_picks_one(local):
    assert_one_audio_stream(synthesize(local, "Hello there."))
    assert_one_audio_stream(synthesize(local, "Hello there.", language="en_US"))
    refused = synthesize(local, "Hallo.", language="de-DE")
    assert types(refused) == ["error", "audio-stop"]
    assert "de-DE" in Error.from_event(refused[0]).text


def test_a_multi_speaker_voice_speaks_as_the_speaker_named(local):
    assert_one_audio_stream(synthesize(local, name="trio", speaker="bob"))
    assert_one_audio_stream(synthesize(local, name="trio", speaker="2"))  # carol, by id
    refused = synthesize(local, name="trio", speaker="zed")
    assert types(refused) == ["error", "audio-stop"]
    assert "alice, bob, carol" in Error.from_event(refused[0]).text


def test_streamed_text_is_spoken_sentence_by_sentence_before_its_end_arrives(local):
    """The first sentence's audio arrives while the rest of the text has not been sent; each
    sentence is its own audio-start ... audio-stop; the backwards-compatible `synthesize` a
    streaming client also sends adds nothing; synthesize-stopped ends it."""

    async def conversation(client):
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="joe")).event())
        await client.write_event(SynthesizeChunk(text="Hello there").event())
        await client.write_event(SynthesizeChunk(text=". ").event())
        early = [await asyncio.wait_for(client.read_event(), 60)]
        early.append(await asyncio.wait_for(client.read_event(), 60))
        for piece in ["How are", " you", " today?"]:
            await client.write_event(SynthesizeChunk(text=piece).event())
        await client.write_event(Synthesize(text="Hello there. How are you today?").event())
        await client.write_event(SynthesizeStop().event())
        return early, early + await read_until(client, "synthesize-stopped")

    early, events = talk(local, conversation)
    assert types(early) == ["audio-start", "audio-chunk"]
    assert events[-1].type == "synthesize-stopped"
    starts = [i for i, e in enumerate(events) if e.type == "audio-start"]
    stops = [i for i, e in enumerate(events) if e.type == "audio-stop"]
    assert len(starts) == len(stops) == 2, types(events)
    first, second = events[: stops[0] + 1], events[starts[1] : stops[1] + 1]
    assert_one_audio_stream(first)
    assert_one_audio_stream(second)
    assert 0.3 < audio_seconds(first) < 3.0
    assert 0.5 < audio_seconds(second) < 4.0
    assert len(events) == len(first) + len(second) + 1


def test_an_unknown_voice_is_an_error_naming_the_known_voices_on_a_connection_kept(local):
    async def conversation(client):
        nobody = SynthesizeVoice(name="nobody")
        await client.write_event(Synthesize(text=TEXT, voice=nobody).event())
        refused = await read_until(client, "audio-stop")
        await client.write_event(SynthesizeStart(voice=nobody).event())
        await client.write_event(SynthesizeChunk(text="Hello there. How are you?").event())
        await client.write_event(SynthesizeStop().event())
        stream = await read_until(client, "synthesize-stopped")
        await client.write_event(Describe().event())
        return refused, stream, await client.read_event()

    refused, stream, info = talk(local, conversation)
    assert types(refused) == ["error", "audio-stop"]
    error = Error.from_event(refused[0])
    assert error.code == "unknown-voice"
    assert "'nobody'" in error.text and ", ".join(LOCAL_VOICES) in error.text
    assert types(stream) == ["error", "synthesize-stopped"]  # one error, then no audio
    assert Info.is_type(info.type)  # the connection still answers


def test_bad_requests_are_errors_and_the_connection_stays_open(local):
    async def conversation(client):
        answers = []
        await client.write_event(Event(type="synthesize", data={"voice": {"name": "joe"}}))
        answers.append(await read_until(client, "audio-stop"))  # no text
        await client.write_event(Synthesize(text="...").event())
        answers.append(await read_until(client, "audio-stop"))  # nothing to say
        await client.write_event(SynthesizeChunk(text="Hello.").event())
        answers.append([await client.read_event()])  # no synthesize-start
        await client.write_event(Synthesize(text="Hello there.").event())
        answers.append(await read_until(client, "audio-stop"))
        return answers

    no_text, nothing, no_start, spoken = talk(local, conversation)
    assert types(no_text) == ["error", "audio-stop"] and "text" in no_text[0].data["text"]
    assert types(nothing) == ["error", "audio-stop"] and "nothing to say" in nothing[0].data["text"]
    assert types(no_start) == ["error"] and "synthesize-start" in no_start[0].data["text"]
    assert_one_audio_stream(spoken)


class GatedBackend:
    """One voice that speaks a first chunk, then a second only once the test has received the
    first: it proves audio is forwarded as it is made, not after the whole text."""

    def __init__(self) -> None:
        self.first_received = threading.Event()

    async def voices(self, refresh: bool = False) -> list[VoiceInfo]:
        return [VoiceInfo("gated", "en-US", 16000)]

    async def speak(self, voice, text, speaker) -> AsyncIterator[Pcm]:
        yield Pcm(16000, bytes(3200))
        if not await asyncio.to_thread(self.first_received.wait, 30):
            raise RuntimeError("the first chunk never reached the client")
        yield Pcm(16000, bytes(3200))

    async def aclose(self) -> None:
        pass


def test_each_audio_chunk_is_sent_as_it_is_made():
    backend = GatedBackend()

    async def conversation(client):
        await client.write_event(Synthesize(text=TEXT).event())
        first = [await asyncio.wait_for(client.read_event(), 20) for _ in range(2)]
        backend.first_received.set()
        return first + await read_until(client, "audio-stop")

    with wyoming_server(Catalog(backend)) as port:
        events = talk(port, conversation)
    assert types(events) == ["audio-start", "audio-chunk", "audio-chunk", "audio-stop"]
    assert_one_audio_stream(events, rate=16000)


def test_sentences_are_cut_at_final_punctuation_followed_by_whitespace():
    cutter = SentenceCutter()
    assert cutter.add("Hello there.") == []  # not yet followed by whitespace
    assert cutter.add(" How are") == ["Hello there."]
    assert cutter.add(' you? "Fine!" she said. It is 3.5') == [
        "How are you?",
        '"Fine!"',  # the simple rule: a cut wherever a sentence could end
        "she said.",
    ]
    assert cutter.add(" degrees.") == []
    assert cutter.add("\n... ") == ["It is 3.5 degrees."]
    assert cutter.add("Next one! Then") == ["... Next one!"]  # "..." alone: carried on
    assert cutter.finish() == "Then"
    assert cutter.finish() == ""


# --- the running service -------------------------------------------------------------------


@pytest.mark.ray
def test_backed_by_a_running_service_it_speaks_as_the_service_streams(voices_dir):
    voice = voices_dir / "test-duration"
    with running_service([str(voice)], {"default": {"num_cpus": 0.1}}) as service:
        catalog = Catalog(ServiceBackend(f"http://127.0.0.1:{service['port']}"))
        with wyoming_server(catalog) as port:

            async def conversation(client):
                await client.write_event(Describe().event())
                info = Info.from_event(await client.read_event())
                await client.write_event(
                    Synthesize(text=TEXT, voice=SynthesizeVoice(name="test-duration")).event()
                )
                spoken = await read_until(client, "audio-stop")
                await client.write_event(
                    Synthesize(text=TEXT, voice=SynthesizeVoice(name="nobody")).event()
                )
                return info, spoken, await read_until(client, "audio-stop")

            info, spoken, refused = talk(port, conversation)
    voices = info.tts[0].voices
    assert [(v.name, v.languages) for v in voices] == [("test-duration", ["en-US"])]
    assert_one_audio_stream(spoken)
    assert 0.5 < audio_seconds(spoken) < 5.0
    assert types(refused) == ["error", "audio-stop"]
    assert "'nobody'" in refused[0].data["text"] and "test-duration" in refused[0].data["text"]
