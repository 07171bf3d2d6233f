"""Small networks of both acoustic-model families and a vocoder, for the test voices.

They follow the conventions every addon network follows: inputs and outputs batch-first, a
`mask` input (1 for real positions, 0 for padding) that each layer applies, so padded positions
act exactly like the zero padding at an utterance's edge: that is what lets static-shape padding
and chunked streaming equal a one-shot run. Receptive fields are bounded and stated.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from voicestack.addons.recipes.row_invariant import each, gru_cell_step, row_linear


class MaskedConvStack(nn.Module):
    """Conv1d layers over (batch, channels, time), masking the input of each layer."""

    def __init__(self, channels: int, layers: int, kernel: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, padding=kernel // 2) for _ in range(layers)
        )
        self.receptive_field = layers * (kernel // 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(1)
        for conv in self.convs:
            x = torch.tanh(conv(x * m)) + x
        return x * m


class TextEncoder(nn.Module):
    """symbols (B, N) int64, mask (B, N) -> encodings (B, N, dim)."""

    def __init__(self, n_symbols: int, dim: int = 32, layers: int = 3, kernel: int = 5):
        super().__init__()
        self.embedding = nn.Embedding(n_symbols, dim)
        self.convs = MaskedConvStack(dim, layers, kernel)

    def forward(self, symbols: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embedding(symbols).transpose(1, 2)
        return self.convs(x, mask).transpose(1, 2)


class DurationPredictor(nn.Module):
    """symbols (B, N), mask (B, N) -> durations (B, N) in frames (float, >= 1)."""

    def __init__(self, n_symbols: int, dim: int = 32, mean_frames: float = 5.0):
        super().__init__()
        self.embedding = nn.Embedding(n_symbols, dim)
        self.convs = MaskedConvStack(dim, 2, 3)
        self.proj = nn.Linear(dim, 1)
        self.mean_frames = mean_frames

    def forward(self, symbols: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.convs(self.embedding(symbols).transpose(1, 2), mask).transpose(1, 2)
        return (1.0 + (self.mean_frames - 1.0) * 2 * torch.sigmoid(self.proj(x).squeeze(-1))) * mask


class FrameDecoder(nn.Module):
    """frames (B, T, dim), mask (B, T) -> mel (B, T, n_mels). Receptive field: layers*(k//2)."""

    def __init__(self, dim: int = 32, n_mels: int = 80, layers: int = 3, kernel: int = 5):
        super().__init__()
        self.convs = MaskedConvStack(dim, layers, kernel)
        self.proj = nn.Linear(dim, n_mels)
        self.receptive_field = self.convs.receptive_field

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.proj(self.convs(frames.transpose(1, 2), mask).transpose(1, 2))


class FrameVocoder(nn.Module):
    """mel (B, T, n_mels), mask (B, T) -> audio (B, T*hop) in [-0.5, 0.5].

    Convolutions over frames, then each frame's features projected to its `hop` samples: a
    vocoder whose output for a frame depends on a bounded window of frames."""

    def __init__(
        self, n_mels: int = 80, hop: int = 256, dim: int = 48, layers: int = 3, kernel: int = 3
    ):
        super().__init__()
        self.inp = nn.Conv1d(n_mels, dim, 1)
        self.convs = MaskedConvStack(dim, layers, kernel)
        self.proj = nn.Linear(dim, hop)
        self.receptive_field = self.convs.receptive_field

    def forward(self, mel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.inp(mel.transpose(1, 2) * mask.unsqueeze(1))
        x = self.convs(x, mask).transpose(1, 2)
        audio = 0.5 * torch.tanh(self.proj(x))
        return audio.reshape(audio.shape[0], -1)


class AttentionStep(nn.Module):
    """One step of a Tacotron-like decoder with location-sensitive, monotonic attention.

    The attention energies add a content term and a location term centred on a position that
    only moves forward, so attention cannot skip back or repeat; the stop logit turns positive
    once that position passes the last symbol.
    """

    def __init__(self, n_mels: int = 80, memory_dim: int = 32, hidden: int = 64):
        super().__init__()
        self.prenet = nn.Linear(n_mels, hidden)
        self.cell = nn.GRUCell(hidden + memory_dim, hidden)
        self.query = nn.Linear(hidden, memory_dim)
        self.advance = nn.Linear(hidden, 1)
        self.out = nn.Linear(hidden + memory_dim, n_mels)
        self.scale = 1.0 / math.sqrt(memory_dim)

    def forward(self, prev_frame, hidden, position, encodings, mask):
        """One step of a batch of streams, each row the same bits whatever else is in the
        batch and however far its encodings are padded (addons/recipes/row_invariant.py), as
        the reference attention voice's step: products row by row, sums over the symbols in
        order (padding adds exact zeros at the end)."""
        memory = encodings
        n = memory.shape[1]
        index = torch.arange(n, dtype=memory.dtype, device=memory.device).unsqueeze(0)
        query = row_linear(hidden, self.query.weight, self.query.bias)
        content = (query.unsqueeze(1) * memory).sum(-1) * self.scale
        location = -((index - position) ** 2) / 2.0
        energies = torch.where(mask > 0, 0.5 * content + location, torch.full_like(content, -1e9))
        exp = each(torch.exp, energies - energies.amax(-1, keepdim=True))
        weights = exp / exp.cumsum(-1)[..., -1:]
        context = (weights.unsqueeze(-1) * memory).cumsum(1)[:, -1]
        prenet = torch.relu(row_linear(prev_frame, self.prenet.weight, self.prenet.bias))
        cell = self.cell
        hidden = gru_cell_step(
            torch.cat([prenet, context], -1),
            hidden,
            cell.weight_ih,
            cell.bias_ih,
            cell.weight_hh,
            cell.bias_hh,
        )
        advance = row_linear(hidden, self.advance.weight, self.advance.bias)
        position = position + 0.15 + 0.2 * each(torch.sigmoid, advance)
        h = torch.cat([hidden, context], -1)
        frame = row_linear(h, self.out.weight, self.out.bias)
        stop = 4.0 * (position - mask.sum(-1, keepdim=True)).squeeze(-1)
        return frame, stop, hidden, position, weights
