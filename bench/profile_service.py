"""Where a second of audio's CPU goes in the service, by process, against the compute alone.

    .venv/bin/python bench/profile_service.py [--voice espeak-duration] [--concurrency 8]
        [--requests 16] [--text 400] [--placement deploy/placements/local.yaml]

Three measurements in one run, on the same text:
1. **Compute alone**: the voice's plan driven in this process through the same leaf servers a
   replica holds (as bench/gpu_check.py does), one torch thread, timing each block's work:
   front end, each sequence leaf, the source, each chunk step. No Ray, no serialisation.
2. **Serialisation**: one round trip through Ray's object store (`ray.put` + `ray.get` in this
   process) of each kind of chunk the plan passes between replicas, at its real size.
3. **The service under load**: voicestack on a local Ray (tests/ray_service.py) with `concurrency`
   streams of the text at a time; the CPU time of every Ray process over the run, per second
   of audio delivered, by process (each block's replica, the composer, the HTTP ingress and
   proxy, Ray's own daemons).

The replica of a block minus that block's compute alone is what serving costs in that process
(deserialising arguments, the event loop, handing work to a thread, serialising the result);
the composer, ingress, proxy and Ray daemons are all overhead. Prints one markdown table, and
the serving overhead per request: the CPU of every Ray process per request, less the compute
alone of its text (`--text sentence --concurrency 1` for a voice assistant's short requests).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402
import torch  # noqa: E402

from bench.gpu_check import servers  # noqa: E402
from bench.serve_bench.client import Timeouts, run_level_sync  # noqa: E402
from bench.serve_bench.launch import read_placement, resolve_voice, voicestack_server  # noqa: E402
from bench.serve_bench.texts import benchmark_texts  # noqa: E402


def compute_alone(addon, placement: dict, text: str) -> tuple[dict[str, float], float, dict]:
    """Seconds of CPU per block for `text`, the audio's duration, and one chunk of each kind."""
    from voicestack.blocks.core.chunk import with_context
    from voicestack.runtime.voice import build_voice

    voice = build_voice(addon)
    seconds: dict[str, float] = defaultdict(float)
    samples: dict[str, object] = {}
    audio = 0
    plan, sequence, source, need, steps = servers(addon, placement)
    names = [type(s.blocks[addon.name]).__name__ for s, _ in steps]
    for sentence in voice.frontend.sentences(text):
        t = time.process_time()
        features = voice.frontend({"text": sentence})
        seconds["Frontend (composer)"] += time.process_time() - t
        for seq in sequence:
            t = time.process_time()
            features = seq(addon.name, features)
            seconds[type(next(iter(seq.blocks.values()))).__name__] += time.process_time() - t
        # What SourceServer.stream runs, one chunk per worker-thread call.
        chunks = with_context(source.blocks[addon.name].stream(features, None), *need)
        head = type(source.blocks[addon.name]).__name__
        while True:
            t = time.process_time()
            chunk = next(chunks, None)
            seconds[head] += time.process_time() - t
            if chunk is None:
                break
            _keep_largest(samples, f"{head} -> {names[0]}", chunk)
            for i, (name, (server, keep)) in enumerate(zip(names, steps, strict=True)):
                t = time.process_time()
                chunk = server.blocks[addon.name].apply(chunk, keep)
                seconds[name] += time.process_time() - t
                target = names[i + 1] if i + 1 < len(names) else "Composer"
                _keep_largest(samples, f"{name} -> {target}", chunk)
            audio += chunk.length
    return dict(seconds), audio / addon.audio.sample_rate, samples


def _keep_largest(samples: dict, kind: str, chunk) -> None:
    if kind not in samples or chunk.frames.shape[0] > samples[kind].frames.shape[0]:
        samples[kind] = chunk


def round_trip_us(chunk, repeats: int = 200) -> float:
    """Microseconds for ray.put + ray.get of `chunk` (serialise, store, deserialise)."""
    import ray

    ray.get(ray.put(chunk))
    t = time.perf_counter()
    for _ in range(repeats):
        ray.get(ray.put(chunk))
    return (time.perf_counter() - t) / repeats * 1e6


