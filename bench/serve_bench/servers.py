"""The two servers a user would write instead of voicestack: plain ASGI apps around the local
runtime, with voicestack's HTTP API (``POST /v1/synthesize {voice, text, format}``).

- ``naive`` synthesizes the whole text with ``synthesize()`` in one call, then returns it: the
  first byte waits for the last sample.
- ``streaming`` returns a ``StreamingResponse`` over ``synthesize_stream()``: each chunk is
  encoded and sent as soon as the local runtime makes it.

Both run synthesis in Starlette's thread pool (``run_in_threadpool``; a sync iterator given to
``StreamingResponse`` is iterated there too), as a user of Starlette would, so the event loop
keeps accepting and streaming while torch computes. A request's ``seed`` is passed on, as
voicestack's ingress does (a generative voice's noise, hence its durations and audio length,
then follow it). Each runs in its own uvicorn process, started by ``launch.py``:

    python -m bench.serve_bench.servers --mode streaming --voice PATH --port 8123
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from voicestack.runtime.voice import Voice

MODES: tuple[str, ...] = ("naive", "streaming")


def load_voice(path: str) -> Voice:
    """Build the voice from its addon folder, as `voicestack synth` does."""
    from voicestack.addons.loader import load_addon
    from voicestack.runtime.voice import build_voice

    return build_voice(load_addon(Path(path)))


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _parse(body: Any, voice: Voice) -> tuple[str, str, int | None] | JSONResponse:
    """(text, format, seed) of a valid request, or the 4xx answer voicestack's ingress would
    give."""
    from voicestack.serve_app.formats import FORMATS

    if not isinstance(body, dict):
        return _error(422, "the body must be a JSON object")
    if body.get("voice") != voice.name:
        return _error(404, f"unknown voice {body.get('voice')!r} (known: {voice.name})")
    text, fmt = body.get("text"), body.get("format", "wav")
    if not isinstance(text, str) or not text:
        return _error(422, "text: must be a non-empty string")
    if fmt not in FORMATS:
        return _error(422, f"format: must be one of {', '.join(FORMATS)}")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        return _error(422, "seed: must be a non-negative integer")
    if not voice.sentences(text):
        return _error(400, "nothing to say: the text has no speakable sentence")
    return text, fmt, seed


def _whole(voice: Voice, text: str, fmt: str, seed: int | None = None) -> bytes:
    """The naive answer: every sample made first, then encoded in one piece."""
    from voicestack.runtime.local import synthesize
    from voicestack.serve_app.formats import StreamEncoder

    encoder = StreamEncoder(fmt, voice.sample_rate)
    audio = synthesize(voice, text, seed)
    return encoder.start() + encoder.audio(audio, 0) + encoder.end({"samples": len(audio)})


def _chunks(voice: Voice, text: str, fmt: str, seed: int | None = None) -> Iterator[bytes]:
    """The streaming answer: each chunk's bytes as soon as the local runtime makes it."""
    from voicestack.runtime.local import synthesize_stream
    from voicestack.serve_app.formats import StreamEncoder

    encoder = StreamEncoder(fmt, voice.sample_rate)
    produced = 0
    yield encoder.start()
    for chunk in synthesize_stream(voice, text, seed):
        samples = chunk.core[:, 0].numpy()
        yield encoder.audio(samples, produced)
        produced += samples.shape[0]
    yield encoder.end({"samples": produced})


def _headers(voice: Voice) -> dict[str, str]:
    return {"X-Sample-Rate": str(voice.sample_rate), "Cache-Control": "no-store"}


def create_app(voice: Voice, mode: str) -> Starlette:
    """The ASGI app serving `voice` in `mode` (``naive`` or ``streaming``)."""
    from voicestack.serve_app.formats import media_type

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")

    async def healthz(request: Request) -> JSONResponse:
        import torch

        return JSONResponse(
            {
                "status": "ok",
                "voices": [voice.name],
                "mode": mode,
                "torch_threads": torch.get_num_threads(),
            }
        )

    async def synthesize(request: Request) -> Response:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(422, "the body is not JSON")
        parsed = _parse(body, voice)
        if isinstance(parsed, JSONResponse):
            return parsed
        text, fmt, seed = parsed
        kind = media_type(fmt, voice.sample_rate)
        if mode == "naive":
            data = await run_in_threadpool(_whole, voice, text, fmt, seed)
            return Response(data, media_type=kind, headers=_headers(voice))
        return StreamingResponse(
            _chunks(voice, text, fmt, seed), media_type=kind, headers=_headers(voice)
        )

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/v1/synthesize", synthesize, methods=["POST"]),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--voice", required=True, help="the voice's addon folder")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    voice = load_voice(args.voice)
    _whole(voice, "Warming up.", "pcm")  # first-call costs are not the benchmark's to measure
    app = create_app(voice, args.mode)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
