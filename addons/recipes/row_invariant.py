"""Networks whose every row computes the same bits whatever else is in the batch.

An autoregressive step network (the attention decoder's) is called on many streams at once
(serve_app/stepping.py) and feeds each output back in: a rounding difference of one part in a
million, grown over a few hundred frames, is another utterance. These stand in for the usual
layers inside such a network's `forward`: at one row they compute what `nn.Linear`, `nn.GRU`
and `torch.exp` / `torch.sigmoid` compute, bit for bit, and a row's result does not depend on
the batch's size or on how far its inputs are padded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

#: Streams one call of an exported step network may take.
MAX_STREAMS = 64


def row_linear(x, weight, bias):
    """`x @ weight.T + bias` for (B, in) `x`, as B one-row products (one batched call): the
    same bits for a row whatever B is, where one (B, in) product rounds differently as B
    changes (the BLAS picks its kernel by size)."""
    rows = x.shape[0]
    return torch.bmm(x.unsqueeze(1), weight.t().expand(rows, -1, -1)).squeeze(1) + bias


def each(function, x):
    """`function(x)` (exp, sigmoid) computed the same way for every element: a vectorised
    kernel and its scalar tail round differently, and which elements fall in the tail depends
    on the tensor's size (the batch, the padded length). Each element is given as a pair that
    it fills alone, which is too short for the vectorised loop."""
    return function(x.unsqueeze(-1).expand(*x.shape, 2))[..., 0]


def rows(module: nn.Module, x):
    """`module(x)` with each `nn.Linear` made by `row_linear` (a Sequential is followed layer
    by layer; its other layers are applied as they are)."""
    if isinstance(module, nn.Linear):
        return row_linear(x, module.weight, module.bias)
    if isinstance(module, nn.Sequential):
        for layer in module:
            x = rows(layer, x)
        return x
    return module(x)


def gru_cell_step(x, hidden, weight_ih, bias_ih, weight_hh, bias_hh):
    """One GRU cell step (torch's arithmetic, in its order), its products made row by row."""
    gi = row_linear(x, weight_ih, bias_ih).chunk(3, 1)
    gh = row_linear(hidden, weight_hh, bias_hh).chunk(3, 1)
    reset = torch.sigmoid(gh[0] + gi[0])
    update = torch.sigmoid(gh[1] + gi[1])
    new = torch.tanh(gi[2] + gh[2] * reset)
    return (hidden - new) * update + new


def export_step(
    step: nn.Module, n_mels: int, state: int, memory: int, max_symbols: int, path: Path
) -> None:
    """Export an attention decoder's step (prev_frame, hidden, position, encodings, mask) with a
    dynamic batch on every input, so that one call can step many streams (their encodings
    padded to a common length and masked). The example batch is 2: a size of 1 would be
    specialised."""
    batch = torch.export.Dim("batch", min=1, max=MAX_STREAMS)
    symbols = torch.export.Dim("symbols", min=1, max=max_symbols)
    example = (
        torch.zeros(2, n_mels),
        torch.zeros(2, state),
        torch.zeros(2, 1),
        torch.randn(2, 12, memory),
        torch.ones(2, 12),
    )
    dynamic = {
        "prev_frame": {0: batch},
        "hidden": {0: batch},
        "position": {0: batch},
        "encodings": {0: batch, 1: symbols},
        "mask": {0: batch, 1: symbols},
    }
    with torch.no_grad():
        program = torch.export.export(step.eval(), example, dynamic_shapes=dynamic, strict=False)
    torch.export.save(program, path)
