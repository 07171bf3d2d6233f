"""Train the duration-based (FastSpeech-like) reference voice and export it as an addon.

    python -m voicestack.addons.recipes.duration_voice [--steps 4000] [--dest addons/voices/espeak-duration]

Networks (every layer masks its input, so padding behaves like the zero padding at an
utterance's edge; see docs/architecture.md):
- `text_encoder`: symbols -> encodings (N, 192). Embedding and dilated residual convolutions.
- `duration_predictor`: symbols -> durations in frames (float). Its own embedding and
  convolutions, trained on log(1 + frames) of the corpus alignment.
- `decoder`: upsampled encodings -> 80-band log-mel. Dilated residual convolutions with a
  bounded, declared receptive field, so the streamed voice equals a one-shot run.
The vocoder is the GriffinLim block (no weights); the log-mel is `blocks/library/mel.py`'s.

Training uses the corpus recipe's (`corpus.py`) first voice, the ground-truth durations for the
upsampling (teacher forcing), an L1 loss on the log-mel and a squared loss on log durations.
The held-out sentences are not read here. Runs on one CPU thread by default (`--threads`).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch
from torch import nn
from voicestack.addons.format import FORMAT_VERSION
from voicestack.addons.recipes import corpus
from voicestack.addons.recipes.addon_files import (
    symbol_inputs,
    tensor,
    training_parser,
    write_addon,
)

DIM, DEC_DIM, DUR_DIM = 192, 192, 128
MAX_SYMBOLS, MAX_FRAMES = 1024, 8192
VOICE_NAME = "espeak-duration"
VOICE_VERSION = "2"
#: The decoder serves a batch of chunks from different streams in one call (placement
#: `batching`), so it is exported with a dynamic batch up to this size.
MAX_BATCH = 64


class MaskedResidualConvs(nn.Module):
    """Residual blocks conv -> ReLU -> LayerNorm over (batch, channels, time), each block's input
    multiplied by the mask. Receptive field: sum of dilation * (kernel // 2)."""

    def __init__(self, channels: int, kernel: int, dilations: list[int], dropout: float = 0.0):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, padding=d * (kernel // 2), dilation=d)
            for d in dilations
        )
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in dilations)
        self.dropout = nn.Dropout(dropout)
        self.receptive_field = sum(d * (kernel // 2) for d in dilations)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(1)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            y = torch.relu(conv(x * m))
            y = norm(y.transpose(1, 2)).transpose(1, 2)
            x = x + self.dropout(y)
        return x * m


class TextEncoder(nn.Module):
    """symbols (B, N) int64, mask (B, N) float -> encodings (B, N, DIM)."""

    def __init__(self, n_symbols: int):
        super().__init__()
        self.embedding = nn.Embedding(n_symbols, DIM, padding_idx=0)
        self.convs = MaskedResidualConvs(DIM, 5, [1, 2, 4, 1, 2, 4], dropout=0.1)

    def forward(self, symbols: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embedding(symbols).transpose(1, 2)
        return self.convs(x, mask).transpose(1, 2)


class DurationPredictor(nn.Module):
    """symbols (B, N), mask (B, N) -> durations (B, N) in frames, >= 0 (0 on padding)."""

    def __init__(self, n_symbols: int):
        super().__init__()
        self.embedding = nn.Embedding(n_symbols, DUR_DIM, padding_idx=0)
        self.convs = MaskedResidualConvs(DUR_DIM, 3, [1, 2, 4, 8, 1], dropout=0.1)
        self.proj = nn.Linear(DUR_DIM, 1)

    def log_durations(self, symbols: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.convs(self.embedding(symbols).transpose(1, 2), mask).transpose(1, 2)
        return self.proj(x).squeeze(-1)

    def forward(self, symbols: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.expm1(self.log_durations(symbols, mask)), min=0.0) * mask


class Decoder(nn.Module):
    """frames (B, T, DIM), mask (B, T) -> mel (B, T, 80). Bounded receptive field."""

    def __init__(self, n_mels: int = corpus.N_MELS):
        super().__init__()
        self.inp = nn.Linear(DIM, DEC_DIM)
        self.convs = MaskedResidualConvs(DEC_DIM, 5, [1, 2, 4, 1, 2, 4], dropout=0.0)
        self.out = nn.Linear(DEC_DIM, n_mels)
        self.receptive_field = self.convs.receptive_field

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.inp(frames).transpose(1, 2)
        x = self.convs(x, mask).transpose(1, 2)
        return self.out(x) * mask.unsqueeze(-1)


# --- training ------------------------------------------------------------------------------------


def _batches(utterances: list, frames_per_batch: int, rng: random.Random) -> list[list[int]]:
    """Index lists of utterances of similar length, about `frames_per_batch` frames each."""
    order = sorted(range(len(utterances)), key=lambda i: utterances[i].mel.shape[0])
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        longest = max(longest, utterances[i].mel.shape[0])
        if current and longest * (len(current) + 1) > frames_per_batch:
            batches.append(current)
            current, longest = [], utterances[i].mel.shape[0]
        current.append(i)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def _collate(utterances: list, indices: list[int]):
    items = [utterances[i] for i in indices]
    n = max(u.symbols.shape[0] for u in items)
    t = max(u.mel.shape[0] for u in items)
    symbols = torch.zeros(len(items), n, dtype=torch.long)
    durations = torch.zeros(len(items), n, dtype=torch.long)
    sym_mask = torch.zeros(len(items), n)
    mel = torch.zeros(len(items), t, corpus.N_MELS)
    frame_mask = torch.zeros(len(items), t)
    for b, u in enumerate(items):
        symbols[b, : u.symbols.shape[0]] = u.symbols
        durations[b, : u.symbols.shape[0]] = u.durations
        sym_mask[b, : u.symbols.shape[0]] = 1
        mel[b, : u.mel.shape[0]] = u.mel
        frame_mask[b, : u.mel.shape[0]] = 1
    return symbols, durations, sym_mask, mel, frame_mask


def upsample(encodings: torch.Tensor, durations: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, N, C) repeated by (B, N) integer durations into (B, frames, C), zero-padded."""
    out = encodings.new_zeros(encodings.shape[0], frames, encodings.shape[2])
    for b in range(encodings.shape[0]):
        rows = torch.repeat_interleave(encodings[b], durations[b], dim=0)
        out[b, : rows.shape[0]] = rows[:frames]
    return out


def train(
    dest_corpus: Path, steps: int, frames_per_batch: int, seed: int = 0
) -> tuple[nn.Module, nn.Module, nn.Module, dict]:
    from tqdm import tqdm
    from voicestack.blocks.text.phonemes import ENGLISH_SYMBOLS

    torch.manual_seed(seed)
    rng = random.Random(seed)
    utterances = corpus.load_split(dest_corpus, "train")
    n = len(ENGLISH_SYMBOLS)
    encoder, durations_net, decoder = TextEncoder(n), DurationPredictor(n), Decoder()
    params = [p for m in (encoder, durations_net, decoder) for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-6)
    warmup = min(200, steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return (
            0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))) * 0.97 + 0.03
        )

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    for m in (encoder, durations_net, decoder):
        m.train()
    batches: list[list[int]] = []
    started = time.perf_counter()
    progress = tqdm(range(steps), desc="train espeak-duration", mininterval=5)
    mel_avg = dur_avg = None
    for step in progress:
        if not batches:
            batches = _batches(utterances, frames_per_batch, rng)
        symbols, durations, sym_mask, mel, frame_mask = _collate(utterances, batches.pop())
        encodings = encoder(symbols, sym_mask)
        frames = upsample(encodings, durations, mel.shape[1])
        predicted = decoder(frames, frame_mask)
        mel_loss = ((predicted - mel).abs().mean(-1) * frame_mask).sum() / frame_mask.sum()
        log_d = durations_net.log_durations(symbols, sym_mask)
        dur_loss = (
            ((log_d - torch.log1p(durations.float())) ** 2) * sym_mask
        ).sum() / sym_mask.sum()
        loss = mel_loss + dur_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        mel_avg = mel_loss.item() if mel_avg is None else 0.98 * mel_avg + 0.02 * mel_loss.item()
        dur_avg = dur_loss.item() if dur_avg is None else 0.98 * dur_avg + 0.02 * dur_loss.item()
        if step % 20 == 0:
            progress.set_postfix(mel_l1=f"{mel_avg:.3f}", log_dur_mse=f"{dur_avg:.3f}")
    for m in (encoder, durations_net, decoder):
        m.eval()
    report = {
        "steps": steps,
        "frames_per_batch": frames_per_batch,
        "train_utterances": len(utterances),
        "train_seconds": round(time.perf_counter() - started, 1),
        "final_mel_l1": round(mel_avg or 0.0, 4),
        "final_log_duration_mse": round(dur_avg or 0.0, 4),
        "threads": torch.get_num_threads(),
    }
    return encoder, durations_net, decoder, report


# --- export ------------------------------------------------------------------------------------


def export_addon(
    folder: Path, encoder: nn.Module, durations_net: nn.Module, decoder: nn.Module, report: dict
) -> Path:
    from voicestack.blocks.text.phonemes import ENGLISH_SYMBOLS

    folder.mkdir(parents=True, exist_ok=True)
    sym = torch.export.Dim("symbols", min=1, max=MAX_SYMBOLS)
    frames = torch.export.Dim("frames", min=1, max=MAX_FRAMES)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    example = (torch.randint(1, len(ENGLISH_SYMBOLS), (1, 12)), torch.ones(1, 12))

    def save(module: nn.Module, args: tuple, dynamic: dict, file: str) -> None:
        with torch.no_grad():
            program = torch.export.export(module.eval(), args, dynamic_shapes=dynamic, strict=False)
        torch.export.save(program, folder / file)

    symbol_dynamic = {"symbols": {1: sym}, "mask": {1: sym}}
    save(encoder, example, symbol_dynamic, "text_encoder.pt2")
    save(durations_net, example, symbol_dynamic, "duration_predictor.pt2")
    save(
        decoder,
        (torch.randn(2, 40, DIM), torch.ones(2, 40)),
        {"frames": {0: batch, 1: frames}, "mask": {0: batch, 1: frames}},
        "decoder.pt2",
    )
    config = {
        "format_version": FORMAT_VERSION,
        "name": VOICE_NAME,
        "version": VOICE_VERSION,
        "language": "en-US",
        "architecture": "duration",
        "description": (
            "Reference duration-based voice trained on espeak-ng (en-us) speech made by "
            "addons/recipes/corpus.py; Griffin-Lim vocoder. "
            f"Trained {report['steps']} steps in {report['train_seconds']} s on "
            f"{report['threads']} CPU thread(s)."
        ),
        "audio": corpus.audio_config(),
        "symbols": list(ENGLISH_SYMBOLS),
        "frontend": {"type": "Frontend", "language": "en-us"},
        "networks": {
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
                "outputs": [tensor("mel", ["batch", "length", corpus.N_MELS])],
                "receptive_field_frames": decoder.receptive_field,
            },
        },
        "stack": [
            {
                "type": "StreamablePipeline",
                "sequence_block": {"type": "Encoders"},
                "streamable_block": {
                    "type": "StreamableStack",
                    # 16 frames first (early first sound), then doubling up to 96: fewer
                    # hops and less vocoder context per second of audio (docs/benchmarks.md).
                    "stack": [
                        {
                            "type": "Upsampler",
                            "chunk_frames": 96,
                            "first_chunk_frames": 16,
                            "growth": 2,
                        },
                        {"type": "Decoder"},
                    ],
                },
            },
            {"type": "GriffinLim"},
        ],
    }
    return write_addon(folder, config, report)


def load_checkpoint(path: Path) -> tuple[nn.Module, nn.Module, nn.Module, dict]:
    """The networks and training report saved by `--checkpoint` (our own file: plain tensors,
    read with weights_only)."""
    saved = torch.load(path, weights_only=True)
    from voicestack.blocks.text.phonemes import ENGLISH_SYMBOLS

    encoder, durations_net, decoder = (
        TextEncoder(len(ENGLISH_SYMBOLS)),
        DurationPredictor(len(ENGLISH_SYMBOLS)),
        Decoder(),
    )
    encoder.load_state_dict(saved["encoder"])
    durations_net.load_state_dict(saved["durations"])
    decoder.load_state_dict(saved["decoder"])
    return encoder, durations_net, decoder, saved["report"]


def main() -> None:
    args = training_parser(__doc__, VOICE_NAME, steps=4000).parse_args()
    torch.set_num_threads(args.threads)
    if args.from_checkpoint is not None:
        encoder, durations_net, decoder, report = load_checkpoint(args.from_checkpoint)
        print(export_addon(args.dest, encoder, durations_net, decoder, report))
        return
    encoder, durations_net, decoder, report = train(
        args.corpus or corpus.default_dest(), args.steps, args.frames_per_batch
    )
    if args.checkpoint is not None:
        torch.save(
            {
                "encoder": encoder.state_dict(),
                "durations": durations_net.state_dict(),
                "decoder": decoder.state_dict(),
                "report": report,
            },
            args.checkpoint,
        )
    print(export_addon(args.dest, encoder, durations_net, decoder, report))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
