"""Gain: a simple effect that scales audio by a level in decibels."""

from __future__ import annotations

from pydantic import Field
from voicestack.blocks.core.base import BlockConfig
from voicestack.blocks.core.chunk import Chunk
from voicestack.blocks.core.streamable import ChunkwiseBlock


class Gain(ChunkwiseBlock):
    consumes = "audio"
    produces = "audio"

    class Config(BlockConfig):
        gain_db: float = Field(default=0.0, ge=-60, le=40)

    config: Config

    def process(self, chunk: Chunk) -> Chunk:
        return Chunk(
            chunk.core * 10 ** (self.config.gain_db / 20), start=chunk.start, is_last=chunk.is_last
        )
