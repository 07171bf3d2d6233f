"""Train the attention-based (Tacotron-like) reference voice and export it as an addon.

    python -m voicestack.addons.recipes.attention_voice [--steps 3000] [--dest addons/voices/espeak-attention]
    python -m voicestack.addons.recipes.attention_voice --reexport addons/voices/espeak-attention

`--reexport DIR` exports the step network of an existing addon again from its own weights (the
archive's state dict loaded into a fresh `AttentionStep`), without training: how an archive made
before the step network took a batch of streams gets one.

Networks:
- `encoder`: symbols -> encodings (N, 192), the same design as the duration voice's encoder.
- `attention_decoder`: one autoregressive step, run in a loop by the AttentionDecoder block.
  Inputs: the previous mel frame, the GRU state, the attention position, the encodings and
  their mask. The frame goes through a prenet; the attention energies are a content term
  (prenet output against the encodings) plus a location term, a Gaussian window around
  `position`, a real-valued index into the symbols that only moves forward, by a predicted
  advance in [0, 3] symbols per frame. Outputs: the frame, a stop logit, the new state and the
  attention weights. Because the position never moves back and moves at most 3 symbols a
  frame, the decoder cannot repeat and can only skip what it jumps in one frame; the stop
  logit also rises once the position has passed the last symbol, so it cannot run on.

Training is teacher-forced and parallel over frames: the corpus alignment gives the position of
every frame (symbol i plus the fraction of its frames already spoken), so the attention of all
frames is computed at once and only the GRU runs frame by frame (nn.GRU). Losses: L1 on the
log-mel, squared error on the advance, and a weighted binary cross-entropy on the stop token.
At synthesis the decoder runs on its own predictions (position, frames, stop).
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
from voicestack.addons.recipes.duration_voice import DIM, TextEncoder, _batches, _collate
from voicestack.addons.recipes.row_invariant import each, gru_cell_step, rows
from voicestack.addons.recipes.row_invariant import export_step as export_step_network

HIDDEN, PRENET = 256, 128
MAX_ADVANCE = 3.0
WINDOW_SIGMA = 0.7
MAX_SYMBOLS = 1024
VOICE_NAME = "espeak-attention"
VOICE_VERSION = "1"


class AttentionStep(nn.Module):
    """One decoder step; `sequence` is the same computation over teacher-forced frames."""

    def __init__(self, n_mels: int = corpus.N_MELS):
        super().__init__()
        self.prenet = nn.Sequential(
            nn.Linear(n_mels, PRENET), nn.ReLU(), nn.Dropout(0.5), nn.Linear(PRENET, PRENET)
        )
        self.query = nn.Linear(PRENET, DIM)
        self.cell = nn.GRU(PRENET + DIM, HIDDEN, batch_first=True)
        self.frame = nn.Sequential(
            nn.Linear(HIDDEN + DIM, 384), nn.ReLU(), nn.Linear(384, 384), nn.ReLU()
        )
        self.mel = nn.Linear(384, n_mels)
        self.advance = nn.Linear(HIDDEN + DIM, 1)
        self.stop_logit = nn.Linear(HIDDEN + DIM, 1)

    def _attend(self, x, position, encodings, mask):
        """x (B, T, P), position (B, T), encodings (B, N, D), mask (B, N) -> weights (B, T, N)."""
        index = torch.arange(encodings.shape[1], dtype=encodings.dtype, device=encodings.device)
        location = -((index[None, None, :] - position.unsqueeze(-1)) ** 2) / (2 * WINDOW_SIGMA**2)
        content = torch.einsum("btd,bnd->btn", self.query(x), encodings) / math.sqrt(DIM)
        energies = torch.where(
            mask.unsqueeze(1) > 0, content + location, torch.full_like(location, -1e9)
        )
        return torch.softmax(energies, dim=-1)

    def _heads(self, hidden, context):
        h = torch.cat([hidden, context], -1)
        return (
            self.mel(self.frame(h)),
            MAX_ADVANCE * torch.sigmoid(self.advance(h).squeeze(-1)),
            self.stop_logit(h).squeeze(-1),
        )

    def sequence(self, prev_frames, positions, encodings, mask):
        """Teacher-forced: prev_frames (B, T, 80), positions (B, T) -> frames, advances,
        stop logits (B, T, 80), (B, T), (B, T)."""
        x = torch.relu(self.prenet(prev_frames))
        weights = self._attend(x, positions, encodings, mask)
        context = weights @ encodings
        hidden, _ = self.cell(torch.cat([x, context], -1))
        return self._heads(hidden, context)

    def forward(self, prev_frame, hidden, position, encodings, mask):
        """One step of a batch of streams, `_attend` and the GRU cell written so that each
        stream's result is the same bits whatever else is in the batch and however far its
        encodings are padded: the loop feeds its output back in, and a rounding difference of
        one part in a million, grown over a few hundred frames, is a different utterance.
        Matrix products are made row by row (`_rows`: at one row what `nn.Linear` and `nn.GRU`
        compute, bit for bit), sums over the symbols in order. The training graph
        (`sequence`) computes the same function with ordinary kernels."""
        x = torch.relu(rows(self.prenet, prev_frame))
        query = rows(self.query, x).unsqueeze(1)
        index = torch.arange(encodings.shape[1], dtype=encodings.dtype, device=encodings.device)
        location = -((index[None, None, :] - position.unsqueeze(-1)) ** 2) / (2 * WINDOW_SIGMA**2)
        # Sums over the symbols in a fixed order (one symbol after another, the padding last),
        # so that padding a stream's encodings to a longer batch's adds exact zeros at the end.
        content = (query * encodings).sum(-1).unsqueeze(1) / math.sqrt(DIM)
        energies = torch.where(
            mask.unsqueeze(1) > 0, content + location, torch.full_like(location, -1e9)
        )
        exp = each(torch.exp, energies - energies.amax(-1, keepdim=True))
        weights = exp / exp.cumsum(-1)[..., -1:]
        context = (weights.transpose(1, 2) * encodings).cumsum(1)[:, -1]
        hidden = self._gru_step(torch.cat([x, context], -1), hidden)
        h = torch.cat([hidden, context], -1)
        frame = rows(self.mel, rows(self.frame, h))
        advance = MAX_ADVANCE * each(torch.sigmoid, rows(self.advance, h).squeeze(-1))
        stop = rows(self.stop_logit, h).squeeze(-1)
        # Once the window has passed the last symbol, stop whatever the learned logit says.
        past_end = torch.clamp(position.squeeze(-1) - (mask.sum(-1) - 0.5), min=0.0)
        stop = stop + 20.0 * past_end
        return frame, stop, hidden, position + advance.unsqueeze(-1), weights.squeeze(1)

    def _gru_step(self, x, hidden):
        """One step of `self.cell` (torch's GRU cell arithmetic, in its order), row by row."""
        cell = self.cell
        return gru_cell_step(
            x, hidden, cell.weight_ih_l0, cell.bias_ih_l0, cell.weight_hh_l0, cell.bias_hh_l0
        )


def frame_positions(durations: torch.Tensor, frames: int) -> torch.Tensor:
    """Position of each frame: symbol index plus the fraction of its frames already spoken.
    durations (N,) int -> (frames,) float; 0 at the first frame, increasing."""
    positions = torch.zeros(frames)
    t = 0
    for i, d in enumerate(durations.tolist()):
        for k in range(d):
            if t < frames:
                positions[t] = i + k / d
            t += 1
    return positions


def train(dest_corpus: Path, steps: int, frames_per_batch: int, seed: int = 0):
    from tqdm import tqdm
    from voicestack.blocks.text.phonemes import ENGLISH_SYMBOLS

    torch.manual_seed(seed)
    rng = random.Random(seed)
    utterances = corpus.load_split(dest_corpus, "train")
    positions = [frame_positions(u.durations, u.mel.shape[0]) for u in utterances]
    encoder, step_net = TextEncoder(len(ENGLISH_SYMBOLS)), AttentionStep()
    params = [p for m in (encoder, step_net) for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1.5e-3, weight_decay=1e-6)
    warmup = min(200, steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * progress)) * 0.97 + 0.03

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    encoder.train()
    step_net.train()
    batches: list[list[int]] = []
    started = time.perf_counter()
    averages: dict[str, float] = {}
    progress = tqdm(range(steps), desc="train espeak-attention", mininterval=5)
    for step in progress:
        if not batches:
            batches = _batches(utterances, frames_per_batch, rng)
        indices = batches.pop()
        symbols, _, sym_mask, mel, frame_mask = _collate(utterances, indices)
        pos = torch.zeros_like(frame_mask)
        for b, i in enumerate(indices):
            pos[b, : positions[i].shape[0]] = positions[i]
        # The advance that takes frame t's position to frame t+1's; the last frame's is 1.
        target_advance = torch.cat([pos[:, 1:] - pos[:, :-1], torch.ones_like(pos[:, :1])], 1)
        lengths = frame_mask.sum(1).long()
        last = torch.zeros_like(frame_mask)
        last[torch.arange(len(indices)), lengths - 1] = 1.0
        target_advance = torch.where(last > 0, torch.ones_like(pos), target_advance)
        prev = torch.cat([torch.zeros_like(mel[:, :1]), mel[:, :-1]], 1)

        encodings = encoder(symbols, sym_mask)
        frames, advances, stops = step_net.sequence(prev, pos, encodings, sym_mask)
        n = frame_mask.sum()
        mel_loss = ((frames - mel).abs().mean(-1) * frame_mask).sum() / n
        advance_loss = (
            ((advances - target_advance.clamp(max=MAX_ADVANCE)) ** 2) * frame_mask
        ).sum() / n
        stop_loss = (
            nn.functional.binary_cross_entropy_with_logits(
                stops, last, pos_weight=torch.tensor(20.0), reduction="none"
            )
            * frame_mask
        ).sum() / n
        loss = mel_loss + advance_loss + 0.2 * stop_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        for key, value in (("mel_l1", mel_loss), ("advance", advance_loss), ("stop", stop_loss)):
            averages[key] = 0.98 * averages.get(key, value.item()) + 0.02 * value.item()
        if step % 20 == 0:
            progress.set_postfix({k: f"{v:.3f}" for k, v in averages.items()})
    encoder.eval()
    step_net.eval()
    report = {
        "steps": steps,
        "frames_per_batch": frames_per_batch,
        "train_utterances": len(utterances),
        "train_seconds": round(time.perf_counter() - started, 1),
        **{f"final_{k}": round(v, 4) for k, v in averages.items()},
        "threads": torch.get_num_threads(),
    }
    return encoder, step_net, report


