"""Per-voice autoscaling, as a timeline: load on one voice for a while, then none, and each
deployment's running replicas read from `serve.status()` every second.

The same setup as tests/test_autoscaling.py (a local Ray with 8 logical CPUs, every block
asking 0.1 CPU, autoscaling from 1 to 3 replicas at one ongoing request each, 1 s up and 5 s
down delays), run longer, written as a table and (with matplotlib) a figure.

    .venv/bin/python bench/autoscaling.py [--clients 6] [--load-s 40] [--after-s 40]
        [--json out/autoscaling.json] [--png docs/autoscaling.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--load-s", type=float, default=40)
    parser.add_argument("--after-s", type=float, default=40)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()

    import httpx
    from voicestack.addons.search_path import find_voice

    from tests.ray_service import running_service
    from tests.test_autoscaling import PLACEMENT, TEXT, replicas

    voices = [str(find_voice("joe").path), str(find_voice("espeak-duration").path)]
    rows = []
    with running_service(voices, PLACEMENT, num_cpus=8) as service:
        url = f"http://127.0.0.1:{service['port']}"
        stop = threading.Event()
        done = [0]

        def talk() -> None:
            with httpx.Client(base_url=url, timeout=300) as client:
                while not stop.is_set():
                    client.post("/v1/synthesize", json={"voice": "joe", "text": TEXT})
                    done[0] += 1

        clients = [threading.Thread(target=talk, daemon=True) for _ in range(args.clients)]
        t0 = time.monotonic()
        for c in clients:
            c.start()
        while (now := time.monotonic() - t0) < args.load_s + args.after_s:
            if now >= args.load_s and not stop.is_set():
                stop.set()
            rows.append(
                {
                    "t_s": round(now, 1),
                    "load": not stop.is_set(),
                    "joe": replicas("voice-joe"),
                    "espeak-duration": replicas("voice-espeak-duration"),
                    "requests_done": done[0],
                }
            )
            time.sleep(1)
        stop.set()
        for c in clients:
            c.join(timeout=300)
    deployments = sorted(rows[0]["joe"])
    print(
        "| t (s) | load | "
        + " | ".join(f"joe {d}" for d in deployments)
        + " | espeak-duration (max) |"
    )
    print("|---|---|" + "---|" * len(deployments) + "---|")
    for r in rows[:: max(1, len(rows) // 30)]:
        cells = " | ".join(str(r["joe"].get(d, 0)) for d in deployments)
        other = max(r["espeak-duration"].values())
        print(f"| {r['t_s']} | {'on' if r['load'] else 'off'} | {cells} | {other} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 3.5))
        t = [r["t_s"] for r in rows]
        for d in deployments:
            ax.step(t, [r["joe"].get(d, 0) for r in rows], where="post", label=f"joe {d}")
        ax.step(
            t,
            [max(r["espeak-duration"].values()) for r in rows],
            where="post",
            label="espeak-duration (every deployment)",
            linestyle="--",
            color="black",
        )
        ax.axvspan(0, args.load_s, alpha=0.1, label=f"{args.clients} clients on joe")
        ax.set_xlabel("seconds")
        ax.set_ylabel("running replicas")
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        args.png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.png, dpi=100)


if __name__ == "__main__":
    main()
