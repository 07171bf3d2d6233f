"""The Wyoming server: Home Assistant's voice protocol in front of every voicestack voice.

Home Assistant's Wyoming integration speaks to a TTS program over TCP: it asks `describe` once
to learn the voices and their languages, then opens a connection per utterance. Answering it
here, with the `wyoming` package's own server classes, makes every voicestack voice a Home
Assistant voice without any code on Home Assistant's side.

Two backends behind one small interface (`Backend`): the running service over HTTP
(`ServiceBackend`, `--url`: the msgpack stream of `POST /v1/synthesize`, so audio is forwarded as
the service makes it), or the local runtime in this process (`LocalBackend`: for a Home
Assistant box without Ray). Both yield PCM16 chunks as they are made, so the first audio-chunk
leaves while the rest of the text is still being spoken.

What a connection is answered (the order the protocol, and wyoming-piper, use):

- `describe` -> `info`: one TTS program, its voices with their language (and speakers for a
  multi-speaker voice), `supports_synthesize_streaming`.
- `synthesize` -> `audio-start`, `audio-chunk`..., `audio-stop`: the whole text, one audio
  stream.
- `synthesize-start`, `synthesize-chunk`... -> each complete sentence is spoken as soon as its
  text is complete, as its own `audio-start`, `audio-chunk`..., `audio-stop`; `synthesize-stop`
  -> the rest of the text likewise, then `synthesize-stopped`. The `synthesize` a streaming
  client also sends (for servers without streaming) is ignored while a stream is open.
- A request that cannot be spoken (unknown voice or speaker, malformed event, a failing
  backend) -> an `error` event naming the problem (and the known voices); the connection stays
  open, and the request still gets its closing event (`audio-stop` for `synthesize`,
  `synthesize-stopped` for a stream), which is what clients such as Home Assistant wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker
from wyoming.server import AsyncEventHandler, AsyncServer
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

if TYPE_CHECKING:
    from voicestack.runtime.voice import Voice

logger = logging.getLogger("voicestack.wyoming")

#: Audio goes out as the service streams it: 16-bit little-endian mono PCM.
SAMPLE_WIDTH = 2
CHANNELS = 1


@dataclass(frozen=True)
class VoiceInfo:
    """A voice as the protocol needs it: its name, language, rate and speakers (id order)."""

    name: str
    language: str
    sample_rate: int
    speakers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pcm:
    """One chunk of audio as made: PCM16 mono bytes at `rate`."""

    rate: int
    data: bytes


class Refused(Exception):
    """A request this server answers with an `error` event; `code` is the event's code."""

    code = "bad-request"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class NothingToSay(Refused):
    """A text without anything speakable. An error for a `synthesize`; a streamed piece with
    nothing to say (a lone "...") is skipped, since the client cannot know what is speakable."""

    code = "nothing-to-say"


def _refusal(message: str) -> Refused:
    """A backend's refusal as an exception: the runtime and the service both begin the message
    with "nothing to say" for a text without a speakable sentence."""
    if message.startswith("nothing to say"):
        return NothingToSay(message)
    return Refused(message, "synthesis-failed")


class Backend(Protocol):
    """Where the voices are: their list, and their audio chunk by chunk as it is made."""

    async def voices(self, refresh: bool = False) -> list[VoiceInfo]:
        """The voices, in the backend's order; `refresh` reads them again where they change."""
        ...

    def speak(self, voice: VoiceInfo, text: str, speaker: str | int | None) -> AsyncIterator[Pcm]:
        """`text` spoken by `voice`; raises Refused (NothingToSay) for what it cannot speak."""
        ...

    async def aclose(self) -> None: ...


# --- the local runtime -------------------------------------------------------------------


