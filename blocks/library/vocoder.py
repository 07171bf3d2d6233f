"""Vocoder: mel chunks to audio chunks.

Each mel chunk carries the vocoder's receptive field of context from its neighbours (overlap),
so consecutive audio chunks join without a seam: the stream equals vocoding the whole utterance.
"""

from __future__ import annotations

from voicestack.blocks.library.network_chunks import NetworkChunkBlock, NetworkChunkConfig


class Vocoder(NetworkChunkBlock):
    consumes = "mel"
    produces = "audio"

    class Config(NetworkChunkConfig):
        network: str = "vocoder"
