"""GPU placement check: the decoder and vocoder on `cuda` give the CPU's audio, and what a chunk
costs on each device. Runs where a GPU is (a lent machine); no Ray needed, because the leaf
servers are plain classes: this builds them exactly as a Serve replica does (LeafSpec.build)
and drives the voice's plan through them, chunk by chunk, as the composer does.

    python bench/gpu_check.py            # prints a table; exits 1 if the audio differs
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
from voicestack.addons.loader import load_addon
from voicestack.addons.recipes.test_voices import build_test_voices
from voicestack.blocks.base import BuildEnv
from voicestack.blocks.registry import REGISTRY
from voicestack.placement.config import Placement
from voicestack.runtime.plan import compile_plan
from voicestack.serve_app.leaf import ChunkServer, LeafSpec, SequenceServer, SourceServer

GPU = {"blocks": {b: {"device": "cuda", "num_gpus": 0.5} for b in ("Decoder", "Vocoder")}}


def servers(addon, placement: dict):
    """The plan's leaves as the servers a Serve replica would hold, plus the plan."""
    env = BuildEnv(addon, Placement.model_validate(placement))
    stack = REGISTRY.build({"type": "StreamableStack", "stack": addon.config.stack}, "", env)
    plan = compile_plan(stack)

    def spec(block):
        return [asdict(LeafSpec(addon.name, str(addon.root), placement, block.node, block.path))]

    sequence = [SequenceServer(spec(b)) for b in plan.sequence]
    segment = plan.segments[0]
    source = SourceServer(spec(segment.head))
    steps = [(ChunkServer(spec(s.block)), s.keep) for s in segment.steps]
    return plan, sequence, source, segment.need, steps


def run(addon, placement: dict, features: dict) -> tuple[torch.Tensor, dict]:
    plan, sequence, source, need, steps = servers(addon, placement)
    per_step = {type(s.blocks[addon.name]).__name__: 0.0 for s, _ in steps}
    for seq in sequence:
        features = seq(addon.name, features)
    audio = []
    for chunk in source.stream(addon.name, features, need):
        for server, keep in steps:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t = time.perf_counter()
            chunk = server.apply(addon.name, chunk, keep)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            per_step[type(server.blocks[addon.name]).__name__] += time.perf_counter() - t
        audio.append(chunk.core)
    return torch.cat(audio)[:, 0], per_step


def main() -> int:
    print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name(0)}")
    folder = Path(tempfile.mkdtemp())
    build_test_voices(folder)
    addon = load_addon(folder / "test-duration")
    torch.manual_seed(0)
    symbols = torch.randint(2, len(addon.symbols), (600,))
    symbols[::6] = 1  # word separators
    features = {"symbols": symbols, "word_starts": torch.arange(0, 600, 6)}
    cpu, cpu_t = run(addon, {}, features)
    print(f"audio: {cpu.shape[0] / 22050:.2f} s")
    print("| placement | block | ms per second of audio |")
    print("|---|---|---|")
    seconds = cpu.shape[0] / 22050
    for block, t in cpu_t.items():
        print(f"| cpu | {block} | {t * 1000 / seconds:.2f} |")
    if not torch.cuda.is_available():
        print("no GPU here: the cuda placement was not checked")
        return 0
    run(addon, GPU, features)  # warm up kernels
    gpu, gpu_t = run(addon, GPU, features)
    for block, t in gpu_t.items():
        print(f"| cuda (Decoder, Vocoder) | {block} | {t * 1000 / seconds:.2f} |")
    diff = (gpu - cpu).abs().max().item()
    print(
        f"max |cuda - cpu| over the utterance: {diff:.2e} (same length: {gpu.shape == cpu.shape})"
    )
    _, _, _, _, steps = servers(addon, GPU)
    devices = {
        type(s.blocks[addon.name]).__name__: str(
            next(s.blocks[addon.name].network.module.parameters()).device
        )
        for s, _ in steps
    }
    print(f"network devices in the servers: {devices}")
    ok = (
        gpu.shape == cpu.shape
        and diff < 1e-3
        and all(d.startswith("cuda") for d in devices.values())
    )
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
