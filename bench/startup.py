"""How long the tests' service takes to start, idle and beside CPU-bound processes, and where
the time goes.

For each `--hogs` level: that many CPU-bound processes start (`while True: pass`), then the
phases of tests/ray_service.py's `running_service` are timed on the two test voices (ten
replicas): `ray.init`, Serve's HTTP proxy healthy (`start_serve`), and every application
running (`apply_config`, with the moment each application turned RUNNING). Beside them, the
cost of what every replica does first, a fresh Python importing torch and Ray Serve, timed as
a process of its own under the same load.

    .venv/bin/python bench/startup.py [--hogs 0,1,2] [--json out/startup.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

IMPORTS = "import torch, ray.serve"


def hogs(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def import_time() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS], check=True)
    return time.perf_counter() - t0


def start_once(voices: list[str]) -> dict:
    import ray
    from ray import serve
    from voicestack.serve_app.serve_config import serve_config

    from tests.ray_service import apply_config, free_port, init_local_ray, start_serve

    out: dict = {}
    t0 = time.perf_counter()
    init_local_ray(num_cpus=2, include_dashboard=False, log_to_driver=False)
    out["ray_init_s"] = round(time.perf_counter() - t0, 1)
    try:
        port = free_port()
        t1 = time.perf_counter()
        start_serve(port)
        out["proxy_s"] = round(time.perf_counter() - t1, 1)
        config = serve_config(voices, {"default": {"num_cpus": 0.1}}, port=port)
        t2 = time.perf_counter()
        running: dict[str, float] = {}
        done = {"error": None}

        def watch() -> None:
            while len(running) < len(config["applications"]) and done["error"] is None:
                for name, app in serve.status().applications.items():
                    if app.status == "RUNNING" and name not in running:
                        running[name] = round(time.perf_counter() - t2, 1)
                time.sleep(0.25)

        import threading

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            apply_config(config)
        except Exception as e:
            done["error"] = repr(e)
            raise
        watcher.join(5)
        out["deploy_s"] = round(time.perf_counter() - t2, 1)
        out["apps_running_at_s"] = running
        out["total_s"] = round(time.perf_counter() - t0, 1)
        serve.shutdown()
    finally:
        ray.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", default="0,1,2")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from voicestack.addons.recipes.test_voices import build_test_voices

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        build_test_voices(Path(tmp))
        voices = [str(Path(tmp) / "test-duration"), str(Path(tmp) / "test-attention")]
        for n in [int(x) for x in args.hogs.split(",")]:
            running = hogs(n)
            try:
                time.sleep(1)
                row = {"hogs": n, "import_torch_and_serve_s": round(import_time(), 1)}
                row |= start_once(voices)
            finally:
                for p in running:
                    p.kill()
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    print()
    print(
        "| CPU-bound processes beside | a fresh `import torch, ray.serve` (s) | ray.init (s) "
        "| Serve's proxy healthy (s) | both voices' apps running (s) | in all (s) |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['hogs']} | {r['import_torch_and_serve_s']} | {r['ray_init_s']} | "
            f"{r['proxy_s']} | {r['deploy_s']} | {r['total_s']} |"
        )


if __name__ == "__main__":
    main()
