"""Text in as it is written: one WebSocket connection, text pieces in, one audio stream out.

A voice agent's reply comes from a language model a few words at a time; waiting for the
whole reply before asking for speech costs seconds. On `/v1/audio/speech/stream` (after
ElevenLabs' input-streaming WebSocket and OpenAI's Realtime API) a client sends

    {"voice": "joe", "format": "pcm", "sample_rate"?, "seed"?, "speaker"?, "speed"?}
    {"text": "Hello there. How"}            as many as it likes
    {"flush": true}                          the text is complete: speak the rest

and receives the audio in `format` as binary messages, one continuous stream (a wav or mp3
stream is one file across the whole connection), with JSON text messages between them: each
word's times (`{"type": "word", ...}`, as in the msgpack stream, before the audio that holds
it), then `{"type": "end", ...}`, or `{"type": "error", "message", "status"}` and the socket
closes.

Sentences are cut where the voice's own front end cuts the whole text: a sentence is spoken
once the next one has begun (the composer's `complete`), each as a request that continues the
one before (`RequestOptions.first_sentence`, the same seed), so the connection's audio is the
audio of one request for the whole text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from voicestack.blocks.core.request import MAX_SPEED, MIN_SPEED, RequestOptions, new_seed
from voicestack.blocks.errors import ServiceError, validation_problems
from voicestack.serve_app.formats import FORMATS, StreamEncoder, resampler
from voicestack.serve_app.retry import attempts

logger = logging.getLogger("voicestack.serve")

#: What may end a sentence: only text holding one is the voice asked where its sentences end.
_MAY_END = re.compile(r"[.!?;:…。！？\n]")
#: The most text one connection may hold unspoken (a client that never ends a sentence).
MAX_PENDING_CHARS = 100_000
#: Close codes (RFC 6455): the client sent what cannot be served; the server failed.
POLICY, FAILED = 1008, 1011


class StreamConfig(BaseModel):
    """The connection's first message."""

    model_config = ConfigDict(extra="forbid")

    voice: str = Field(min_length=1)
    format: str = "pcm"
    sample_rate: int | None = Field(default=None, ge=8000, le=96000)
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    speaker: str | int | None = None
    speed: float = Field(default=1.0, ge=MIN_SPEED, le=MAX_SPEED)


class Piece(BaseModel):
    """Every later message: text, and/or the end of the text."""

    model_config = ConfigDict(extra="forbid")

    text: str = ""
    flush: bool = False


async def serve(socket: Any, find: Any) -> None:
    """One connection. `find(voice)`: (composer handle, description), or raises a
    ServiceError for a voice it cannot serve."""
    await socket.accept()
    speaking: asyncio.Task | None = None
    try:
        config = _config(await socket.receive_json())
        handle, info = await find(config.voice)
        session = _Session(socket, handle, info, config)
        speaking = asyncio.create_task(session.speak())
        await session.read(speaking)
        await speaking
    except ServiceError as e:
        message = {"type": "error", "message": e.message, "status": e.status}
        await _close(socket, message, POLICY if e.status < 500 else FAILED)
    except _Disconnected:
        pass
    except Exception as e:  # after audio started: the stream must look failed
        logger.exception("text stream failed")
        message = {"type": "error", "message": f"synthesis failed: {e}", "status": 500}
        await _close(socket, message, FAILED)
    finally:
        if speaking is not None and not speaking.done():
            speaking.cancel()
            with contextlib.suppress(BaseException):
                await speaking


def _config(message: Any) -> StreamConfig:
    try:
        config = StreamConfig.model_validate(message)
    except ValidationError as e:
        raise ServiceError(400, _problem(e)) from None
    if config.format not in FORMATS or config.format == "msgpack":
        formats = ", ".join(f for f in FORMATS if f != "msgpack")
        raise ServiceError(400, f"format: {config.format!r} is not one of {formats}")
    return config


def _problem(error: ValidationError) -> str:
    return "; ".join(str(p) for p in validation_problems(error))


class _Disconnected(Exception):
    pass


