"""Running the whole comparison: each server in turn, each text, each concurrency level.

Servers run one after another, never together, so each has the machine to itself (apart from
the client, which is the same for all three). The naive server goes first: it cannot truncate a
stream, so the audio it returns for each text is the reference length that tells a lost stream
from a complete one on the streaming servers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.serve_bench.client import LevelRun, run_level_sync
from bench.serve_bench.launch import SERVERS, Server, resolve_voice, start_server
from bench.serve_bench.plot import write_plot
from bench.serve_bench.report import (
    LevelSummary,
    markdown_report,
    markdown_table,
    summarize,
    write_json,
)
from bench.serve_bench.sampler import MemorySampler, measure_once
from bench.serve_bench.texts import TARGETS, benchmark_texts

QUICK_LEVELS = [1, 4]
QUICK_REQUESTS = 4
QUICK_TEXTS = ["sentence", "400"]
RESULTS = "bench_results"


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v]


def _names(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/serve_bench.py",
        description="Streaming TTS servers side by side: naive, in-process streaming, voicestack.",
    )
    parser.add_argument("--quick", action="store_true", help="levels 1,4; 4 requests; 2 texts")
    parser.add_argument("--levels", type=_ints, default=None, help="default 1,4,16,64")
    parser.add_argument(
        "--requests", type=int, default=None, help="per level (default max(8, 2 x concurrency))"
    )
    parser.add_argument("--texts", type=_names, default=None, help=f"of {','.join(TARGETS)}")
    parser.add_argument("--servers", type=_names, default=list(SERVERS), help=",".join(SERVERS))
    parser.add_argument("--voice", default="test-duration", help="voice name or addon folder")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the results")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds one request may take in all"
    )
    args = parser.parse_args(argv)
    args.levels = args.levels or (QUICK_LEVELS if args.quick else [1, 4, 16, 64])
    args.texts = args.texts or (QUICK_TEXTS if args.quick else list(TARGETS))
    if args.requests is None and args.quick:
        args.requests = QUICK_REQUESTS
    unknown = [s for s in args.servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown server {unknown}; expected some of {', '.join(SERVERS)}")
    return args


def requests_for(concurrency: int, fixed: int | None) -> int:
    return fixed if fixed is not None else max(8, 2 * concurrency)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _reference(run: LevelRun) -> int | None:
    sizes = [r.audio_bytes for r in run.records if r.ok]
    return max(sizes) if sizes else None


def run_level(
    server: Server,
    payload: dict[str, Any],
    concurrency: int,
    requests: int,
    timeout_s: float,
) -> tuple[LevelRun, Any]:
    """One level against a running server, with its memory sampled throughout."""
    with MemorySampler(server.processes) as sampler:
        run = run_level_sync(server.url, payload, concurrency, requests, timeout_s)
    return run, sampler.peak


def bench_server(
    server: Server,
    voice_name: str,
    texts: dict[str, str],
    args: argparse.Namespace,
    references: dict[str, int],
    warmups: dict[str, Any],
) -> list[tuple[LevelSummary, LevelRun]]:
    """Every text at every level against one server; `references` is filled by the naive one.

    Each text is first synthesized once, unmeasured (its times go to `warmups`): the networks'
    first calls in a fresh process are many times slower than later ones (torch's per-shape
    work), and every server should be measured warm, as a long-running service is."""
    results = []
    for text_name, text in texts.items():
        payload = {"voice": voice_name, "text": text, "format": "pcm"}
        warm = run_level_sync(server.url, payload, 1, 1, args.timeout).records[0]
        warmups[text_name] = {"ttfa_s": warm.ttfa_s, "total_s": warm.ended_s, "error": warm.error}
        for concurrency in args.levels:
            requests = requests_for(concurrency, args.requests)
            run, peak = run_level(server, payload, concurrency, requests, args.timeout)
            if server.name == "naive" and text_name not in references:
                reference = _reference(run)
                if reference is not None:
                    references[text_name] = reference
            expected = references.get(text_name, _reference(run))
            summary = summarize(server.name, text_name, len(text), concurrency, run, peak, expected)
            results.append((summary, run))
            _log(
                f"{server.name} {text_name} x{concurrency}: "
                + markdown_table([summary]).split("\n")[-1]
            )
    return results


def _load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def _versions() -> dict[str, str]:
    import ray
    import torch

    return {"python": platform.python_version(), "ray": ray.__version__, "torch": torch.__version__}


def _machine() -> str:
    import psutil

    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores, {memory:.0f} GiB, {platform.machine()}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    voice_path = resolve_voice(args.voice)
    voice_name = json.loads((voice_path / "addon.json").read_text(encoding="utf-8"))["name"]
    texts = benchmark_texts(args.texts)
    logs = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    meta: dict[str, Any] = {
        "command": "bench/serve_bench.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "machine": _machine(),
        "versions": _versions(),
        "voice": voice_name,
        "voice_path": str(voice_path),
        "levels": args.levels,
        "requests_rule": f"{args.requests} requests per level"
        if args.requests is not None
        else "max(8, 2 x concurrency) requests per level",
        "texts": texts,
        "timeout_s": args.timeout,
        "load_average_start": _load_average(),
        "servers": {},
        "failures": {},
        "server_logs": str(logs),
    }
    _log(f"voice {voice_name} ({voice_path}); servers {args.servers}; logs in {logs}")
    references: dict[str, int] = {}
    results: list[tuple[LevelSummary, LevelRun]] = []
    for name in args.servers:
        _log(f"starting {name}")
        try:
            with start_server(name, voice_path, voice_name, logs) as server:
                idle = measure_once(server.processes)
                meta["servers"][name] = {**server.details, "idle_pss_mib": idle.pss_mib}
                warmups = meta["servers"][name].setdefault("warmup", {})
                _log(f"{name} ready at {server.url}; idle PSS {idle.pss_mib:.0f} MiB")
                results += bench_server(server, voice_name, texts, args, references, warmups)
        except Exception as e:  # one server failing must not lose the others' results
            meta["failures"][name] = f"{type(e).__name__}: {e}"
            _log(f"{name} failed: {type(e).__name__}: {e}")
    meta["load_average_end"] = _load_average()
    meta["finished_utc"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    meta["elapsed_s"] = time.monotonic() - started
    meta["reference_audio_bytes"] = references
    summaries = [s for s, _ in results]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{RESULTS}.md").write_text(markdown_report(summaries, meta), encoding="utf-8")
    write_json(args.out / f"{RESULTS}.json", results, meta)
    plotted = write_plot(summaries, args.out / f"{RESULTS}.png", meta["command"])
    print(markdown_table(summaries))
    _log(
        f"wrote {args.out / RESULTS}.md, .json"
        + (", .png" if plotted else " (no plot: matplotlib is not installed)")
        + f" in {meta['elapsed_s']:.0f} s"
    )
    return 1 if meta["failures"] else 0
