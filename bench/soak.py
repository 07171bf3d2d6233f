"""Soak: rounds of many requests at many concurrent streams across the bundled voices, with no
stream lost and the memory of every Ray process flat from round to round.

The service is `make serve`'s (joe, espeak-duration, espeak-attention under
deploy/placements/local.yaml) on a local Ray. Each round, `--clients` clients send
`--requests` requests in all, one after another each, to voices drawn in turn, with texts
drawn from a mix like a voice assistant's and a reader's (mostly one sentence, some a few,
a few paragraphs). Requests are msgpack streams, whose `end` message says how much audio
was made, so that each is checked whole: its samples and chunks are what `end` says.

A stream is:
- complete: ended with `end`, its audio whole;
- failed honestly: an `error` message, or a 4xx/5xx before any audio (503 when a voice is at
  capacity: not admitted);
- lost: anything else (a clean end with audio missing, a cut connection, no answer in time).

After each round (and once after a warm-up round that is not counted) every Ray process's
memory is read (RSS and PSS); the report gives each process's change from the first counted
round to the last.

    .venv/bin/python bench/soak.py [--rounds 3] [--requests 500] [--clients 32]
        [--json out/soak.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VOICES = ("joe", "espeak-duration", "espeak-attention")
SHORT = [
    "The weather is lovely today.",
    "Turn left at the next corner.",
    "Your meeting starts in ten minutes.",
    "I have set a timer for five minutes.",
    "The kitchen lights are now off.",
    "It will rain tomorrow afternoon.",
]
MEDIUM = [
    "Good morning. You have three new messages, and the first one is from your sister.",
    "The train to the city leaves at eight fifteen. It is running about four minutes late.",
]
LONG = [
    " ".join(
        [
            "Once upon a time, in a small village by the sea, there lived an old fisherman.",
            "Every morning he rowed out before dawn, and every evening he came back with fish.",
            "One day the sea was calm and empty, and he drifted far beyond the harbour lights.",
            "He saw a light on the water that he had never seen before, and rowed towards it.",
        ]
    )
]


def text(rng: random.Random) -> str:
    """Mostly one sentence, sometimes two, now and then a paragraph."""
    roll = rng.random()
    if roll < 0.7:
        return rng.choice(SHORT)
    return rng.choice(MEDIUM) if roll < 0.95 else rng.choice(LONG)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--warm-up", type=int, default=64, help="requests before round 1")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import httpx
    import yaml
    from voicestack.addons.search_path import find_voice
    from voicestack.serve_app.formats import decode_msgpack_stream

    from bench.serve_bench.sampler import ray_processes
    from tests.ray_service import running_service

    root = Path(__file__).resolve().parents[1]
    placement = yaml.safe_load((root / "deploy/placements/local.yaml").read_text())
    paths = [str(find_voice(v).path) for v in VOICES]

    def one(client: httpx.Client, voice: str, words: str) -> tuple[str, float]:
        """(outcome, seconds of audio)"""
        try:
            reply = client.post(
                "/v1/synthesize",
                json={"voice": voice, "text": words, "format": "msgpack"},
                timeout=300,
            )
        except httpx.HTTPError as e:
            return f"lost: {type(e).__name__}", 0.0
        if reply.status_code == 503:
            return "shed (503)", 0.0
        if reply.status_code != 200:
            return f"refused ({reply.status_code})", 0.0
        try:
            messages = decode_msgpack_stream(reply.content)
        except Exception:
            return "lost: cut inside a message", 0.0
        last = messages[-1]
        if last["type"] == "error":
            return "failed (error message)", 0.0
        audio = [m for m in messages if m["type"] == "audio"]
        samples = sum(len(m["pcm16"]) // 2 for m in audio)
        rate = int(reply.headers["x-sample-rate"])
        if last["type"] != "end" or last["chunks"] != len(audio):
            return "lost: clean but short", 0.0
        if abs(samples / rate - last["audio_s"]) > 0.01:
            return "lost: audio missing", 0.0
        return "complete", last["audio_s"]

    def round_(url: str, requests: int, seed: int) -> dict:
        rng = random.Random(seed)
        work = [(VOICES[i % len(VOICES)], text(rng)) for i in range(requests)]
        lock = threading.Lock()
        outcomes: Counter = Counter()
        audio = [0.0]

        def client_loop() -> None:
            with httpx.Client(base_url=url, timeout=300) as client:
                while True:
                    with lock:
                        if not work:
                            return
                        voice, words = work.pop()
                    outcome, seconds = one(client, voice, words)
                    with lock:
                        outcomes[outcome] += 1
                        audio[0] += seconds

        t0 = time.monotonic()
        threads = [threading.Thread(target=client_loop) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {
            "requests": requests,
            "wall_s": round(time.monotonic() - t0, 1),
            "audio_s": round(audio[0], 1),
            "outcomes": dict(outcomes),
        }

    def memory() -> dict[str, dict]:
        out = {}
        for p in ray_processes():
            try:
                info = p.memory_full_info()
                name = " ".join(p.cmdline()[:1])[:80] or p.name()
                out[str(p.pid)] = {
                    "name": name,
                    "rss_mib": round(info.rss / 2**20, 1),
                    "pss_mib": round(info.pss / 2**20, 1),
                }
            except Exception:
                continue
        return out

    report: dict = {"rounds": [], "memory": []}
    with running_service(paths, placement) as service:
        url = f"http://127.0.0.1:{service['port']}"
        warm = round_(url, args.warm_up, seed=0)
        report["warm_up"] = warm
        report["memory"].append(memory())
        print("warm-up", json.dumps(warm), flush=True)
        for r in range(1, args.rounds + 1):
            result = round_(url, args.requests, seed=r)
            report["rounds"].append(result)
            report["memory"].append(memory())
            print(f"round {r}", json.dumps(result), flush=True)

    first, last = report["memory"][1], report["memory"][-1]
    changes = []
    for pid, m in first.items():
        if pid in last:
            end = last[pid]
            changes.append(
                {
                    "name": m["name"],
                    "rss_first_mib": m["rss_mib"],
                    "rss_last_mib": end["rss_mib"],
                    "rss_change": round(end["rss_mib"] / m["rss_mib"] - 1, 4),
                    "pss_change": round(end["pss_mib"] / max(m["pss_mib"], 0.1) - 1, 4),
                }
            )
    report["changes"] = changes
    gone = sorted(set(first) - set(last))
    report["processes_gone"] = [first[p]["name"] for p in gone]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    print()
    print("| round | requests | wall (s) | audio (s) | outcomes |")
    print("|---|---|---|---|---|")
    for i, r in enumerate(report["rounds"], 1):
        outs = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
        print(f"| {i} | {r['requests']} | {r['wall_s']} | {r['audio_s']} | {outs} |")
    print()
    print("| process | RSS after round 1 (MiB) | after the last | RSS change | PSS change |")
    print("|---|---|---|---|---|")
    for c in sorted(changes, key=lambda c: -abs(c["rss_change"])):
        print(
            f"| {c['name']} | {c['rss_first_mib']} | {c['rss_last_mib']} | "
            f"{c['rss_change']:+.1%} | {c['pss_change']:+.1%} |"
        )
    if gone:
        print("processes gone between round 1 and the last:", report["processes_gone"])


if __name__ == "__main__":
    main()
