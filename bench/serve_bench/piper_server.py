"""`piper-stream`: Piper's own engine (piper-tts) in process, streamed the way a Piper user
streams it, behind the harness's HTTP API (``POST /v1/synthesize {voice, text, format}``).

``PiperVoice.load(model)`` with onnxruntime's default session (Piper's default: CPU provider,
as many intra-op threads as the machine has cores), then ``voice.synthesize(text)``, which
phonemizes the whole text and yields one ``AudioChunk`` per sentence; each chunk's samples are
sent as soon as it is made. ``SynthesisConfig(normalize_audio=False)``: Piper by default scales
every sentence to full range, voicestack does not, so without it Piper's audio would be louder
than voicestack's for the same voice (the cost is the same either way: one max and one divide
per sentence).

As in the harness's ``streaming`` server, the response is a ``StreamingResponse`` over a sync
generator, which Starlette iterates in its thread pool: each sentence's synthesis runs there and
the event loop keeps serving other streams. Nothing of voicestack is imported, so the process's
memory and CPU are Piper's (with Starlette and uvicorn). The ``seed`` the harness sends to
voicestack is accepted and ignored: Piper draws its noise inside its ONNX graph, unseeded.

    python -m bench.serve_bench.piper_server --model en_US-joe-medium.onnx --name joe --port 8123
"""

from __future__ import annotations

import argparse
import json
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from piper import PiperVoice

FORMATS: tuple[str, ...] = ("pcm", "wav")
#: A streamed WAV's size fields: the length is not known when the header is sent.
UNKNOWN_SIZE = 0xFFFFFFFF


def load_voice(model: str) -> PiperVoice:
    """Piper's voice as a Piper user loads it: the model, its `.onnx.json` beside it, the
    default onnxruntime session (no thread settings)."""
    from piper import PiperVoice

    return PiperVoice.load(model)


def synthesis_config():
    """Piper's defaults (the voice's noise, length and noise_w scales) less the per-sentence
    peak normalisation, so that loudness matches voicestack's."""
    from piper import SynthesisConfig

    return SynthesisConfig(normalize_audio=False)


def wav_header(sample_rate: int) -> bytes:
    """A 44-byte PCM16 mono WAV header with unknown sizes, as voicestack streams WAV."""
    return (
        b"RIFF"
        + struct.pack("<I", UNKNOWN_SIZE)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", UNKNOWN_SIZE)
    )


def sentences(voice: PiperVoice, text: str, fmt: str) -> Iterator[bytes]:
    """Each sentence's PCM16 as soon as Piper has made it (after a WAV header for `wav`)."""
    if fmt == "wav":
        yield wav_header(voice.config.sample_rate)
    for chunk in voice.synthesize(text, synthesis_config()):
        yield chunk.audio_int16_bytes


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _parse(body: Any, name: str) -> tuple[str, str] | JSONResponse:
    if not isinstance(body, dict):
        return _error(422, "the body must be a JSON object")
    if body.get("voice") != name:
        return _error(404, f"unknown voice {body.get('voice')!r} (known: {name})")
    text, fmt = body.get("text"), body.get("format", "wav")
    if not isinstance(text, str) or not text.strip():
        return _error(422, "text: must be a non-empty string")
    if fmt not in FORMATS:
        return _error(422, f"format: must be one of {', '.join(FORMATS)}")
    return text, fmt


def create_app(voice: PiperVoice, name: str) -> Starlette:
    """The ASGI app serving Piper's `voice` as voice `name`."""
    import onnxruntime

    rate = voice.config.sample_rate
    options = voice.session.get_session_options()

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "voices": [name],
                "mode": "piper-stream",
                "onnxruntime": onnxruntime.__version__,
                "providers": voice.session.get_providers(),
                # 0: onnxruntime's default, one thread per physical core
                "intra_op_num_threads": options.intra_op_num_threads,
                "normalize_audio": False,
            }
        )

    async def synthesize(request: Request) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(422, "the body is not JSON")
        parsed = _parse(body, name)
        if isinstance(parsed, JSONResponse):
            return parsed
        text, fmt = parsed
        kind = f"audio/pcm;rate={rate};channels=1;format=s16le" if fmt == "pcm" else "audio/wav"
        headers = {"X-Sample-Rate": str(rate), "Cache-Control": "no-store"}
        return StreamingResponse(sentences(voice, text, fmt), media_type=kind, headers=headers)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/v1/synthesize", synthesize, methods=["POST"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Piper's .onnx (its .onnx.json beside it)")
    parser.add_argument("--name", required=True, help="the voice name requests carry")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    voice = load_voice(args.model)
    for _ in voice.synthesize("Warming up.", synthesis_config()):  # first-call costs
        pass
    app = create_app(voice, args.name)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
