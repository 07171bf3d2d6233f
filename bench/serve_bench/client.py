"""Concurrent streaming clients: what a listener of each stream would experience.

Each request is read as it arrives (httpx streaming, raw bytes), and every piece's arrival time
and size is kept, so the measures a listener cares about can be computed afterwards and checked
against the raw record:

- TTFA: time from sending the request to the first audio byte (pcm has no header, so the first
  body byte);
- underruns: playback starts at the first byte, in real time; an underrun is the moment the
  player has played everything received before the next piece arrives (it then waits, and
  plays on from that piece);
- the largest gap between pieces.

A level sends a fixed number of requests with at most `concurrency` in flight (a closed loop: a
client sends its next request when the previous one ends), so every level is bounded. The open
loop (`run_open_loop`) sends each request at its own time instead, whatever is in flight. A 503 with
Retry-After is the server shedding load as designed: counted as rejected, not as an error.

Two protocols are spoken (PROTOCOLS): voicestack's API, which every server of the harness
answers except one (``POST /v1/synthesize {voice, text, format: pcm}``, raw PCM16 with
``X-Sample-Rate``), and Piper's own HTTP server's (``python -m piper.http_server``:
``POST /synthesize {"text": ...}``, one whole WAV file). For the latter the WAV header is read
as it arrives and only the samples after it count, so TTFA is again the first audio byte (for
a whole file: the whole synthesis), and a body shorter than its header's data size is an error.
Such a server sends nothing until its synthesis ends, so only the total timeout applies to it,
not the stall timeout (a long text at 16 streams can take minutes before the first byte).
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

#: Bytes per sample of 16-bit mono PCM.
SAMPLE_BYTES = 2

#: How the client speaks to a server: `voicestack` (POST /v1/synthesize, raw PCM) or
#: `piper-http` (Piper's own server: POST /synthesize {"text"}, a whole WAV).
PROTOCOLS: tuple[str, ...] = ("voicestack", "piper-http")


def request_for(protocol: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(path, JSON body) of the request carrying `payload` ({voice, text, format, seed?}) in
    `protocol`. Piper's server is sent the text alone: it serves one voice, and a voice name
    it does not know is only a warning in its log on every request."""
    if protocol == "piper-http":
        return "/synthesize", {"text": payload["text"]}
    if protocol != "voicestack":
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    return "/v1/synthesize", payload


class WavReader:
    """Reads a PCM16 mono WAV as its bytes arrive: `feed` returns how many bytes of a piece
    are samples (0 while the header is still coming); `sample_rate` and `declared_bytes` (the
    data chunk's size; None when the header says unknown) are known once the header is read.
    Raises ValueError on anything but a PCM16 mono WAV."""

    def __init__(self) -> None:
        self._head = b""
        self._in_data = False
        self.sample_rate = 0
        self.declared_bytes: int | None = None

    def feed(self, piece: bytes) -> int:
        if self._in_data:
            return len(piece)
        self._head += piece
        head = self._head
        if len(head) < 12:
            return 0
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"not a WAV file: starts {head[:12]!r}")
        at = 12
        while len(head) >= at + 8:
            kind, size = head[at : at + 4], struct.unpack("<I", head[at + 4 : at + 8])[0]
            if kind == b"data":
                if not self.sample_rate:
                    raise ValueError("WAV data before its fmt chunk")
                self._in_data, self._head = True, b""
                self.declared_bytes = None if size == 0xFFFFFFFF else size
                return len(head) - (at + 8)
            if len(head) < at + 8 + size:
                return 0
            if kind == b"fmt ":
                codec, channels, rate = struct.unpack("<HHI", head[at + 8 : at + 16])
                bits = struct.unpack("<H", head[at + 22 : at + 24])[0]
                if (codec, channels, bits) != (1, 1, 16):
                    raise ValueError(f"WAV is not PCM16 mono: {codec=} {channels=} {bits=}")
                self.sample_rate = rate
            at += 8 + size + (size & 1)
        return 0


