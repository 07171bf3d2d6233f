"""Resident memory of the whole service (every Ray process), by how many voices it serves and
how their blocks are placed.

Every replica is a process that imports torch, so each block deployment costs a process. A
placement `group` puts the same block type of several voices into one deployment (one process,
and one copy of a network the voices share); `fuse` runs a voice's blocks in its composer's
process. Scenarios, each on a fresh local Ray:

- default: the bundled voices (joe, espeak-duration, espeak-attention) added one at a time under
  `make serve`'s placement (deploy/placements/local.yaml: every block fused into its voice's
  composer), then the same less every `fuse` entry with Griffin-Lim one deployment for both
  espeak voices (`make serve`'s placement before fusing);
- `--test-voices`: one test voice, two, and two with every block type grouped, a deployment
  per block (the figures of the first version of this script).

Only the Ray this script starts is counted (its processes descend from this one), not another
Ray on the machine.

Reported: the sum over Ray's processes of PSS (proportional set size: shared pages such as
torch's libraries counted once, split between the processes that map them) and of RSS (shared
pages counted in every process). PSS is the honest total; RSS is what `top` would suggest.

    .venv/bin/python bench/memory.py [--test-voices]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from voicestack.addons.recipes.test_voices import build_test_voices  # noqa: E402

from bench.serve_bench.sampler import ray_processes  # noqa: E402
from tests.ray_service import running_service  # noqa: E402

BASE = {"default": {"num_cpus": 0.1}}
GROUPED = {
    "default": {"num_cpus": 0.1},
    "blocks": {
        t: {"group": "shared"}
        for t in ["Encoder", "Upsampler", "Decoder", "AttentionDecoder", "Vocoder"]
    },
}


def measure() -> tuple[float, float, int]:
    pss = rss = 0
    procs = ray_processes()
    for p in procs:
        try:
            info = p.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        pss += info.pss
        rss += info.rss
    return pss / 2**20, rss / 2**20, len(procs)


def voice_name(path: str) -> str:
    from voicestack.addons.loader import load_addon

    return load_addon(Path(path)).config.name


def scenario(voices: list[str], placement: dict) -> tuple[float, float, int, int]:
    with running_service(voices, placement) as service:
        for v in voices:
            r = service["client"].post(
                "/v1/synthesize", json={"voice": voice_name(v), "text": "Hello there."}
            )
            assert r.status_code == 200, r.text
        time.sleep(2)
        pss, rss, n = measure()
        config = service["config"]
    deployments = sum(len(a.get("deployments", [])) for a in config["applications"]) + 1
    time.sleep(2)
    return pss, rss, n, deployments


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-voices", action="store_true")
    args = parser.parse_args()
    rows = test_voice_rows() if args.test_voices else bundled_rows()
    print("| service | deployments | Ray processes | PSS MiB | RSS MiB |")
    print("|---|---|---|---|---|")
    for label, pss, rss, n, deployments in rows:
        print(f"| {label} | {deployments} | {n} | {pss:.0f} | {rss:.0f} |")


def bundled_rows() -> list[tuple]:
    import yaml
    from voicestack.addons.search_path import find_voice

    from bench.serve_bench.launch import with_shared_griffin_lim, without_fusing

    root = Path(__file__).resolve().parents[1]
    laptop = yaml.safe_load((root / "deploy/placements/local.yaml").read_text())
    names = ["joe", "espeak-duration", "espeak-attention"]
    paths = [str(find_voice(n).path) for n in names]
    rows = [("ray + serve, no voice", *scenario([], laptop))]
    unfused = with_shared_griffin_lim(without_fusing(laptop))
    for label, placement in [("fused", laptop), ("a deployment per block", unfused)]:
        for count in range(1, len(names) + 1):
            voices = ", ".join(names[:count])
            rows.append((f"{voices} ({label})", *scenario(paths[:count], placement)))
    return rows


def test_voice_rows() -> list[tuple]:
    folder = Path(tempfile.mkdtemp(prefix="voices-"))
    build_test_voices(folder)
    one = [str(folder / "test-duration")]
    two = [*one, str(folder / "test-attention")]
    return [
        ("ray + serve, no voice", *scenario([], BASE)),
        ("one voice", *scenario(one, BASE)),
        ("two voices", *scenario(two, BASE)),
        ("two voices, blocks grouped", *scenario(two, GROUPED)),
    ]


if __name__ == "__main__":
    main()
