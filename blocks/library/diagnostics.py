"""Diagnostics: records per-chunk timing and statistics; passes the stream through unchanged.

Put it anywhere in a stack to see what flows there: when each chunk arrived, how long the
blocks before it took to make it, its size, context and level.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from pydantic import Field
from voicestack.blocks.core.base import BlockConfig, BuildEnv
from voicestack.blocks.core.chunk import Chunk
from voicestack.blocks.core.sequence import Features
from voicestack.blocks.core.streamable import ANY, StreamableBlock

logger = logging.getLogger("voicestack.diagnostics")


@dataclass(frozen=True)
class ChunkRecord:
    label: str
    utterance: int
    index: int
    start: int
    frames: int
    left: int
    right: int
    channels: int
    is_last: bool
    since_stream_start_s: float
    upstream_s: float
    """Time spent waiting for the blocks before this one to make the chunk."""
    rms: float
    peak: float
    mean: float

    def as_dict(self) -> dict:
        return asdict(self)


class Diagnostics(StreamableBlock):
    consumes = ANY
    produces = ANY

    class Config(BlockConfig):
        label: str = ""
        log: bool = Field(default=False, description="also log each record at INFO level")
        keep: int = Field(default=10000, ge=1, description="records kept (oldest dropped first)")

    config: Config

    def __init__(self, config: Config, env: BuildEnv, path: str = ""):
        super().__init__(config, env, path)
        self.records: deque[ChunkRecord] = deque(maxlen=config.keep)
        self._utterances = 0

    def stream(self, features: Features, upstream: Iterator[Chunk] | None) -> Iterator[Chunk]:
        assert upstream is not None
        utterance, self._utterances = self._utterances, self._utterances + 1
        t0 = time.perf_counter()
        index = 0
        while True:
            asked = time.perf_counter()
            chunk = next(upstream, None)
            if chunk is None:
                return
            now = time.perf_counter()
            core = chunk.core.float()
            record = ChunkRecord(
                label=self.config.label or self.path,
                utterance=utterance,
                index=index,
                start=chunk.start,
                frames=chunk.length,
                left=chunk.left,
                right=chunk.right,
                channels=chunk.frames.shape[1],
                is_last=chunk.is_last,
                since_stream_start_s=now - t0,
                upstream_s=now - asked,
                rms=float(core.pow(2).mean().sqrt()) if core.numel() else 0.0,
                peak=float(core.abs().max()) if core.numel() else 0.0,
                mean=float(core.mean()) if core.numel() else 0.0,
            )
            self.records.append(record)
            if self.config.log:
                logger.info("%s", record)
            index += 1
            yield chunk
