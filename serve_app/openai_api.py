"""OpenAI's speech API on voicestack: the request schema, the voice alias table, OpenAI's error
shape and the server-sent events of `stream_format: "sse"`.

The routes themselves are thin methods of the ingress (serve_app/ingress.py), which finds the
voice, opens its stream and sends it with the same code as `POST /v1/synthesize`:

POST /v1/audio/speech     {model, input, voice, response_format?, speed?, instructions?,
                           stream_format?, seed?, speaker?, sample_rate?}
GET  /v1/models           OpenAI's model list: the tts-1 names and every voice
GET  /v1/models/{id}      one of them, or a 404
GET  /v1/audio/voices     {"voices": [{"id", "name", ...}]}: voices and aliases (Open WebUI reads
                          each entry's `id` and `name`; Kokoro-FastAPI answers the same shape)
GET  /v1/audio/models     {"models": [{"id"}]}: what Open WebUI asks a custom endpoint for

Which voice speaks (`resolve_voice`):

1. `voice` names a voicestack voice: that voice (a voice's own name wins over an alias).
2. `voice` is an alias (OpenAI's alloy, ash, ...; or one the alias table adds) and `model`
   names a voicestack voice: the model's voice. A client that can only send OpenAI's voice
   names (some only offer alloy to shimmer) picks a voicestack voice by its model field.
3. `voice` is an alias otherwise: the voice the alias table gives; by default `joe` (the
   natural Piper voice) when it is deployed, else the first deployed voice.
4. Anything else is a 400 naming the voices and the aliases.

The alias table is OpenAI's voice names, each mapped to the default voice, overlaid with
`VOICESTACK_VOICE_ALIASES` (a JSON object, read when the ingress starts): `{"nova": "lessac"}`
maps one name, `{"narrator": "joe"}` adds one, `{"echo": null}` removes one. The input's
length is bounded by `VOICESTACK_OPENAI_MAX_INPUT_CHARS` (default 4096, OpenAI's).

Errors on these routes are OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`
(OpenAI's own client and its ports read it), with 400 for a bad request, where FastAPI would
answer 422; `/v1/synthesize` keeps voicestack's own `{"error": "..."}`.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from voicestack.blocks.core.request import MAX_SPEED, MIN_SPEED
from voicestack.blocks.errors import validation_problems

#: OpenAI's built-in voices (its API reference lists marin and cedar besides the eleven of
#: tts-1 and gpt-4o-mini-tts).
OPENAI_VOICES: tuple[str, ...] = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
#: OpenAI's speech models: accepted as `model`, and listed by `GET /v1/models`.
OPENAI_MODELS: tuple[str, ...] = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
#: OpenAI's response formats; each is served when serve_app/formats.py has it.
RESPONSE_FORMATS: tuple[str, ...] = ("mp3", "opus", "aac", "flac", "wav", "pcm")
#: The voice an alias speaks with unless the table says otherwise, when it is deployed.
DEFAULT_VOICE = "joe"
#: OpenAI's `pcm` is 24 kHz: a client written for OpenAI plays raw samples at that rate.
PCM_RATE = 24_000
#: OpenAI's bound on `input`.
DEFAULT_MAX_INPUT_CHARS = 4096

ALIASES_ENV = "VOICESTACK_VOICE_ALIASES"
MAX_INPUT_ENV = "VOICESTACK_OPENAI_MAX_INPUT_CHARS"

#: What `instructions` gets, in the `X-Instructions-Ignored-Reason` header.
INSTRUCTIONS_IGNORED = "voicestack voices cannot follow instructions; the text is spoken as is"


class VoiceId(BaseModel):
    """OpenAI's custom voice reference, `{"id": "..."}`: here a voice's name or an alias."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)