@dataclass(frozen=True)
class Timeouts:
    """How long a request may take: in all (a slow but moving stream is load, not a fault),
    and without a single byte arriving (a stream that stops moving hangs)."""

    total_s: float = 3600.0
    stall_s: float = 120.0


@dataclass
class StreamRecord:
    """One request as the client saw it; times in seconds."""

    started_s: float  # since the level started
    ended_s: float = 0.0
    status: int | None = None
    sample_rate: int = 0
    arrivals: list[tuple[float, int]] = field(default_factory=list)  # (since request, bytes)
    error: str | None = None
    rejected: bool = False
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.rejected and self.status == 200

    @property
    def audio_bytes(self) -> int:
        return sum(n for _, n in self.arrivals)

    @property
    def audio_s(self) -> float:
        return self.audio_bytes / SAMPLE_BYTES / self.sample_rate if self.sample_rate else 0.0

    @property
    def ttfa_s(self) -> float | None:
        return self.arrivals[0][0] if self.arrivals else None

    def max_gap_s(self) -> float:
        times = [t for t, _ in self.arrivals]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)

    def underruns(self) -> tuple[int, float]:
        """(how many times playback ran dry, seconds spent waiting for audio after the first
        byte), playing in real time from the first byte and resuming at each late piece."""
        if not self.arrivals or not self.sample_rate:
            return 0, 0.0
        per_byte = 1.0 / (SAMPLE_BYTES * self.sample_rate)
        count, stalled = 0, 0.0
        buffered_until = self.arrivals[0][0] + self.arrivals[0][1] * per_byte
        for at, size in self.arrivals[1:]:
            if at > buffered_until:
                count += 1
                stalled += at - buffered_until
                buffered_until = at
            buffered_until += size * per_byte
        return count, stalled

    def as_dict(self) -> dict[str, Any]:
        underruns, stalled = self.underruns()
        return {
            **asdict(self),
            "audio_bytes": self.audio_bytes,
            "audio_s": self.audio_s,
            "ttfa_s": self.ttfa_s,
            "max_gap_s": self.max_gap_s(),
            "underruns": underruns,
            "stalled_s": stalled,
        }


async def _read(
    response: httpx.Response, record: StreamRecord, sent: float, protocol: str = "voicestack"
) -> None:
    record.status = response.status_code
    if response.status_code == 503 and "retry-after" in response.headers:
        await response.aread()
        record.rejected, record.retry_after = True, response.headers["retry-after"]
        return
    if response.status_code != 200:
        body = (await response.aread())[:300].decode("utf-8", "replace")
        record.error = f"HTTP {response.status_code}: {body}"
        return
    if protocol == "piper-http":
        await _read_wav(response, record, sent)
        return
    record.sample_rate = int(response.headers.get("x-sample-rate", "0"))
    async for piece in response.aiter_raw():
        if piece:
            record.arrivals.append((time.perf_counter() - sent, len(piece)))
    if record.audio_bytes % SAMPLE_BYTES:
        record.error = f"odd body length {record.audio_bytes}: not 16-bit samples"


async def _read_wav(response: httpx.Response, record: StreamRecord, sent: float) -> None:
    """A whole WAV (Piper's server): arrivals count the samples only, not the header."""
    reader = WavReader()
    try:
        async for piece in response.aiter_raw():
            audio = reader.feed(piece) if piece else 0
            if audio:
                record.arrivals.append((time.perf_counter() - sent, audio))
    except ValueError as e:
        record.error = f"bad WAV: {e}"
        return
    record.sample_rate = reader.sample_rate
    if not reader.sample_rate:
        record.error = "bad WAV: the header did not end"
    elif reader.declared_bytes is not None and record.audio_bytes != reader.declared_bytes:
        record.error = f"WAV data {record.audio_bytes} bytes, header says {reader.declared_bytes}"
    elif record.audio_bytes % SAMPLE_BYTES:
        record.error = f"odd body length {record.audio_bytes}: not 16-bit samples"


