"""The HTTP API: list voices, stream synthesis, health.

GET  /                        a page that plays every voice in a browser (serve_app/page.html)
GET  /healthz                 {status: ok|degraded, voices, starting, failed: {voice: why}}
GET  /v1/voices               each voice: name, architecture, language, sample rate, stack, placement
POST /v1/synthesize           {voice, text, format (wav, pcm, msgpack, mp3, ...), sample_rate?, seed?,
                               with_mel?, speaker?, speed?}
WS   /v1/audio/speech/stream  text in as it is written, audio out (serve_app/text_stream.py)
POST /v1/audio/speech         OpenAI's speech API, and its /v1/models, /v1/audio/voices: the
                              schema, aliases, error shape and events are serve_app/openai_api.py

The ingress finds voices by their Serve application names (`voice-NAME`), so a voice added with
`serve deploy` is served without redeploying the ingress. A bad request is answered with a 4xx
and a JSON body naming the problem before any audio is sent; once audio has started, a failure
ends the stream (with an error message in `msgpack`; wav and pcm are cut off before their end). A client that disconnects cancels its
request all the way down: the composer cancels its source's stream and the calls in flight.
"""

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, Request, WebSocket, WebSocketException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from voicestack.blocks.core.request import MAX_SPEED, MIN_SPEED, RequestOptions
from voicestack.blocks.errors import ServiceError, validation_problems
from voicestack.serve_app import openai_api
from voicestack.serve_app.auth import load_api_keys, refusal
from voicestack.serve_app.formats import FORMATS, StreamEncoder, resampler
from voicestack.serve_app.names import voice_app_name, voice_of
from voicestack.serve_app.openai_api import SpeechRequest
from voicestack.serve_app.retry import attempts, lost_work

logger = logging.getLogger("voicestack.serve")

#: Seconds a cached list of voice applications is trusted before it is read again.
VOICES_TTL_S = 2.0

#: Keys read once, when the ingress replica imports this module (serve_app/auth.py).
API_KEYS = load_api_keys()


#: The page served at `/`, read once: self-contained (inline script and style), it calls only
#: this service's API, and sends a key only if one is typed into it.
PAGE_HTML = Path(__file__).with_name("page.html").read_text(encoding="utf-8")
#: What the page may load: nothing from anywhere else (its audio is made in the page).
PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


#: The largest request body read, in bytes: a text of 100,000 characters and its JSON fit.
MAX_BODY_BYTES = 1_000_000


async def _admitted(request: HTTPConnection) -> None:
    """Every route's first step: the caller's key, and a body of bounded size, checked before
    the body is read (a dependency, not a middleware: Starlette's middlewares wrap a streaming
    body and would swallow how a failed stream ends). A WebSocket without a key is refused
    before it is accepted."""
    why = refusal(request.url.path, request.headers.get("authorization"), API_KEYS)
    if why is not None and request.scope["type"] == "websocket":
        raise WebSocketException(code=1008, reason=why)
    if why is not None:
        raise StarletteHTTPException(401, why, headers={"WWW-Authenticate": "Bearer"})
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise StarletteHTTPException(
            413, f"the request body is larger than {MAX_BODY_BYTES} bytes ({length})"
        )


api = FastAPI(
    title="voicestack",
    summary="Many TTS voices, streamed as they are made.",
    dependencies=[Depends(_admitted)],
)


class SynthesizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    voice: str = Field(min_length=1)
    text: str = Field(min_length=1, max_length=100_000)
    format: Literal[FORMATS] = "wav"  # type: ignore[valid-type]  # the one list of formats
    sample_rate: int | None = Field(default=None, ge=8000, le=96000)
    with_mel: bool = Field(default=False, description="msgpack only: also stream mel chunks")
    seed: int | None = Field(
        default=None,
        ge=0,
        lt=2**63,
        description="fixes a generative voice's noise (VITS): the same request and seed give "
        "the same audio; without one a seed is drawn (the msgpack end message says which)",
    )
    speaker: str | int | None = Field(
        default=None,
        description="a multi-speaker voice's speaker, by name or id (GET /v1/voices lists "
        "them); default: its first",
    )
    speed: float = Field(
        default=1.0,
        ge=MIN_SPEED,
        le=MAX_SPEED,
        description="> 1 speaks faster; a voice whose durations cannot change answers 400",
    )


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    if openai_api.is_openai_path(request.url.path):
        return openai_api.validation_error(exc.errors())
    problems = validation_problems(exc, request=True)
    return JSONResponse(
        status_code=422,
        content={
            "error": "; ".join(str(p) for p in problems),
            "problems": [{"key": p.key, "message": p.message} for p in problems],
        },
    )


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's own 4xx (a body that is not JSON or not UTF-8, an unknown route) in the API's
    error shape, `{"error": ...}`, like every other error (OpenAI's on OpenAI's routes)."""
    if openai_api.is_openai_path(request.url.path):
        return openai_api.http_error(exc.status_code, str(exc.detail), exc.headers)
    return JSONResponse(
        status_code=exc.status_code, content={"error": str(exc.detail)}, headers=exc.headers
    )


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message, **extra})


def refusal_response(error: ServiceError) -> JSONResponse:
    """A request refused before any audio, in voicestack's own shape: `{"error": "..."}` and
    the error's extra keys (`known` voices), with its status and headers."""
    return JSONResponse(
        status_code=error.status,
        content={"error": error.message, **error.extra},
        headers=error.headers,
    )


class StreamAborted(RuntimeError):
    """Raised inside a response body that failed after it started, in a format that cannot
    say so (any but msgpack): the connection is dropped before the body's end, so the client sees an
    incomplete response, never a complete-looking short file."""


async def _body(
    stream: Any, first: dict, encoder: StreamEncoder | openai_api.Captions, resample: Any
):
    """The response body: bytes of each message as it arrives."""
    item = first
    produced = 0
    failure: str | None = None
    try:
        yield encoder.start()
        while True:
            kind = item["type"]
            if kind == "audio":
                samples = item["samples"] if resample is None else resample(item["samples"])
                yield encoder.audio(samples, produced, item.get("timing"))
                produced += samples.shape[0]
            elif kind == "mel":
                yield encoder.mel(item["frames"], item["start"])
            elif kind == "word":
                yield encoder.word({k: v for k, v in item.items() if k != "type"})
            elif kind == "end":
                if resample is not None:
                    tail = resample(None)
                    yield encoder.audio(tail, produced)
                    produced += tail.shape[0]
                yield encoder.end({k: v for k, v in item.items() if k != "type"})
                return
            elif kind == "error":
                failure = item["message"]
                yield encoder.error(item["message"], item["status"])
                break
            item = await stream.__anext__()
    except StopAsyncIteration:
        failure = "the voice ended the stream before its end"
        yield encoder.error(failure, 500)
    except asyncio.CancelledError:
        stream.cancel()  # the client went away: stop the voice making its audio
        raise
    except Exception as e:  # after the headers went out, the stream can only say it failed
        logger.exception("stream failed after it started")
        failure = f"synthesis failed: {type(e).__name__}: {e}"
        yield encoder.error(failure, 500)
    finally:
        stream.cancel()
    if failure is not None and not encoder.carries_errors:
        raise StreamAborted(failure)


def _reason(message: str, lines: int = 3) -> str:
    """Serve's deploy message cut to its last lines: a traceback ends with the exception that
    says why, and can run to hundreds of lines before it."""
    return "\n".join((message or "").strip().splitlines()[-lines:])