class SpeechRequest(BaseModel):
    """`POST /v1/audio/speech`: OpenAI's fields, and voicestack's `seed`, `speaker` and
    `sample_rate`. An unknown field is a 400, as any bad value."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1,
        description="tts-1, tts-1-hd, gpt-4o-mini-tts or any string; a voicestack voice's "
        "name picks that voice when `voice` is one of OpenAI's names",
    )
    input: str = Field(
        min_length=1,
        description=f"the text; at most {DEFAULT_MAX_INPUT_CHARS} characters unless "
        f"{MAX_INPUT_ENV} says otherwise",
    )
    voice: str | VoiceId = Field(
        description="a voicestack voice, or an alias (OpenAI's alloy, ash, ...): "
        "GET /v1/audio/voices lists both"
    )
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(
        default=1.0,
        ge=MIN_SPEED,
        le=MAX_SPEED,
        description="> 1 speaks faster; a voice whose durations cannot change answers 400",
    )
    instructions: str | None = Field(
        default=None,
        description="accepted, not followed: the response says so in X-Instructions-Ignored",
    )
    stream_format: Literal["audio", "sse"] = "audio"
    timestamps: bool = Field(
        default=False,
        description="voicestack: answer, once all is made, one JSON object with the audio "
        "(base64) and each word's times (`timestamps`), as Kokoro-FastAPI's captioned speech; "
        "an `sse` stream carries `word` events instead",
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        lt=2**63,
        description="voicestack: fixes a generative voice's noise, as in /v1/synthesize",
    )
    speaker: str | int | None = Field(
        default=None, description="voicestack: a multi-speaker voice's speaker, name or id"
    )
    sample_rate: int | None = Field(
        default=None,
        ge=8000,
        le=96000,
        description=f"voicestack: the output's rate; default {PCM_RATE} for pcm (OpenAI's), "
        "the voice's own for the other formats",
    )

    @property
    def voice_name(self) -> str:
        return self.voice.id if isinstance(self.voice, VoiceId) else self.voice

    def output_rate(self, native: int) -> int:
        """The rate the audio is sent at, for a voice made at `native` Hz."""
        if self.sample_rate is not None:
            return self.sample_rate
        return PCM_RATE if self.response_format == "pcm" else native


@dataclass(frozen=True)
class Settings:
    """What the OpenAI routes read from the environment, once, when the ingress starts.

    `aliases`: alias -> voice name, or None for the default voice (`default_voice`)."""

    aliases: dict[str, str | None]
    max_input_chars: int = DEFAULT_MAX_INPUT_CHARS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Raises ValueError naming the variable when one cannot be read: an ingress with a
        table it cannot read fails to start, saying why, rather than serve other voices."""
        env = os.environ if environ is None else environ
        raw = env.get(MAX_INPUT_ENV, "").strip()
        max_input = DEFAULT_MAX_INPUT_CHARS
        if raw:
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"{MAX_INPUT_ENV} must be a positive integer, got {raw!r}")
            max_input = int(raw)
        return cls(load_aliases(env.get(ALIASES_ENV)), max_input)


def load_aliases(text: str | None) -> dict[str, str | None]:
    """OpenAI's voice names (each to the default voice), overlaid with `text`: a JSON object
    of alias -> voice name, or -> null to remove the alias."""
    aliases: dict[str, str | None] = dict.fromkeys(OPENAI_VOICES)
    if not text or not text.strip():
        return aliases
    try:
        table = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{ALIASES_ENV} is not JSON: {e}") from e
    if not isinstance(table, dict):
        raise ValueError(f"{ALIASES_ENV} must be a JSON object of alias -> voice name")
    for alias, voice in table.items():
        if not alias.strip() or not (voice is None or (isinstance(voice, str) and voice)):
            raise ValueError(
                f"{ALIASES_ENV}: {alias!r} must map to a voice name or null, not {voice!r}"
            )
        if voice is None:
            aliases.pop(alias, None)
        else:
            aliases[alias] = voice
    return aliases


def default_voice(running: Iterable[str], starting: Iterable[str] = ()) -> str | None:
    """The voice an alias without a voice of its own speaks with: `joe` when it is deployed
    (running, or starting: then the client is asked to retry), else the first running voice,
    else the first voice starting; None when there is none."""
    running, starting = sorted(running), sorted(starting)
    if DEFAULT_VOICE in running or DEFAULT_VOICE in starting:
        return DEFAULT_VOICE
    names = running or starting
    return names[0] if names else None


class VoiceError(ValueError):
    """The request's voice cannot be resolved (a 400 on the `voice` param)."""