async def fetch(
    client: httpx.AsyncClient,
    payload: dict[str, Any],
    level_start: float,
    timeouts: Timeouts,
    protocol: str = "voicestack",
) -> StreamRecord:
    """Send one request and read its stream to the end (or until a timeout)."""
    path, body = request_for(protocol, payload)
    sent = time.perf_counter()
    record = StreamRecord(started_s=sent - level_start)
    try:
        async with asyncio.timeout(timeouts.total_s):
            async with client.stream("POST", path, json=body) as response:
                await _read(response, record, sent, protocol)
    except TimeoutError:
        record.error = f"not finished after {timeouts.total_s:.0f} s"
    except httpx.ReadTimeout:
        record.error = f"hang: no byte for {timeouts.stall_s:.0f} s"
    except httpx.HTTPError as e:
        record.error = f"{type(e).__name__}: {e}"
    record.ended_s = time.perf_counter() - level_start
    return record


@dataclass
class LevelRun:
    records: list[StreamRecord]
    wall_s: float
    #: Open loop only: when each request was due, in seconds since the start (records are in
    #: the same order); a record's `started_s` past it is the client running late.
    scheduled_s: list[float] = field(default_factory=list)


async def run_level(
    base_url: str,
    payload: dict[str, Any],
    concurrency: int,
    requests: int,
    timeouts: Timeouts,
    protocol: str = "voicestack",
) -> LevelRun:
    """`requests` requests of `payload`, at most `concurrency` in flight at any time, spoken
    in `protocol` (of PROTOCOLS)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # a whole-file server is silent until it is done: no stall timeout, only the total one
    silent_s = timeouts.total_s if protocol == "piper-http" else timeouts.stall_s
    timeout = httpx.Timeout(silent_s, connect=30.0, pool=None)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        start = time.perf_counter()

        async def one() -> StreamRecord:
            async with gate:
                return await fetch(client, payload, start, timeouts, protocol)

        records = await asyncio.gather(*(one() for _ in range(requests)))
        wall = time.perf_counter() - start
    return LevelRun(list(records), wall)


async def run_open_loop(
    base_url: str,
    payloads: list[dict[str, Any]],
    offsets_s: list[float],
    timeouts: Timeouts,
    protocol: str = "voicestack",
) -> LevelRun:
    """Open loop: request i (`payloads[i]`) is sent `offsets_s[i]` seconds after the start, in
    a task of its own, whether or not the earlier ones have finished (a client that waited would
    lower the arrival rate exactly when the server falls behind, and hide it); then every
    stream is read to its end, bounded by `timeouts` as in a level. No connection limit, for
    the same reason; records come back in the order of `payloads`."""
    if len(payloads) != len(offsets_s):
        raise ValueError(f"{len(payloads)} payloads for {len(offsets_s)} send times")
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    silent_s = timeouts.total_s if protocol == "piper-http" else timeouts.stall_s
    timeout = httpx.Timeout(silent_s, connect=30.0, pool=None)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        start = time.perf_counter()

        async def at(offset_s: float, payload: dict[str, Any]) -> StreamRecord:
            await asyncio.sleep(max(0.0, start + offset_s - time.perf_counter()))
            return await fetch(client, payload, start, timeouts, protocol)

        tasks = [asyncio.create_task(at(o, p)) for o, p in zip(offsets_s, payloads, strict=True)]
        records = await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return LevelRun(list(records), wall, list(offsets_s))


def run_open_loop_sync(
    base_url: str,
    payloads: list[dict[str, Any]],
    offsets_s: list[float],
    timeouts: Timeouts,
    protocol: str = "voicestack",
) -> LevelRun:
    """`run_open_loop` on a fresh event loop, for the synchronous orchestration."""
    return asyncio.run(run_open_loop(base_url, payloads, offsets_s, timeouts, protocol))


def run_level_sync(
    base_url: str,
    payload: dict[str, Any],
    concurrency: int,
    requests: int,
    timeouts: Timeouts,
    protocol: str = "voicestack",
) -> LevelRun:
    """`run_level` on a fresh event loop, for the synchronous orchestration."""
    return asyncio.run(run_level(base_url, payload, concurrency, requests, timeouts, protocol))
