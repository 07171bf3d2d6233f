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
client sends its next request when the previous one ends), so every level is bounded. A 503 with
Retry-After is the server shedding load as designed: counted as rejected, not as an error.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

#: Bytes per sample of 16-bit mono PCM.
SAMPLE_BYTES = 2


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


async def _read(response: httpx.Response, record: StreamRecord, sent: float) -> None:
    record.status = response.status_code
    if response.status_code == 503 and "retry-after" in response.headers:
        await response.aread()
        record.rejected, record.retry_after = True, response.headers["retry-after"]
        return
    if response.status_code != 200:
        body = (await response.aread())[:300].decode("utf-8", "replace")
        record.error = f"HTTP {response.status_code}: {body}"
        return
    record.sample_rate = int(response.headers.get("x-sample-rate", "0"))
    async for piece in response.aiter_raw():
        if piece:
            record.arrivals.append((time.perf_counter() - sent, len(piece)))
    if record.audio_bytes % SAMPLE_BYTES:
        record.error = f"odd body length {record.audio_bytes}: not 16-bit samples"


async def fetch(
    client: httpx.AsyncClient, payload: dict[str, Any], level_start: float, timeouts: Timeouts
) -> StreamRecord:
    """Send one request and read its stream to the end (or until a timeout)."""
    sent = time.perf_counter()
    record = StreamRecord(started_s=sent - level_start)
    try:
        async with asyncio.timeout(timeouts.total_s):
            async with client.stream("POST", "/v1/synthesize", json=payload) as response:
                await _read(response, record, sent)
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


async def run_level(
    base_url: str, payload: dict[str, Any], concurrency: int, requests: int, timeouts: Timeouts
) -> LevelRun:
    """`requests` requests of `payload`, at most `concurrency` in flight at any time."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(timeouts.stall_s, connect=30.0, pool=None)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        start = time.perf_counter()

        async def one() -> StreamRecord:
            async with gate:
                return await fetch(client, payload, start, timeouts)

        records = await asyncio.gather(*(one() for _ in range(requests)))
        wall = time.perf_counter() - start
    return LevelRun(list(records), wall)


def run_level_sync(
    base_url: str, payload: dict[str, Any], concurrency: int, requests: int, timeouts: Timeouts
) -> LevelRun:
    """`run_level` on a fresh event loop, for the synchronous orchestration."""
    return asyncio.run(run_level(base_url, payload, concurrency, requests, timeouts))