@serve.ingress(api)
class Ingress:
    def __init__(self) -> None:
        self._voices: dict[str, Any] = {}
        self._starting: list[str] = []
        self._failed: dict[str, str] = {}
        #: Each voice's description (sample rate, stack...), asked once, not on every request.
        self._described: dict[str, dict[str, Any]] = {}
        self._read_at = 0.0
        self._lock = asyncio.Lock()
        #: The OpenAI routes' alias table and input bound, read from the environment once.
        self._openai = openai_api.Settings.from_env()
        self._started = int(time.time())

    async def voices(self, refresh: bool = False) -> dict[str, Any]:
        """Voice name -> composer handle, from the running Serve applications."""
        async with self._lock:
            if refresh or time.monotonic() - self._read_at > VOICES_TTL_S:
                status = await asyncio.to_thread(serve.status)
                by_voice = {
                    voice: app
                    for name, app in status.applications.items()
                    if (voice := voice_of(name)) is not None
                }
                self._starting = sorted(v for v, a in by_voice.items() if a.status == "DEPLOYING")
                # A voice that could not be deployed (its addon does not load, say) is reported
                # with Serve's reason; the other voices serve on.
                self._failed = {
                    v: _reason(a.message)
                    for v, a in by_voice.items()
                    if a.status in ("DEPLOY_FAILED", "UNHEALTHY")
                }
                voices = {}
                for voice in sorted(v for v, a in by_voice.items() if a.status == "RUNNING"):
                    voices[voice] = self._voices.get(voice) or await asyncio.to_thread(
                        serve.get_app_handle, voice_app_name(voice)
                    )
                # A voice redeployed under the same name may have changed: describe it again.
                self._described = {v: d for v, d in self._described.items() if v in voices}
                self._voices, self._read_at = voices, time.monotonic()
            return self._voices

    async def _voice(self, name: str) -> Any:
        voices = await self.voices()
        if name not in voices:  # maybe deployed a moment ago
            voices = await self.voices(refresh=True)
        return voices.get(name)

    async def _describe(self, voice: str, handle: Any) -> dict[str, Any]:
        if voice not in self._described:
            self._described[voice] = await handle.describe.remote()
        return self._described[voice]

    @api.get("/", include_in_schema=False)
    async def page(self) -> HTMLResponse:
        return HTMLResponse(
            PAGE_HTML,
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": PAGE_POLICY},
        )

    @api.get("/healthz")
    async def healthz(self) -> dict[str, Any]:
        voices = await self.voices()
        return {
            "status": "degraded" if self._failed else "ok",
            "voices": sorted(voices),
            "starting": self._starting,
            "failed": self._failed,
        }

    @api.get("/v1/voices")
    async def list_voices(self) -> dict[str, Any]:
        """Each voice; and `aliases`: each name `POST /v1/audio/speech` takes besides the
        voices' own (OpenAI's alloy, ash, ...), with the voice it speaks with."""
        voices = await self.voices()
        described = await asyncio.gather(*(self._describe(v, h) for v, h in voices.items()))
        return {"voices": described, "aliases": self._alias_targets(voices)}

    def _alias_targets(self, voices: dict[str, Any]) -> dict[str, str | None]:
        return openai_api.alias_targets(self._openai.aliases, voices, self._starting)

    async def _find(self, voice: str) -> tuple[Any, dict[str, Any]]:
        """The voice's handle and description; raises ServiceError when it is starting (503 with
        Retry-After), failed to deploy (503) or unknown (404)."""
        handle = await self._voice(voice)
        if handle is None and voice in self._starting:
            raise ServiceError(
                503,
                f"voice {voice!r} is starting; try again shortly",
                code="voice_starting",
                headers={"Retry-After": "2"},
            )
        if handle is None and voice in self._failed:
            raise ServiceError(
                503,
                f"voice {voice!r} failed to deploy: {self._failed[voice]}",
                code="voice_failed",
            )
        if handle is None:
            known = sorted(await self.voices())
            raise ServiceError(
                404,
                f"unknown voice {voice!r} (known: {', '.join(known) or 'none'})",
                code="voice_not_found",
                known=known,
            )
        return handle, await self._describe(voice, handle)

    async def _first_message(
        self, handle: Any, text: str, options: RequestOptions, with_mel: bool
    ) -> tuple[Any, dict]:
        """The voice's stream and its first message. A composer that died before any audio
        left has given the client nothing yet, so the request goes again to another (or the
        restarted) replica, unseen."""

        def lost(error: BaseException, delay: float) -> None:
            logger.warning("voice stream lost before its audio (%s); sent again", error)

        async for attempt in attempts(on_lost=lost):
            with attempt:
                stream = handle.options(stream=True).synthesize.remote(text, with_mel, options)
                try:
                    return stream, await stream.__anext__()
                except StopAsyncIteration:
                    raise ServiceError(500, "the voice ended the stream without audio") from None
        raise AssertionError("unreachable: the last try's error is raised")

    async def _start(
        self, handle: Any, text: str, options: RequestOptions, with_mel: bool = False
    ) -> tuple[Any, dict]:
        """The voice's stream and its first message, audio; raises ServiceError when the voice
        refuses the request (a 4xx naming the problem) or is at capacity (503, Retry-After)."""
        try:
            stream, first = await self._first_message(handle, text, options, with_mel)
        except ServiceError:
            raise
        except Exception as e:
            logger.exception("voice stream failed before its audio")
            if lost_work(e):
                raise ServiceError(
                    503,
                    "the voice's replicas kept failing; try again shortly",
                    code="voice_unavailable",
                    headers={"Retry-After": "2"},
                ) from e
            raise ServiceError(
                500, f"synthesis failed: {type(e).__name__}", code="synthesis_failed"
            ) from e
        if first["type"] == "error":  # refused (a 4xx naming the problem), or at capacity
            stream.cancel()
            raise ServiceError.from_message(first)
        return stream, first

    @staticmethod
    def _respond(
        stream: Any, first: dict, encoder: Any, native: int, headers: dict[str, str] | None = None
    ) -> StreamingResponse:
        """The streaming response: the voice's audio at `native` Hz, resampled to the
        encoder's rate when they differ, in the encoder's format."""
        rate = encoder.sample_rate
        resample = resampler(native, rate)
        return StreamingResponse(
            _body(stream, first, encoder, resample),
            media_type=encoder.media_type,
            headers={"X-Sample-Rate": str(rate), "Cache-Control": "no-store", **(headers or {})},
        )

    @staticmethod
    async def _captioned(
        stream: Any, first: dict, encoder: Any, native: int, headers: dict[str, str]
    ) -> JSONResponse:
        """The whole response as one JSON object: the audio (base64, in the encoder's format)
        and its words' times (serve_app/openai_api.py `Captions`), sent once it is all made."""
        rate = encoder.sample_rate
        captions = openai_api.Captions(encoder)
        resample = resampler(native, rate)
        try:
            audio = b"".join([piece async for piece in _body(stream, first, captions, resample)])
        except StreamAborted as failed:  # nothing was sent yet: an honest 500
            return openai_api.error_response(500, str(failed), None, "synthesis_failed")
        return JSONResponse(captions.body(audio), headers={"X-Sample-Rate": str(rate), **headers})

    @api.post("/v1/synthesize")
    async def synthesize(self, request: SynthesizeRequest):
        if request.with_mel and request.format != "msgpack":
            return _error(422, "with_mel: mel chunks can only be streamed in the msgpack format")
        options = RequestOptions(request.seed, request.speaker, request.speed)
        try:
            handle, info = await self._find(request.voice)
            native = info["sample_rate"]
            encoder = StreamEncoder(
                request.format, request.sample_rate or native, with_mel=request.with_mel
            )
            stream, first = await self._start(handle, request.text, options, request.with_mel)
        except ServiceError as refused:
            return refusal_response(refused)
        return self._respond(stream, first, encoder, native)

    # --- OpenAI's speech API (serve_app/openai_api.py) ------------------------------------

    async def _openai_voice(self, request: SpeechRequest) -> tuple[str, str | None]:
        """(the voice that speaks, the alias asked for or None): openai_api.resolve_voice on
        the voices deployed, read again once if the name is not among them."""
        for refresh in (False, True):
            running = await self.voices(refresh=refresh)
            known = {*running, *self._starting, *self._failed}
            try:
                return openai_api.resolve_voice(
                    request.voice_name,
                    request.model,
                    known,
                    running,
                    self._starting,
                    self._openai.aliases,
                )
            except openai_api.VoiceError as e:
                why = str(e)
        raise ServiceError(400, why, code="voice_not_found")

    @api.post("/v1/audio/speech")
    async def speech(self, request: SpeechRequest):
        """OpenAI's `POST /v1/audio/speech`; errors in OpenAI's shape, before any audio."""
        if len(request.input) > self._openai.max_input_chars:
            return openai_api.error_response(
                400,
                f"input: the text is {len(request.input)} characters long; at most "
                f"{self._openai.max_input_chars} are accepted",
                param="input",
                code="string_above_max_length",
            )
        if request.timestamps and request.stream_format == "sse":
            return openai_api.error_response(
                400,
                "timestamps: an sse stream carries `word` events already; timestamps asks for "
                "one JSON object with the audio and the words",
                param="timestamps",
                code="unsupported_value",
            )
        if request.response_format not in FORMATS:
            available = [f for f in openai_api.RESPONSE_FORMATS if f in FORMATS]
            return openai_api.error_response(
                400,
                f"response_format: {request.response_format!r} is not available on this "
                f"server (available: {', '.join(available)})",
                param="response_format",
                code="unsupported_value",
            )
        options = RequestOptions(request.seed, request.speaker, request.speed)
        try:
            voice, alias = await self._openai_voice(request)
            handle, info = await self._find(voice)
            native = info["sample_rate"]
            rate = request.output_rate(native)
            try:
                encoder: Any = StreamEncoder(request.response_format, rate)
            except ValueError as e:
                raise ServiceError(400, f"sample_rate: {e}") from None
            stream, first = await self._start(handle, request.input, options)
        except ServiceError as refused:
            if refused.status == 404:  # an alias naming a voice that is not deployed
                refused.status, refused.code = 400, "voice_not_found"
            param = openai_api.param_of(refused.message)
            if refused.code in ("voice_not_found", "voice_starting", "voice_failed"):
                param = "voice"
            return openai_api.error_response(
                refused.status, refused.message, param, refused.code, refused.headers
            )
        headers = {"X-Voice": voice}
        if alias is not None:
            headers["X-Voice-Alias"] = alias
        if request.instructions:
            headers["X-Instructions-Ignored"] = "true"
            headers["X-Instructions-Ignored-Reason"] = openai_api.INSTRUCTIONS_IGNORED
        if not info.get("word_timestamps", False):
            headers["X-Word-Timestamps"] = "none: this voice does not report its words' times"
        if request.timestamps:
            return await self._captioned(stream, first, encoder, native, headers)
        if request.stream_format == "sse":
            encoder = openai_api.SseEncoder(encoder, len(request.input))
            headers["X-Accel-Buffering"] = "no"  # a proxy must not hold events back
        return self._respond(stream, first, encoder, native, headers)

    @api.websocket("/v1/audio/speech/stream")
    async def speech_stream(self, socket: WebSocket) -> None:
        """Text in as it is written, one audio stream out (serve_app/text_stream.py)."""
        from voicestack.serve_app import text_stream

        await text_stream.serve(socket, self._find)

    @api.get("/v1/models")
    async def models(self) -> dict[str, Any]:
        """OpenAI's model list: tts-1, tts-1-hd, gpt-4o-mini-tts, and each voice."""
        return openai_api.model_list(await self.voices(), self._started)

    @api.get("/v1/models/{model}")
    async def model(self, model: str):
        if model in openai_api.OPENAI_MODELS or model in await self.voices():
            return openai_api.model_entry(model, self._started)
        return openai_api.error_response(
            404, f"the model {model!r} does not exist", param="model", code="model_not_found"
        )

    @api.get("/v1/audio/voices")
    async def audio_voices(self) -> dict[str, Any]:
        """Voices and aliases, as Kokoro-FastAPI lists them and Open WebUI reads them."""
        voices = await self.voices()
        described = await asyncio.gather(*(self._describe(v, h) for v, h in voices.items()))
        return openai_api.voice_list(described, self._alias_targets(voices))

    @api.get("/v1/audio/models")
    async def audio_models(self) -> dict[str, Any]:
        """The models Open WebUI offers for a custom OpenAI endpoint."""
        models = openai_api.model_list(await self.voices(), self._started)["data"]
        return {"models": [{"id": m["id"]} for m in models]}
