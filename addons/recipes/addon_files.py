"""What every voice recipe writes: tensor declarations, exported networks, addon.json, and the
command-line options training recipes share. One place, so all addons are written alike."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def tensor(name: str, shape: list, dtype: str = "float32") -> dict:
    """A network input or output as addon.json declares it."""
    return {"name": name, "dtype": dtype, "shape": shape}


def symbol_inputs() -> list[dict]:
    """The inputs of a network that reads a sentence's symbol ids (text encoder, duration
    predictor, attention encoder): the ids and their mask."""
    return [tensor("symbols", ["batch", "length"], "int64"), tensor("mask", ["batch", "length"])]


def export(module: Any, args: tuple, dynamic: dict, file: Path) -> None:
    """Export `module` (in eval mode) with these dynamic dims to a torch.export archive."""
    import torch

    program = torch.export.export(module.eval(), args, dynamic_shapes=dynamic, strict=False)
    torch.export.save(program, file)


def write_addon(folder: Path, config: dict, training: dict | None = None) -> Path:
    """Write addon.json (and training.json: how the networks were trained) into `folder`."""
    (folder / "addon.json").write_text(
        json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    if training is not None:
        (folder / "training.json").write_text(
            json.dumps(training, indent=2) + "\n", encoding="utf-8"
        )
    return folder


def training_parser(doc: str | None, voice: str, steps: int) -> argparse.ArgumentParser:
    """The options every training recipe takes."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", type=Path, default=None, help="default: $VOICESTACK_CACHE/corpus"
    )
    parser.add_argument(
        "--dest", type=Path, default=Path(__file__).resolve().parent.parent / "voices" / voice
    )
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--frames-per-batch", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", type=Path, default=None, help="save the trained weights")
    parser.add_argument(
        "--from-checkpoint",
        type=Path,
        default=None,
        help="export the weights of a saved --checkpoint instead of training",
    )
    return parser