def process_name(process: psutil.Process) -> str:
    try:
        title = process.cmdline()[0] if process.cmdline() else process.name()
    except psutil.Error:
        return "gone"
    if title.startswith("ray::ServeReplica:"):
        app_deployment = title[len("ray::ServeReplica:") :].split(".")[0]
        return app_deployment.split(":", 1)[1]
    if title.startswith("ray::"):
        return title[len("ray::") :].split(".")[0].split(" ")[0]
    return Path(title).name


def cpu_by_process(processes: list[psutil.Process]) -> dict[int, tuple[str, float]]:
    out = {}
    for p in processes:
        try:
            times = p.cpu_times()
            out[p.pid] = (process_name(p), times.user + times.system)
        except psutil.Error:
            continue
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--voice", default="espeak-duration")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--text", default="400", help="a text of bench/serve_bench/texts.py")
    parser.add_argument("--placement", type=Path, default=Path("deploy/placements/local.yaml"))
    args = parser.parse_args()
    from voicestack.addons.loader import load_addon

    torch.set_num_threads(1)
    path = resolve_voice(args.voice)
    addon = load_addon(path)
    text = benchmark_texts([args.text])[args.text]
    placement = read_placement(args.placement)

    alone, audio_s, samples = compute_alone(addon, {}, text)
    print(f"voice {addon.name}, text {args.text!r} ({len(text)} chars, {audio_s:.2f} s of audio)")

    payload = {"voice": addon.name, "text": text, "format": "pcm"}
    with voicestack_server("voicestack", path, addon.name, placement) as server:
        hops = {kind: round_trip_us(chunk) for kind, chunk in samples.items()}
        before = cpu_by_process(server.processes())
        level = run_level_sync(
            server.url, payload, args.concurrency, args.requests, Timeouts(stall_s=300)
        )
        after = cpu_by_process(server.processes())
    delivered = sum(r.audio_bytes for r in level.records if r.ok) / 2 / addon.audio.sample_rate
    failed = sum(not r.ok for r in level.records)
    served: dict[str, float] = defaultdict(float)
    for pid, (name, cpu) in after.items():
        served[name] += cpu - before.get(pid, (name, 0.0))[1]

    def per_audio(cpu_s: float, audio: float) -> float:
        return cpu_s * 1000 / audio

    print(
        f"service: {args.concurrency} streams at a time, {args.requests} requests, "
        f"{delivered:.1f} s of audio in {level.wall_s:.1f} s (RTFX {delivered / level.wall_s:.2f}), "
        f"{failed} failed; placement {args.placement}"
    )
    print()
    print(
        "| process | compute alone, CPU ms / audio s | in the service, CPU ms / audio s |"
        " serving overhead |"
    )
    print("|---|---|---|---|")
    total_alone = total_served = 0.0
    names = sorted(set(alone) | set(served), key=lambda n: -served.get(n, 0.0))
    for name in names:
        a = per_audio(alone.get(name, 0.0), audio_s)
        s = per_audio(served.get(name, 0.0), delivered)
        total_alone, total_served = total_alone + a, total_served + s
        if a < 0.05 and s < 0.05:
            continue
        print(f"| {name} | {a:.1f} | {s:.1f} | {s - a:+.1f} |")
    print(
        f"| **all** | {total_alone:.1f} | {total_served:.1f} | {total_served - total_alone:+.1f} |"
    )
    requests = sum(r.ok for r in level.records)
    alone_s, served_s = sum(alone.values()), sum(served.values())
    print()
    print(
        f"per request ({len(text)} characters): {served_s / requests * 1000:.1f} ms of CPU in "
        f"the service, {alone_s * 1000:.1f} ms compute alone: serving overhead "
        f"{(served_s / requests - alone_s) * 1000:.1f} ms"
    )
    print()
    print("| chunk between | frames x channels | ray.put + ray.get, us |")
    print("|---|---|---|")
    for kind, us in hops.items():
        shape = "x".join(str(d) for d in samples[kind].frames.shape)
        print(f"| {kind} | {shape} | {us:.0f} |")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