def resolve_voice(
    voice: str,
    model: str,
    known: Iterable[str],
    running: Iterable[str],
    starting: Iterable[str],
    aliases: Mapping[str, str | None],
) -> tuple[str, str | None]:
    """(the voicestack voice that speaks, the alias it was asked by or None); see the module
    docstring for the rule. `known`: every voice deployed (running, starting or failed), whose
    names are taken as they are; `running`, `starting`: what the default voice is picked from.
    Raises VoiceError naming the known voices and aliases."""
    known = set(known)
    if voice in known:
        return voice, None
    if voice in aliases:
        if model in known:
            return model, voice
        target = aliases[voice] or default_voice(running, starting)
        if target is None:
            raise VoiceError(f"voice {voice!r} is an alias, but no voice is deployed")
        return target, voice
    names = ", ".join(sorted(known)) or "none"
    raise VoiceError(
        f"unknown voice {voice!r} (voices: {names}; aliases: {', '.join(sorted(aliases))})"
    )


def alias_targets(
    aliases: Mapping[str, str | None], running: Iterable[str], starting: Iterable[str] = ()
) -> dict[str, str | None]:
    """Each alias and the voice it speaks with now (None: no voice is deployed)."""
    fallback = default_voice(running, starting)
    return {alias: target or fallback for alias, target in sorted(aliases.items())}


# --- errors -------------------------------------------------------------------------------

#: The request fields a refusal may name, as blocks/errors.py RequestError does: "field: ...".
_PARAMS = ("speed", "speaker", "seed", "sample_rate")


def error_type(status: int) -> str:
    return "invalid_request_error" if status < 500 else "server_error"


def error_body(
    message: str, status: int, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content=error_body(message, status, param, code),
        headers=dict(headers) if headers else None,
    )


def param_of(message: str) -> str | None:
    """The request field a voice's message names ("speed: voice 'x' cannot change its
    speed"), or `input` for a text with nothing speakable."""
    field, sep, _ = message.partition(": ")
    if sep and field in _PARAMS:
        return field
    if message.startswith("nothing to say"):
        return "input"
    return None


#: Pydantic's error types, as OpenAI's error codes.
_CODES = {
    "extra_forbidden": "unknown_parameter",
    "missing": "missing_required_parameter",
    "string_too_long": "string_above_max_length",
    "string_too_short": "empty_string",
}


def validation_error(errors: Iterable[Mapping[str, Any]]) -> JSONResponse:
    """A request that does not fit the schema (FastAPI's RequestValidationError), as OpenAI
    answers one: 400, naming the first field that is wrong."""
    errors = list(errors)
    if not errors:
        return error_response(400, "the request is not valid")
    message = "; ".join(str(p) for p in validation_problems(errors, request=True))
    first = errors[0]
    loc = list(first.get("loc", ()))[1:]  # after FastAPI's "body"
    param = str(loc[0]) if loc else None
    code = _CODES.get(first.get("type", ""), "invalid_value")
    if first.get("type") == "json_invalid":
        param, code = None, "invalid_json"
    return error_response(400, message, param=param, code=code)


def http_error(status: int, message: str, headers: Mapping[str, str] | None) -> JSONResponse:
    """FastAPI's own errors on the OpenAI routes (no key, an unknown route, a body too large)."""
    code = {401: "invalid_api_key", 404: "not_found", 413: "request_too_large"}.get(status)
    return error_response(status, message, code=code, headers=headers)


def is_openai_path(path: str) -> bool:
    """Whether a path is one of OpenAI's routes, answered in OpenAI's error shape."""
    return path.startswith("/v1/audio/") or path == "/v1/models" or path.startswith("/v1/models/")


# --- stream_format: "sse" -----------------------------------------------------------------


def sse_event(event: dict[str, Any]) -> bytes:
    """One server-sent event: a `data:` line of JSON and the blank line that ends it."""
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