def export_step(step_net: nn.Module, path: Path) -> None:
    """Export one decoder step with a dynamic batch (addons/recipes/row_invariant.py)."""
    export_step_network(step_net, corpus.N_MELS, HIDDEN, DIM, MAX_SYMBOLS, path)


def reexport(folder: Path) -> Path:
    """Export `folder`'s step network again from the weights in its own archive (read through
    the loader's safety checks); the encoder and addon.json stay as they are."""
    from voicestack.addons.archive import load_exported_program

    path = folder / "attention_decoder.pt2"
    weights = load_exported_program(path).state_dict
    step_net = AttentionStep()
    step_net.load_state_dict(dict(weights), strict=True)
    export_step(step_net, path)
    return path


def export_addon(folder: Path, encoder: nn.Module, step_net: nn.Module, report: dict) -> Path:
    from voicestack.blocks.text.phonemes import ENGLISH_SYMBOLS

    folder.mkdir(parents=True, exist_ok=True)
    sym = torch.export.Dim("symbols", min=1, max=MAX_SYMBOLS)
    with torch.no_grad():
        program = torch.export.export(
            encoder.eval(),
            (torch.randint(1, len(ENGLISH_SYMBOLS), (1, 12)), torch.ones(1, 12)),
            dynamic_shapes={"symbols": {1: sym}, "mask": {1: sym}},
            strict=False,
        )
        torch.export.save(program, folder / "encoder.pt2")
    export_step(step_net, folder / "attention_decoder.pt2")
    config = {
        "format_version": FORMAT_VERSION,
        "name": VOICE_NAME,
        "version": VOICE_VERSION,
        "language": "en-US",
        "architecture": "attention",
        "description": (
            "Reference attention-based (autoregressive) voice trained on espeak-ng (en-us) "
            "speech made by addons/recipes/corpus.py; Griffin-Lim vocoder. "
            f"Trained {report['steps']} steps in {report['train_seconds']} s on "
            f"{report['threads']} CPU thread(s)."
        ),
        "audio": corpus.audio_config(),
        "symbols": list(ENGLISH_SYMBOLS),
        "frontend": {"type": "Frontend", "language": "en-us"},
        "networks": {
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
                    tensor("prev_frame", ["batch", corpus.N_MELS]),
                    tensor("hidden", ["batch", HIDDEN]),
                    tensor("position", ["batch", 1]),
                    tensor("encodings", ["batch", "length", DIM]),
                    tensor("mask", ["batch", "length"]),
                ],
                "outputs": [
                    tensor("frame", ["batch", corpus.N_MELS]),
                    tensor("stop", ["batch"]),
                    tensor("hidden", ["batch", HIDDEN]),
                    tensor("position", ["batch", 1]),
                    tensor("weights", ["batch", "length"]),
                ],
            },
        },
        "stack": [
            {
                "type": "StreamablePipeline",
                "sequence_block": {"type": "Encoders"},
                "streamable_block": {"type": "AttentionDecoder"},
            },
            {"type": "GriffinLim"},
        ],
    }
    return write_addon(folder, config, report)


def main() -> None:
    parser = training_parser(__doc__, VOICE_NAME, steps=3000)
    parser.add_argument(
        "--reexport",
        type=Path,
        default=None,
        metavar="DIR",
        help="export DIR's step network again from its own weights (a batch of streams per "
        "call) instead of training",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.reexport is not None:
        print(reexport(args.reexport))
        return
    encoder, step_net, report = train(
        args.corpus or corpus.default_dest(), args.steps, args.frames_per_batch
    )
    if args.checkpoint is not None:
        torch.save(
            {"encoder": encoder.state_dict(), "step": step_net.state_dict(), "report": report},
            args.checkpoint,
        )
    print(export_addon(args.dest, encoder, step_net, report))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
