"""Decoder: the non-attentive decoder, upsampled encodings to mel frames, chunk by chunk."""

from __future__ import annotations

from voicestack.blocks.library.network_chunks import NetworkChunkBlock, NetworkChunkConfig


class Decoder(NetworkChunkBlock):
    """Decodes each chunk of upsampled encodings with its context; yields mel chunks."""

    consumes = "upsampled"
    produces = "mel"

    class Config(NetworkChunkConfig):
        network: str = "decoder"