class LocalBackend:
    """The voices' addons run in this process with the local runtime (runtime/local.py).

    Each voice is built on its first request and kept. The runtime is synchronous and CPU-bound,
    so each chunk is made in a worker thread, one step of one synthesis at a time (the phonemizer
    behind the front ends is not thread-safe): two connections speak interleaved, chunk by chunk,
    and the event loop stays free to read and write."""

    def __init__(self, paths: Sequence[Path]):
        from voicestack.addons.loader import read_config

        self._paths: dict[str, Path] = {}
        self._voices: list[VoiceInfo] = []
        for path in paths:
            config = read_config(Path(path))  # a broken addon fails at start, naming the key
            if config.name in self._paths:
                continue
            self._paths[config.name] = Path(path)
            speakers = sorted(config.speakers, key=config.speakers.__getitem__)
            self._voices.append(
                VoiceInfo(config.name, config.language, config.audio.sample_rate, tuple(speakers))
            )
        self._built: dict[str, Voice] = {}
        self._building = asyncio.Lock()
        self._step = threading.Lock()

    async def voices(self, refresh: bool = False) -> list[VoiceInfo]:
        return list(self._voices)

    async def _voice(self, name: str) -> Voice:
        async with self._building:
            if name not in self._built:
                from voicestack.addons.loader import load_addon
                from voicestack.runtime.voice import build_voice

                path = self._paths[name]
                self._built[name] = await asyncio.to_thread(lambda: build_voice(load_addon(path)))
            return self._built[name]

    async def speak(
        self, voice: VoiceInfo, text: str, speaker: str | int | None
    ) -> AsyncIterator[Pcm]:
        from voicestack.runtime.local import synthesize_stream
        from voicestack.serve_app.formats import pcm16

        built = await self._voice(voice.name)
        chunks = synthesize_stream(built, text, speaker=speaker)

        def step():
            with self._step:
                return next(chunks, None)

        try:
            while True:
                try:
                    chunk = await asyncio.to_thread(step)
                except ValueError as e:  # nothing to say; a RequestError (a speaker it lacks)
                    raise _refusal(str(e)) from e
                if chunk is None:
                    return
                yield Pcm(built.sample_rate, pcm16(chunk.core[:, 0].numpy()))
        finally:
            with contextlib.suppress(ValueError):  # still running in its thread: left to end
                chunks.close()

    async def aclose(self) -> None:
        pass


def local_backend(voices: Sequence[str] | None = None) -> LocalBackend:
    """The local runtime with the voices named (a name on the addon search path, or an addon
    folder), in that order; all installed voices when none is named."""
    from voicestack.addons.format import ADDON_FILE
    from voicestack.addons.search_path import find_voice, find_voices

    if not voices:
        return LocalBackend([entry.path for entry in find_voices()])
    return LocalBackend(
        [Path(v) if Path(v, ADDON_FILE).is_file() else find_voice(v).path for v in voices]
    )


# --- the running service -----------------------------------------------------------------