class SseEncoder:
    """OpenAI's speech events around an audio encoder (serve_app/formats.py StreamEncoder):
    each piece of the `response_format` stream as a `speech.audio.delta` (base64 `audio`;
    joined, they are the same bytes `stream_format: "audio"` sends), then `speech.audio.done`
    with `usage`. A failure after the start is an `error` event, `{"type": "error", "error":
    {message, type, param, code}}`, and the stream ends without `speech.audio.done`.

    voicestack has no tokens: `usage.input_tokens` counts the input's characters (what tts-1
    was billed by), `output_tokens` the audio's milliseconds."""

    media_type = "text/event-stream"
    #: An error is an event: the stream ends cleanly, never cut off.
    carries_errors = True

    def __init__(self, inner: Any, input_chars: int) -> None:
        self.inner = inner
        self.input_chars = int(input_chars)
        self.samples = 0

    @property
    def sample_rate(self) -> int:
        return self.inner.sample_rate

    def __getattr__(self, name: str) -> Any:  # anything else the body asks of the encoder
        if name == "inner":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    @staticmethod
    def _delta(data: bytes) -> bytes:
        if not data:
            return b""
        return sse_event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})

    def start(self) -> bytes:
        return self._delta(self.inner.start())

    def audio(self, samples: Any, start_sample: int, timing: dict | None = None) -> bytes:
        self.samples += len(samples)
        return self._delta(self.inner.audio(samples, start_sample, timing))

    def mel(self, frames: Any, start_frame: int) -> bytes:
        return b""

    def word(self, word: dict) -> bytes:
        """A word's times, `{"type": "word", word, read_as, start_s, end_s, text_start,
        text_end, sentence}`, before the audio that holds it (voicestack's own event)."""
        return sse_event({**word, "type": "word"})

    def usage(self) -> dict[str, int]:
        output = math.ceil(self.samples * 1000 / self.sample_rate)
        return {
            "input_tokens": self.input_chars,
            "output_tokens": output,
            "total_tokens": self.input_chars + output,
        }

    def end(self, totals: dict) -> bytes:
        tail = self._delta(self.inner.end(totals))
        return tail + sse_event({"type": "speech.audio.done", "usage": self.usage()})

    def error(self, message: str, status: int) -> bytes:
        self.inner.error(message, status)  # whatever the encoder holds is dropped
        body = error_body(message, status, param_of(message))
        return sse_event({"type": "error", **body})


def model_list(voices: Iterable[str], created: int) -> dict[str, Any]:
    """`GET /v1/models`: OpenAI's speech models, then each voice (a voice is a model too: see
    the module docstring)."""
    return {
        "object": "list",
        "data": [model_entry(m, created) for m in (*OPENAI_MODELS, *sorted(voices))],
    }


def model_entry(model: str, created: int) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": created, "owned_by": "voicestack"}


def voice_list(
    described: Iterable[Mapping[str, Any]], targets: Mapping[str, str | None]
) -> dict[str, Any]:
    """`GET /v1/audio/voices`: each voice, then each alias and the voice it speaks with."""
    voices = [
        {"id": d["name"], "name": d["name"], "language": d.get("language")} for d in described
    ]
    names = {v["id"] for v in voices}
    voices += [
        {"id": alias, "name": f"{alias} ({target})" if target else alias, "alias_of": target}
        for alias, target in targets.items()
        if alias not in names  # a voice's own name wins over an alias
    ]
    return {"voices": voices}


class Captions:
    """A whole response with its words' times (`timestamps: true`), as Kokoro-FastAPI's
    captioned speech answers: `{"audio": <base64 of the response_format file>,
    "audio_format", "sample_rate", "timestamps": [{word, start_time, end_time, read_as,
    text_start, text_end}]}`. Wraps the audio encoder and keeps the words it is given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.words: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def word(self, word: dict) -> bytes:
        self.words.append(
            {
                "word": word["word"],
                "start_time": word["start_s"],
                "end_time": word["end_s"],
                "read_as": word["read_as"],
                "text_start": word["text_start"],
                "text_end": word["text_end"],
            }
        )
        return b""

    def body(self, audio: bytes) -> dict[str, Any]:
        return {
            "audio": base64.b64encode(audio).decode(),
            "audio_format": self.inner.fmt,
            "sample_rate": self.inner.sample_rate,
            "timestamps": self.words,
        }
