"""Build the two test voices: tiny, randomly initialised networks of each architecture.

They test the plumbing (formats, blocks, streaming, shapes, serving), not speech: their audio is
noise. One is duration-based (text encoder + duration predictor, upsampler, decoder), one is
attention-based (encoder, autoregressive attention decoder); both share the vocoder design.
Weights are seeded, so every build is the same voice.

    python -m voicestack.addons.recipes.test_voices DEST
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from voicestack.addons.format import FORMAT_VERSION
from voicestack.addons.recipes import tiny_networks as nets
from voicestack.addons.recipes.addon_files import export, symbol_inputs, tensor, write_addon
from voicestack.addons.recipes.row_invariant import export_step

SAMPLE_RATE, HOP, N_MELS, DIM, STATE = 22050, 256, 80, 32, 64
MAX_SYMBOLS, MAX_FRAMES = 1024, 8192
#: Chunk networks (decoder, vocoder) take a batch of chunks of different streams.
MAX_BATCH = 64
#: Bumped when the test voices change, so a cache of them is rebuilt.
TEST_VOICES_VERSION = "3"


def _common(name: str, architecture: str, symbols: list[str], description: str) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": TEST_VOICES_VERSION,
        "language": "en-US",
        "architecture": architecture,
        "description": description,
        "audio": {
            "sample_rate": SAMPLE_RATE,
            "hop_length": HOP,
            "n_mels": N_MELS,
            "n_fft": 1024,
            "win_length": 1024,
        },
        "symbols": symbols,
        "frontend": {"type": "Frontend", "language": "en-us"},
    }


def _vocoder(folder: Path, seed: int) -> dict:
    torch.manual_seed(seed)
    vocoder = nets.FrameVocoder(N_MELS, HOP)
    frames = torch.export.Dim("frames", min=1, max=MAX_FRAMES)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    export(
        vocoder,
        (torch.randn(2, 20, N_MELS), torch.ones(2, 20)),
        {"mel": {0: batch, 1: frames}, "mask": {0: batch, 1: frames}},
        folder / "vocoder.pt2",
    )
    return {
        "file": "vocoder.pt2",
        "role": "vocoder",
        "inputs": [
            tensor("mel", ["batch", "length", N_MELS]),
            tensor("mask", ["batch", "length"]),
        ],
        "outputs": [tensor("audio", ["batch", f"length*{HOP}"])],
        "receptive_field_frames": vocoder.receptive_field,
    }


def build_duration_voice(folder: Path, symbols: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(1)
    n = len(symbols)
    sym = torch.export.Dim("symbols", min=1, max=MAX_SYMBOLS)
    frames = torch.export.Dim("frames", min=1, max=MAX_FRAMES)
    example = (torch.randint(1, n, (1, 12)), torch.ones(1, 12))
    encoder, durations, decoder = (
        nets.TextEncoder(n, DIM),
        nets.DurationPredictor(n, DIM),
        nets.FrameDecoder(DIM, N_MELS),
    )
    export(encoder, example, {"symbols": {1: sym}, "mask": {1: sym}}, folder / "text_encoder.pt2")
    export(
        durations,
        example,
        {"symbols": {1: sym}, "mask": {1: sym}},
        folder / "duration_predictor.pt2",
    )
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    export(
        decoder,
        (torch.randn(2, 40, DIM), torch.ones(2, 40)),
        {"frames": {0: batch, 1: frames}, "mask": {0: batch, 1: frames}},
        folder / "decoder.pt2",
    )
    config = _common(
        "test-duration", "duration", symbols, "Test voice: random duration-based networks (noise)."
    )
    config["networks"] = {
        "text_encoder": {
            "file": "text_encoder.pt2",
            "role": "encoder",
            "inputs": symbol_inputs(),
            "outputs": [tensor("encodings", ["batch", "length", DIM])],
        },
        "duration_predictor": {
            "file": "duration_predictor.pt2",
            "role": "encoder",
            "inputs": symbol_inputs(),
            "outputs": [tensor("durations", ["batch", "length"])],
        },
        "decoder": {
            "file": "decoder.pt2",
            "role": "decoder",
            "inputs": [
                tensor("frames", ["batch", "length", DIM]),
                tensor("mask", ["batch", "length"]),
            ],
            "outputs": [tensor("mel", ["batch", "length", N_MELS])],
            "receptive_field_frames": decoder.receptive_field,
        },
        "vocoder": _vocoder(folder, seed=3),
    }
    config["stack"] = [
        {
            "type": "StreamablePipeline",
            "sequence_block": {"type": "Encoders"},
            "streamable_block": {
                "type": "StreamableStack",
                "stack": [{"type": "Upsampler"}, {"type": "Decoder"}],
            },
        },
        {"type": "Vocoder"},
    ]
    return write_addon(folder, config)


def build_attention_voice(folder: Path, symbols: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(2)
    n = len(symbols)
    sym = torch.export.Dim("symbols", min=1, max=MAX_SYMBOLS)
    encoder, step = nets.TextEncoder(n, DIM), nets.AttentionStep(N_MELS, DIM, STATE)
    export(
        encoder,
        (torch.randint(1, n, (1, 12)), torch.ones(1, 12)),
        {"symbols": {1: sym}, "mask": {1: sym}},
        folder / "encoder.pt2",
    )
    # A dynamic batch, as the reference attention voice's step: a replica steps every stream
    # in flight with one call (serve_app/stepping.py).
    export_step(step, N_MELS, STATE, DIM, MAX_SYMBOLS, folder / "attention_decoder.pt2")
    config = _common(
        "test-attention",
        "attention",
        symbols,
        "Test voice: random attention-based networks (noise).",
    )
    config["networks"] = {
        "encoder": {
            "file": "encoder.pt2",
            "role": "encoder",
            "inputs": symbol_inputs(),
            "outputs": [tensor("encodings", ["batch", "length", DIM])],
        },
        "attention_decoder": {
            "file": "attention_decoder.pt2",
            "role": "attention_decoder",
            "inputs": [
                tensor("prev_frame", ["batch", N_MELS]),
                tensor("hidden", ["batch", STATE]),
                tensor("position", ["batch", 1]),
                tensor("encodings", ["batch", "length", DIM]),
                tensor("mask", ["batch", "length"]),
            ],
            "outputs": [
                tensor("frame", ["batch", N_MELS]),
                tensor("stop", ["batch"]),
                tensor("hidden", ["batch", STATE]),
                tensor("position", ["batch", 1]),
                tensor("weights", ["batch", "length"]),
            ],
        },
        "vocoder": _vocoder(folder, seed=3),
    }
    config["stack"] = [
        {
            "type": "StreamablePipeline",
            "sequence_block": {"type": "Encoders"},
            "streamable_block": {"type": "AttentionDecoder"},
        },
        {"type": "Vocoder"},
    ]
    return write_addon(folder, config)


def build_test_voices(dest: Path, symbols: list[str] | None = None) -> list[Path]:
    """Build both test voices under `dest`; return their folders."""
    if symbols is None:
        from voicestack.blocks.text.phonemes import ENGLISH_SYMBOLS

        symbols = list(ENGLISH_SYMBOLS)
    return [
        build_duration_voice(dest / "test-duration", symbols),
        build_attention_voice(dest / "test-attention", symbols),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dest", type=Path)
    for folder in build_test_voices(parser.parse_args().dest):
        print(folder)


if __name__ == "__main__":
    main()
