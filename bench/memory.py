"""Resident memory of the whole service (every Ray process), by how many voices it serves and
whether their blocks are grouped.

Every replica is a process that imports torch, so each block deployment costs a process. A
placement `group` puts the same block type of several voices into one deployment (one process,
and one copy of a network the voices share). Scenarios, each on a fresh local Ray:

- one voice (test-duration);
- two voices (test-duration, test-attention), a deployment per voice and block;
- the same two voices with every block type grouped.

Only the Ray this script starts is counted (its processes descend from this one), not another
Ray on the machine.

Reported: the sum over Ray's processes of PSS (proportional set size: shared pages such as
torch's libraries counted once, split between the processes that map them) and of RSS (shared
pages counted in every process). PSS is the honest total; RSS is what `top` would suggest.

    .venv/bin/python bench/memory.py
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


def scenario(voices: list[str], placement: dict) -> tuple[float, float, int, int]:
    with running_service(voices, placement) as service:
        for v in voices:
            r = service["client"].post(
                "/v1/synthesize", json={"voice": Path(v).name, "text": "Hello there."}
            )
            assert r.status_code == 200, r.text
        time.sleep(2)
        pss, rss, n = measure()
        config = service["config"]
    deployments = sum(len(a.get("deployments", [])) for a in config["applications"]) + 1
    time.sleep(2)
    return pss, rss, n, deployments


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="voices-"))
    build_test_voices(folder)
    one = [str(folder / "test-duration")]
    two = [*one, str(folder / "test-attention")]
    rows = [
        ("ray + serve, no voice", *scenario([], BASE)),
        ("one voice", *scenario(one, BASE)),
        ("two voices", *scenario(two, BASE)),
        ("two voices, blocks grouped", *scenario(two, GROUPED)),
    ]
    print("| service | deployments | Ray processes | PSS MiB | RSS MiB |")
    print("|---|---|---|---|---|")
    for label, pss, rss, n, deployments in rows:
        print(f"| {label} | {deployments} | {n} | {pss:.0f} | {rss:.0f} |")


if __name__ == "__main__":
    main()
