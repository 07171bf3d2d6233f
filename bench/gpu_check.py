"""GPU placement check: the decoder and vocoder on `cuda` give the CPU's audio, and what a chunk
costs on each device. Runs where a GPU is (a lent machine); no Ray needed, because the leaf
servers are plain classes: this builds them exactly as a Serve replica does (from the plan)
and drives the voice's plan through them, chunk by chunk, as the composer does.

    python bench/gpu_check.py                      # the test voices' duration voice
    python bench/gpu_check.py addons/voices/espeak-duration
Prints a table; exits 1 if the audio on cuda differs from the CPU's.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from voicestack.addons.build_env import AddonBuildEnv
from voicestack.addons.loader import load_addon
from voicestack.addons.recipes.test_voices import build_test_voices
from voicestack.blocks import REGISTRY
from voicestack.blocks.core.chunk import with_context
from voicestack.placement.config import Placement
from voicestack.runtime.plan import compile_plan
from voicestack.serve_app.leaf import ChunkServer, SequenceServer, SourceServer

GPU = {"blocks": {b: {"device": "cuda", "num_gpus": 0.5} for b in ("Decoder", "Vocoder")}}
#: A network on cuda differs from the CPU by TF32 rounding (cuDNN convolutions use TF32 by
#: default): 5e-4 on the test vocoder's audio, 2.7e-3 on the reference decoder's log-mel
#: (natural-log units: 0.02 dB), measured on an H100.
TOLERANCE = 5e-3


def servers(addon, placement: dict):
    """The plan's leaves as the servers a Serve replica would hold, plus the plan."""
    env = AddonBuildEnv(addon, Placement.model_validate(placement))
    stack = REGISTRY.build({"type": "StreamableStack", "stack": addon.config.stack}, "", env)
    plan = compile_plan(addon, env.placement, stack)
    data = plan.to_dict()  # what a replica is given

    def served(leaf):
        return [(data, leaf.path)]

    sequence = [SequenceServer(served(leaf)) for leaf in plan.sequence]
    segment = plan.segments[0]
    source = SourceServer(served(segment.head))
    steps = [(ChunkServer(served(s.leaf)), s.keep) for s in segment.steps]
    return plan, sequence, source, segment.need, steps


def run(addon, placement: dict, features: dict) -> tuple[dict, dict]:
    """Each step's output for the utterance (cores joined), and each step's compute time."""
    plan, sequence, source, need, steps = servers(addon, placement)
    names = [type(s.blocks[addon.name]).__name__ for s, _ in steps]
    seconds = dict.fromkeys(names, 0.0)
    outputs: dict[str, list] = {n: [] for n in names}
    for seq in sequence:
        features = seq(addon.name, features)
    # What SourceServer.stream runs (an async generator in the replica), chunk by chunk.
    for chunk in with_context(source.blocks[addon.name].stream(features, None), *need):
        for name, (server, keep) in zip(names, steps, strict=True):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t = time.perf_counter()
            chunk = server.blocks[addon.name].apply(chunk, keep)  # what the replica runs
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            seconds[name] += time.perf_counter() - t
            outputs[name].append(chunk.core)
    return {n: torch.cat(o) for n, o in outputs.items()}, seconds


def main() -> int:
    print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name(0)}")
    if len(sys.argv) > 1:
        addon = load_addon(sys.argv[1])
    else:
        folder = Path(tempfile.mkdtemp())
        build_test_voices(folder)
        addon = load_addon(folder / "test-duration")
    print(f"voice: {addon.name}")
    torch.manual_seed(0)
    symbols = torch.randint(2, len(addon.symbols), (600,))
    symbols[::6] = 1  # word separators
    features = {"symbols": symbols, "word_starts": torch.arange(0, 600, 6)}
    cpu, cpu_t = run(addon, {}, features)
    rate = addon.audio.sample_rate
    seconds = list(cpu.values())[-1].shape[0] / rate
    print(f"audio: {seconds:.2f} s")
    print("| placement | block | ms per second of audio |")
    print("|---|---|---|")
    for block, t in cpu_t.items():
        print(f"| cpu | {block} | {t * 1000 / seconds:.2f} |")
    if not torch.cuda.is_available():
        print("no GPU here: the cuda placement was not checked")
        return 0
    run(addon, GPU, features)  # warm up kernels
    gpu, gpu_t = run(addon, GPU, features)
    for block, t in gpu_t.items():
        print(f"| cuda (Decoder, Vocoder) | {block} | {t * 1000 / seconds:.2f} |")
    diffs = {}
    for block in cpu:
        same = gpu[block].shape == cpu[block].shape
        diffs[block] = (gpu[block] - cpu[block]).abs().max().item() if same else float("inf")
        print(f"max |cuda - cpu| of {block}'s output: {diffs[block]:.2e} (same shape: {same})")
    _, _, _, _, steps = servers(addon, GPU)
    devices = {
        type(s.blocks[addon.name]).__name__: str(
            next(s.blocks[addon.name].network.module.parameters()).device
        )
        for s, _ in steps
        if hasattr(s.blocks[addon.name], "network")
    }
    print(f"network devices in the servers: {devices}")
    # Outputs of networks on cuda must match; Griffin-Lim's iterations amplify the last bits of
    # its input, so its audio is reported, not held to the tolerance.
    checked = [b for b in cpu if b in devices]
    ok = all(diffs[b] < TOLERANCE for b in checked) and all(
        d.startswith("cuda") for d in devices.values()
    )
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
