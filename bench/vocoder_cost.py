"""What the vocoders cost: CPU milliseconds per second of audio, GriffinLim against the neural
Vocoder, one torch thread, on espeak-ng's log-mels of held-out sentences.

    .venv/bin/python bench/vocoder_cost.py [--limit 20] [--chunk 32] [--vocoder DIR]

Two ways each, through the blocks as a voice runs them:
- `one-shot`: the whole sentence's mel in one call;
- `streamed`: the block's `stream` over chunks of `--chunk` frames, each re-chunked with the
  block's own context (GriffinLim: 16 frames each side; Vocoder: its receptive field), as in a
  streaming voice. The context is computed again for every chunk, so this costs more.

CPU time is this thread's (`time.thread_time`), so other processes on the machine slow it less
than wall time; wall time is printed too. The neural vocoder is the one of the first voice
that ends in a `Vocoder` block, or the export in `--vocoder DIR` (default: the vocoder recipe's
export in the cache) installed into a temporary copy of the voice.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch


def cost(block, mels: list[torch.Tensor], chunk: int | None) -> tuple[float, float, float]:
    """(CPU seconds, wall seconds, audio seconds) of vocoding `mels` with `block`."""
    from voicestack.blocks.core.chunk import Chunk

    cpu = wall = audio = 0.0
    for mel in mels:
        frames = mel.shape[0]
        step = chunk or frames
        chunks = [
            Chunk(mel[s : s + step], s, is_last=s + step >= frames) for s in range(0, frames, step)
        ]
        started_cpu, started_wall = time.thread_time(), time.perf_counter()
        with torch.inference_mode():
            samples = sum(c.core.shape[0] for c in block.stream({}, iter(chunks)))
        cpu += time.thread_time() - started_cpu
        wall += time.perf_counter() - started_wall
        audio += samples / 22050
    return cpu, wall, audio


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--voice", type=Path, default=None, help="default: bundled espeak-duration")
    parser.add_argument("--vocoder", type=Path, default=None, help="a vocoder recipe export")
    parser.add_argument("--limit", type=int, default=20, help="held-out sentences")
    parser.add_argument("--chunk", type=int, default=32, help="frames per streamed chunk")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from voicestack.addons.build_env import AddonBuildEnv
    from voicestack.addons.loader import load_addon
    from voicestack.addons.recipes import corpus
    from voicestack.addons.recipes import vocoder as recipe
    from voicestack.addons.search_path import BUNDLED
    from voicestack.blocks.library.griffin_lim import GriffinLim
    from voicestack.blocks.library.vocoder import Vocoder

    mels = [u.mel for u in corpus.load_split(args.corpus or corpus.default_dest(), "heldout")]
    mels = mels[: args.limit]
    folder = args.voice or BUNDLED / "espeak-duration"
    with tempfile.TemporaryDirectory(prefix="vocoder-cost-") as scratch:
        addon = load_addon(folder)
        if args.vocoder is not None or "vocoder" not in addon.config.networks:
            copy = Path(scratch) / folder.name
            shutil.copytree(folder, copy)
            recipe.install(copy, args.vocoder or recipe.default_export_dir())
            addon = load_addon(copy)
        env = AddonBuildEnv(addon)
        blocks = {
            "GriffinLim": GriffinLim(GriffinLim.Config(), env),
            "neural Vocoder": Vocoder(Vocoder.Config(), env),
        }
        cost(blocks["neural Vocoder"], mels[:1], args.chunk)  # first call: lazy set-up
        print(
            f"{len(mels)} held-out sentences, espeak-ng mel, 1 torch thread, {torch.__version__}\n"
        )
        print("| vocoder | mode | context frames | CPU ms per s of audio | wall ms per s |")
        print("|---|---|---|---|---|")
        for name, block in blocks.items():
            for mode, chunk in (
                ("one-shot", None),
                (f"streamed, {args.chunk}-frame chunks", args.chunk),
            ):
                cpu, wall, audio = cost(block, mels, chunk)
                print(
                    f"| {name} | {mode} | {block.context[0]} | {cpu * 1000 / audio:.1f} | "
                    f"{wall * 1000 / audio:.1f} |"
                )
                sys.stdout.flush()


if __name__ == "__main__":
    main()