class ServiceBackend:
    """A running voicestack service: voices from `GET /v1/voices`, audio from the msgpack stream
    of `POST /v1/synthesize`, each message decoded as its bytes arrive and forwarded at once.

    `VOICESTACK_API_KEY`, where set, is sent as the service's API key (`Authorization: Bearer`).
    The voice list is kept for `VOICES_TTL_S` and read again when a request names a voice not
    in it, so voices deployed later are found."""

    VOICES_TTL_S = 30.0

    def __init__(self, url: str, api_key: str | None = None):
        self.url = url.rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get("VOICESTACK_API_KEY")
        self._client: Any = None  # made in the server's event loop, on first use
        self._voices: list[VoiceInfo] | None = None
        self._read_at = 0.0

    def _http(self) -> Any:
        if self._client is None:
            try:
                import httpx
            except ImportError as e:  # a test dependency of voicestack, not a runtime one
                raise Refused(
                    "the service backend needs httpx (pip install httpx)", "unavailable"
                ) from e
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx.AsyncClient(
                base_url=self.url, headers=headers, timeout=httpx.Timeout(30.0, read=120.0)
            )
        return self._client

    def _unreachable(self, e: Exception) -> Refused:
        return Refused(
            f"the voicestack service at {self.url} cannot be reached: {type(e).__name__}: {e}",
            "unavailable",
        )

    async def voices(self, refresh: bool = False) -> list[VoiceInfo]:
        fresh = time.monotonic() - self._read_at < self.VOICES_TTL_S
        if self._voices is not None and fresh and not refresh:
            return list(self._voices)
        client = self._http()
        import httpx

        try:
            response = await client.get("/v1/voices")
        except httpx.HTTPError as e:
            raise self._unreachable(e) from e
        if response.status_code != 200:
            raise Refused(
                f"GET {self.url}/v1/voices answered {response.status_code}: {_message(response)}",
                "unavailable",
            )
        self._voices = [
            VoiceInfo(
                str(v["name"]),
                str(v.get("language") or "und"),
                int(v["sample_rate"]),
                tuple(str(s) for s in v.get("speakers") or ()),
            )
            for v in response.json()["voices"]
        ]
        self._read_at = time.monotonic()
        return list(self._voices)

    async def speak(
        self, voice: VoiceInfo, text: str, speaker: str | int | None
    ) -> AsyncIterator[Pcm]:
        client = self._http()
        import httpx
        import msgpack

        body: dict[str, Any] = {"voice": voice.name, "text": text, "format": "msgpack"}
        if speaker is not None:
            body["speaker"] = speaker
        try:
            async with client.stream("POST", "/v1/synthesize", json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise _refusal(_message(response))
                unpacker = msgpack.Unpacker(raw=False)
                async for data in response.aiter_bytes():
                    unpacker.feed(data)
                    for message in unpacker:
                        kind = message.get("type")
                        if kind == "audio":
                            yield Pcm(int(message["sample_rate"]), message["pcm16"])
                        elif kind == "end":
                            return
                        elif kind == "error":
                            raise _refusal(str(message.get("message")))
                        # "word" and "mel" messages: nothing the protocol carries
        except httpx.HTTPError as e:
            raise self._unreachable(e) from e
        raise Refused("the service ended the stream before its end", "synthesis-failed")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _message(response: Any) -> str:
    """The service's error message (`{"error": ...}`), or the body as it is."""
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text or f"HTTP {response.status_code}"


# --- the voices offered, and which one a request picks ------------------------------------


def _language(tag: str) -> str:
    return tag.replace("_", "-").lower()


class Catalog:
    """The voices this server offers, the backend's or those `only` names (in that order; the
    first is the default), and how a request's `voice` picks one of them."""

    def __init__(self, backend: Backend, only: Sequence[str] | None = None):
        self.backend = backend
        self.only = list(only) if only else None

    async def voices(self, refresh: bool = False) -> list[VoiceInfo]:
        voices = await self.backend.voices(refresh)
        if self.only is None:
            return voices
        by_name = {v.name: v for v in voices}
        return [by_name[n] for n in self.only if n in by_name]

    async def check(self) -> list[VoiceInfo]:
        """The voices, read once at start: a backend that cannot answer is a ConnectionError,
        a voice `only` names that the backend lacks a LookupError, both naming the problem."""
        try:
            voices = await self.backend.voices(refresh=True)
        except Refused as e:
            raise ConnectionError(str(e)) from e
        missing = [n for n in self.only or () if n not in {v.name for v in voices}]
        if missing:
            known = ", ".join(v.name for v in voices) or "none"
            raise LookupError(f"unknown voice(s) {', '.join(missing)} (known: {known})")
        return await self.voices()

    async def info(self) -> Info:
        voices = await self.voices(refresh=True)
        attribution = Attribution(name="voicestack", url=getattr(self.backend, "url", ""))
        return Info(
            tts=[
                TtsProgram(
                    name="voicestack",
                    attribution=attribution,
                    installed=True,
                    description="voicestack text to speech",
                    version=_version(),
                    voices=[
                        TtsVoice(
                            name=v.name,
                            attribution=attribution,
                            installed=True,
                            description=None,
                            version=None,
                            languages=[v.language],
                            speakers=[TtsVoiceSpeaker(name=s) for s in v.speakers] or None,
                        )
                        for v in voices
                    ],
                    supports_synthesize_streaming=True,
                )
            ]
        )

    async def choose(self, requested: SynthesizeVoice | None) -> tuple[VoiceInfo, str | int | None]:
        """The voice a request names (else the first of its language, else the default) and its
        speaker: a speaker's name, or its id when the voice has no speaker of that name."""
        voices = await self.voices()
        name = requested.name if requested else None
        language = requested.language if requested else None
        if name:
            voice = next((v for v in voices if v.name == name), None)
            if voice is None:  # maybe deployed a moment ago
                voices = await self.voices(refresh=True)
                voice = next((v for v in voices if v.name == name), None)
            if voice is None:
                known = ", ".join(v.name for v in voices) or "none"
                raise Refused(f"unknown voice {name!r} (known: {known})", "unknown-voice")
        elif language:
            wanted = _language(language)
            voice = next((v for v in voices if _language(v.language) == wanted), None) or next(
                (v for v in voices if _language(v.language).split("-")[0] == wanted.split("-")[0]),
                None,
            )
            if voice is None:
                known = ", ".join(f"{v.name} ({v.language})" for v in voices) or "none"
                raise Refused(f"no voice speaks {language!r} (known: {known})", "unknown-voice")
        elif voices:
            voice = voices[0]
        else:
            raise Refused("no voice is available", "unknown-voice")
        speaker: str | int | None = requested.speaker if requested else None
        if isinstance(speaker, str) and speaker not in voice.speakers and speaker.isdigit():
            speaker = int(speaker)
        return voice, speaker

    async def aclose(self) -> None:
        await self.backend.aclose()


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("voicestack")
    except PackageNotFoundError:
        return None


# --- streamed text: complete sentences as soon as they are complete ------------------------

#: Sentence-final punctuation (and any closing quotes or brackets) followed by whitespace.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019\u00bb)\]]*\s+")


def _speakable(text: str) -> bool:
    return any(c.isalnum() for c in text)


class SentenceCutter:
    """Text pieces in, complete sentences out, as soon as they are complete: cut after
    sentence-final punctuation followed by whitespace. A simple rule ("Dr. Smith" is cut too),
    enough for speaking early; the voice's own front end still splits what it is given. A cut
    piece with nothing speakable ("... ") is carried into the next sentence."""

    def __init__(self) -> None:
        self._text = ""

    def add(self, piece: str) -> list[str]:
        self._text += piece
        sentences, start = [], 0
        for match in _SENTENCE_END.finditer(self._text):
            sentence = self._text[start : match.end()].strip()
            if _speakable(sentence):
                sentences.append(sentence)
                start = match.end()
        self._text = self._text[start:]
        return sentences

    def finish(self) -> str:
        """The rest of the text, after the last complete sentence."""
        rest, self._text = self._text.strip(), ""
        return rest


@dataclass
class _TextStream:
    """An open `synthesize-start` ... `synthesize-stop`: its voice, its text so far, and
    whether it already failed (then the rest of its text is dropped: one error, not one per
    sentence)."""

    voice: VoiceInfo | None
    speaker: str | int | None
    cutter: SentenceCutter
    failed: bool = False


# --- the connection ------------------------------------------------------------------------


def _parse(kind: Any, event: Event) -> Any:
    try:
        return kind.from_event(event)
    except Exception as e:  # a field missing or of the wrong type
        raise Refused(f"malformed {event.type!r} event: {type(e).__name__}: {e}") from e


class VoicestackHandler(AsyncEventHandler):
    """One client connection: its events answered in order (the base class reads the next
    event when this one's answer has been written)."""

    def __init__(self, catalog: Catalog, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.catalog = catalog
        self._stream: _TextStream | None = None
        self._audio_open = False  # an audio-start sent, its audio-stop not yet

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._answer(event)
        except ConnectionError:
            return False  # the client went away mid-answer
        return True

    async def _answer(self, event: Event) -> None:
        try:
            if Describe.is_type(event.type):
                await self.write_event((await self.catalog.info()).event())
            elif Synthesize.is_type(event.type):
                if self._stream is None:
                    await self._synthesize(event)
                # else: sent by a streaming client for servers without streaming; the stream
                # already has its text (as wyoming-piper does)
            elif SynthesizeStart.is_type(event.type):
                await self._start(event)
            elif SynthesizeChunk.is_type(event.type):
                await self._chunk(event)
            elif SynthesizeStop.is_type(event.type):
                await self._stop()
            # other events are not for a TTS program: dropped, as the protocol asks
        except ConnectionError:
            raise
        except Refused as e:
            await self._error(e)
        except Exception as e:  # a bug: said to the client, and the connection kept
            logger.exception("wyoming: %s failed", event.type)
            await self._error(Refused(f"{event.type} failed: {type(e).__name__}: {e}", "internal"))

    async def _error(self, refused: Refused) -> None:
        logger.info("wyoming: error %s: %s", refused.code, refused)
        await self.write_event(Error(text=str(refused), code=refused.code).event())

    async def _synthesize(self, event: Event) -> None:
        """The whole text as one audio stream, closed by audio-stop whatever happened."""
        try:
            request: Synthesize = _parse(Synthesize, event)
            if not isinstance(request.text, str) or not _speakable(request.text):
                raise NothingToSay("nothing to say: the text has nothing speakable")
            voice, speaker = await self.catalog.choose(request.voice)
            await self._speak(voice, speaker, request.text)
        except Refused as e:
            await self._error(e)
        await self._close_audio(always=True)

    async def _start(self, event: Event) -> None:
        if self._stream is not None:
            logger.info("wyoming: synthesize-start while a stream was open; its text is dropped")
        self._stream = _TextStream(None, None, SentenceCutter())
        try:
            start: SynthesizeStart = _parse(SynthesizeStart, event)
            self._stream.voice, self._stream.speaker = await self.catalog.choose(start.voice)
        except Refused:
            self._stream.failed = True
            raise

    async def _chunk(self, event: Event) -> None:
        if self._stream is None:
            raise Refused("synthesize-chunk without synthesize-start")
        piece: SynthesizeChunk = _parse(SynthesizeChunk, event)
        if not isinstance(piece.text, str):
            raise Refused("malformed 'synthesize-chunk' event: text is not a string")
        for sentence in self._stream.cutter.add(piece.text):
            await self._speak_sentence(self._stream, sentence)

    async def _stop(self) -> None:
        """The rest of the text, then synthesize-stopped, which a streaming client waits for."""
        stream, self._stream = self._stream, None
        if stream is None:
            await self._error(Refused("synthesize-stop without synthesize-start"))
        else:
            rest = stream.cutter.finish()
            if _speakable(rest):
                await self._speak_sentence(stream, rest)
        await self.write_event(SynthesizeStopped().event())

    async def _speak_sentence(self, stream: _TextStream, sentence: str) -> None:
        """One streamed sentence as its own audio-start ... audio-stop."""
        if stream.failed or stream.voice is None:
            return
        try:
            await self._speak(stream.voice, stream.speaker, sentence)
        except NothingToSay:
            logger.debug("wyoming: nothing to say in %r; skipped", sentence)
        except Refused as e:
            stream.failed = True
            await self._error(e)
        await self._close_audio()

    async def _speak(self, voice: VoiceInfo, speaker: str | int | None, text: str) -> None:
        """`text`'s audio as audio-chunks as the backend makes them, after an audio-start sent
        with the first (so the rate is the audio's own). A backend's failure is a Refused; a
        failure to write (the client gone) goes through as it is."""
        audio = self.catalog.backend.speak(voice, text, speaker)
        try:
            while True:
                try:
                    pcm = await anext(audio)
                except StopAsyncIteration:
                    return
                except Refused:
                    raise
                except Exception as e:
                    logger.exception("wyoming: %s failed speaking %r", voice.name, text)
                    raise Refused(
                        f"voice {voice.name!r} failed: {type(e).__name__}: {e}",
                        "synthesis-failed",
                    ) from e
                if not pcm.data:
                    continue
                if not self._audio_open:
                    await self.write_event(
                        AudioStart(rate=pcm.rate, width=SAMPLE_WIDTH, channels=CHANNELS).event()
                    )
                    self._audio_open = True
                await self.write_event(
                    AudioChunk(
                        rate=pcm.rate, width=SAMPLE_WIDTH, channels=CHANNELS, audio=pcm.data
                    ).event()
                )
        finally:
            with contextlib.suppress(Exception):
                await audio.aclose()  # type: ignore[attr-defined]

    async def _close_audio(self, always: bool = False) -> None:
        if self._audio_open or always:
            await self.write_event(AudioStop().event())
        self._audio_open = False


# --- starting it ---------------------------------------------------------------------------


def open_catalog(url: str | None = None, voices: Sequence[str] | None = None) -> Catalog:
    """The service at `url`'s voices, else the local runtime's; only `voices` where given."""
    if url:
        return Catalog(ServiceBackend(url), only=voices)
    return Catalog(local_backend(voices))


async def start_server(uri: str, catalog: Catalog) -> AsyncServer:
    """A Wyoming server on `uri` (tcp://HOST:PORT, unix://PATH), listening when this returns."""
    server = AsyncServer.from_uri(uri)
    await server.start(partial(VoicestackHandler, catalog))
    return server


async def serve(
    uri: str, catalog: Catalog, ready: Callable[[list[VoiceInfo]], None] | None = None
) -> None:
    """Check the voices (`ready` is told them), then answer Wyoming clients on `uri` until
    stopped (SIGTERM, Ctrl-C)."""
    try:
        voices = await catalog.check()
        if ready is not None:
            ready(voices)
        await AsyncServer.from_uri(uri).run(partial(VoicestackHandler, catalog))
    finally:
        await catalog.aclose()