class _Session:
    def __init__(self, socket: Any, handle: Any, info: dict, config: StreamConfig):
        self.socket, self.handle, self.config = socket, handle, config
        self.native = int(info["sample_rate"])
        rate = config.sample_rate or self.native
        self.encoder = StreamEncoder(config.format, rate)
        self.resample = resampler(self.native, rate)
        self.seed = config.seed if config.seed is not None else new_seed()
        self.ready: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent = 0  # samples (native) sent so far
        self.delivered = 0  # audio and word messages sent so far

    async def read(self, speaking: asyncio.Task) -> None:
        """Take text pieces until the flush; hand on each run of whole sentences."""
        from starlette.websockets import WebSocketDisconnect

        pending = ""
        while True:
            receive = asyncio.create_task(self.socket.receive_json())
            done, _ = await asyncio.wait({receive, speaking}, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:  # the speaker stopped (failed): stop reading
                receive.cancel()
                return
            try:
                message = receive.result()
            except WebSocketDisconnect:
                raise _Disconnected from None
            except ValueError:
                raise ServiceError(400, "each message must be a JSON object") from None
            try:
                piece = Piece.model_validate(message)
            except ValidationError as e:
                raise ServiceError(400, _problem(e)) from None
            pending += piece.text
            if len(pending) > MAX_PENDING_CHARS:
                raise ServiceError(
                    400, f"text: more than {MAX_PENDING_CHARS} characters without a sentence end"
                )
            if piece.flush:
                if pending.strip():
                    await self.ready.put(pending)
                await self.ready.put(None)
                return
            # Once a sentence may have ended, each piece may begin the next one.
            if piece.text.strip() and _MAY_END.search(pending):
                whole = await self.handle.complete.remote(pending)
                if whole:
                    await self.ready.put(pending[:whole])
                    pending = pending[whole:]

    async def speak(self) -> None:
        """Each run of sentences as one request continuing the one before, into one stream."""
        await self._send(self.encoder.start())
        sentence, consumed = 0, 0  # sentences, characters so far
        while (text := await self.ready.get()) is not None:
            options = RequestOptions(
                self.seed, self.config.speaker, self.config.speed, first_sentence=sentence
            )
            start_s = self.sent / self.native
            sentence = await self._run_again_while_unseen(
                text, options, start_s, consumed, sentence
            )
            consumed += len(text)
        if self.resample is not None:
            await self._send(self.encoder.audio(self.resample(None), 0))
        await self._send(self.encoder.end({}))
        end = {"type": "end", "audio_s": round(self.sent / self.native, 4), "sentences": sentence}
        await _close(self.socket, {**end, "seed": self.seed}, 1000)

    async def _run_again_while_unseen(
        self, text: str, options: RequestOptions, start_s: float, consumed: int, sentence: int
    ) -> int:
        """`_run`, made again when its composer died before the run's first audio (the client
        has seen nothing of it); once audio went out, a loss fails the stream."""
        before = self.delivered

        def lost(error: BaseException, delay: float) -> None:
            logger.warning("text stream: voice lost before its audio (%s); again", error)

        async for attempt in attempts(on_lost=lost, may_retry=lambda: self.delivered == before):
            with attempt:
                return await self._run(text, options, start_s, consumed, sentence)
        raise AssertionError("unreachable: the last try's error is raised")

    async def _run(
        self, text: str, options: RequestOptions, start_s: float, consumed: int, sentence: int
    ) -> int:
        """One run's audio and words into the stream; returns the sentences spoken so far."""
        stream = self.handle.options(stream=True).synthesize.remote(text, False, options)
        try:
            async for message in stream:
                kind = message["type"]
                if kind == "audio":
                    samples = message["samples"]
                    self.sent += samples.shape[0]
                    self.delivered += 1
                    if self.resample is not None:
                        samples = self.resample(samples)
                    await self._send(self.encoder.audio(samples, 0))
                elif kind == "word":
                    self.delivered += 1
                    shifted = _shifted(message, start_s, consumed, sentence)
                    await self.socket.send_json(shifted)
                elif kind == "end":
                    sentence += message["sentences"]
                elif kind == "error":
                    if message["status"] == 400 and message["message"].startswith(
                        "nothing to say"
                    ):  # as the whole text would: a run with nothing to say is skipped
                        sentence += 1
                        continue
                    raise ServiceError.from_message(message)
        finally:
            stream.cancel()
        return sentence

    async def _send(self, data: bytes) -> None:
        if data:
            await self.socket.send_bytes(data)


def _shifted(word: dict, start_s: float, consumed: int, sentences: int) -> dict:
    """A word of one run, placed in the connection's stream and text."""
    out = dict(word)
    out["sentence"] = word.get("sentence", 0) + sentences
    out["start_s"] = round(word["start_s"] + start_s, 4)
    out["end_s"] = round(word["end_s"] + start_s, 4)
    for key in ("text_start", "text_end"):
        if out.get(key) is not None:
            out[key] += consumed
    return out


async def _close(socket: Any, message: dict, code: int) -> None:
    with contextlib.suppress(Exception):
        await socket.send_json(message)
        await socket.close(code)
