"""Running the whole comparison: each server in turn, each text, each concurrency level.

Servers run one after another, never together, so each has the machine to itself (apart from
the client, which is the same for all). The naive server goes first: it cannot truncate a
stream, so the audio it returns for each text is the reference length that tells a lost stream
from a complete one on the streaming servers (without it, each level's longest stream is). The
voicestack-API servers are sent one fixed `seed` (`--seed`), so a generative voice's audio has
one length per text there too; Piper's servers draw their noise inside the graph, so their
streams are not checked for loss (their errors still are).

`--arrivals poisson` runs the open loop instead of the levels (open_loop.py): requests arrive as
a Poisson process at each rate of `--rates` (or of the `--find-capacity` search), with texts of
a length mix, and each server's capacity is the highest rate it serves in real time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.serve_bench import open_loop
from bench.serve_bench.client import LevelRun, Timeouts, run_level_sync
from bench.serve_bench.goals import markdown_tables as goals_markdown
from bench.serve_bench.launch import (
    DESCRIPTIONS,
    PIPER_SERVERS,
    PLACEMENT_FILE,
    SERVERS,
    Server,
    read_placement,
    resolve_voice,
    start_server,
    with_admission,
)
from bench.serve_bench.plot import write_open_loop_plot, write_plot
from bench.serve_bench.report import (
    LevelSummary,
    markdown_report,
    markdown_table,
    summarize,
    write_json,
)
from bench.serve_bench.sampler import Usage, UsageSampler, measure_idle
from bench.serve_bench.texts import MIXES, TARGETS, TEXT_NAMES, benchmark_texts

QUICK_LEVELS = [1, 4]
QUICK_REQUESTS = 4
QUICK_TEXTS = ["sentence", "400"]
RESULTS = "bench_results"
#: Seconds a server is watched at rest, before its first level.
IDLE_S = 2.0
#: Open loop: the rates measured (streams per second) unless --rates says otherwise; the arrival
#: window of each; how many rates --find-capacity measures at most.
OPEN_LOOP_RATES = [0.5, 1.0, 2.0, 4.0]
OPEN_LOOP_DURATION_S = 60.0
MAX_STEPS = 8


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v]


def _floats(value: str) -> list[float]:
    rates = [float(v) for v in value.split(",") if v]
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError(f"expected positive rates, got {value!r}")
    return rates


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
        "--requests", type=int, default=None, help="per level (default max(8, concurrency))"
    )
    parser.add_argument("--texts", type=_names, default=None, help=f"of {','.join(TEXT_NAMES)}")
    parser.add_argument(
        "--servers",
        type=_names,
        default=[s for s in SERVERS if s not in PIPER_SERVERS],
        help=f"of {','.join(SERVERS)} (default: the first four; the Piper ones need a "
        "Piper voice, e.g. --voice joe)",
    )
    parser.add_argument(
        "--placement",
        type=Path,
        default=None,
        help="placement YAML for the voicestack server (default: every block at 0.1 CPU)",
    )
    parser.add_argument(
        "--voice",
        default="espeak-duration",
        help="voice name or addon folder (default: the reference duration voice)",
    )
    parser.add_argument(
        "--piper-model",
        type=Path,
        default=None,
        help="Piper .onnx for the piper-* servers (default: the one the voice was imported from)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed sent to the voicestack-API servers, so a generative voice's audio has one "
        "length per text (default 0; negative: none, each request draws its own)",
    )
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the results")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds one request may take in all"
    )
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=120.0,
        help="seconds without a byte after which a request counts as hung",
    )
    parser.add_argument(
        "--admit-streams",
        type=int,
        default=None,
        help="set every Composer's streams.max_active to N in the voicestack servers' "
        "placement, so admission does not cap what is measured (default: the placement's)",
    )
    loop = parser.add_argument_group(
        "open loop", "--arrivals poisson: requests arrive as a Poisson process at each rate"
    )
    loop.add_argument(
        "--arrivals",
        choices=("closed", "poisson"),
        default="closed",
        help="closed: the concurrency levels (default); poisson: the open loop",
    )
    loop.add_argument(
        "--rates",
        type=_floats,
        default=None,
        help="offered rates, streams per second (default 0.5,1,2,4; with --find-capacity its "
        "first is where the search starts, default 1)",
    )
    loop.add_argument(
        "--duration-s",
        type=float,
        default=OPEN_LOOP_DURATION_S,
        help=f"seconds of arrivals per rate; then the streams in flight end (default "
        f"{OPEN_LOOP_DURATION_S:g})",
    )
    loop.add_argument(
        "--mix",
        default="assistant",
        help=f"texts: a length mix ({', '.join(MIXES)}) or one text of "
        f"{','.join(TEXT_NAMES)} (default assistant)",
    )
    loop.add_argument(
        "--schedule-seed",
        type=int,
        default=0,
        help="seed of the arrival times and the texts drawn (default 0)",
    )
    loop.add_argument(
        "--find-capacity",
        action="store_true",
        help="search the rates: double from the first of --rates while served (halve while "
        "not), then bisect; at most --max-steps rates",
    )
    loop.add_argument(
        "--max-steps",
        type=int,
        default=MAX_STEPS,
        help=f"rates --find-capacity measures at most (default {MAX_STEPS})",
    )
    loop.add_argument(
        "--ttfa-limit-ms",
        type=float,
        default=open_loop.TTFA_LIMIT_MS,
        help=f"p99 TTFA a served rate stays under (default {open_loop.TTFA_LIMIT_MS:g})",
    )
    args = parser.parse_args(argv)
    if args.arrivals == "poisson":
        closed_only = [
            flag
            for flag, value in (
                ("--quick", args.quick),
                ("--levels", args.levels),
                ("--requests", args.requests),
                ("--texts", args.texts),
            )
            if value
        ]
        if closed_only:
            parser.error(f"{', '.join(closed_only)}: closed loop only (--mix picks the texts)")
        if args.mix not in MIXES and args.mix not in TEXT_NAMES:
            parser.error(
                f"unknown --mix {args.mix!r}; expected one of {', '.join((*MIXES, *TEXT_NAMES))}"
            )
        if args.duration_s <= 0 or args.max_steps < 1:
            parser.error("--duration-s and --max-steps must be positive")
        args.rates = args.rates or ([1.0] if args.find_capacity else OPEN_LOOP_RATES)
    elif args.rates or args.find_capacity:
        parser.error("--rates and --find-capacity need --arrivals poisson")
    args.levels = args.levels or (QUICK_LEVELS if args.quick else [1, 4, 16, 64])
    args.texts = args.texts or (QUICK_TEXTS if args.quick else list(TARGETS))
    if args.requests is None and args.quick:
        args.requests = QUICK_REQUESTS
    unknown = [s for s in args.servers if s not in SERVERS]
    if unknown:
        known = ", ".join(SERVERS)
        parser.error(f"unknown server {unknown}; expected some of {known}")
    return args


def requests_for(concurrency: int, fixed: int | None) -> int:
    return fixed if fixed is not None else max(8, concurrency)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _reference(run: LevelRun) -> int | None:
    sizes = [r.audio_bytes for r in run.records if r.ok]
    return max(sizes) if sizes else None


def measure_level(
    server: Server,
    payload: dict[str, Any],
    concurrency: int,
    requests: int,
    timeouts: Timeouts,
) -> tuple[LevelRun, Usage]:
    """One level against a running server, with its processes sampled throughout."""
    with UsageSampler(server.processes) as sampler:
        run = run_level_sync(server.url, payload, concurrency, requests, timeouts, server.protocol)
    return run, sampler.usage


def bench_server(
    server: Server,
    voice_name: str,
    texts: dict[str, str],
    args: argparse.Namespace,
    references: dict[str, int],
    warmups: dict[str, Any],
    results: list[tuple[LevelSummary, LevelRun]],
) -> None:
    """Every text at every level against one server, appended to `results` as each level ends
    (so a server that fails part way keeps its levels); `references` is filled by the naive
    one.

    Each text is first synthesized once, unmeasured (its times go to `warmups`): the networks'
    first calls in a fresh process can be many times slower than later ones, and every server
    should be measured warm, as a long-running service is."""
    timeouts = Timeouts(args.timeout, args.stall_timeout)
    protocol = server.protocol
    for text_name, text in texts.items():
        payload: dict[str, Any] = {"voice": voice_name, "text": text, "format": "pcm"}
        if args.seed >= 0:
            payload["seed"] = args.seed  # ignored by piper-stream, not sent to piper-http
        warm = run_level_sync(server.url, payload, 1, 1, timeouts, protocol).records[0]
        warmups[text_name] = {"ttfa_s": warm.ttfa_s, "total_s": warm.ended_s, "error": warm.error}
        for concurrency in args.levels:
            requests = requests_for(concurrency, args.requests)
            run, usage = measure_level(server, payload, concurrency, requests, timeouts)
            if server.name == "naive" and text_name not in references:
                reference = _reference(run)
                if reference is not None:
                    references[text_name] = reference
            expected = references.get(text_name, _reference(run))
            summary = summarize(
                server.name,
                text_name,
                len(text),
                concurrency,
                run,
                usage,
                expected,
                lost_checkable=server.reproducible,
            )
            results.append((summary, run))
            _log(
                f"{server.name} {text_name} x{concurrency}: "
                + markdown_table([summary]).split("\n")[-1]
            )


def _load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import ray
    import torch

    out = {"python": platform.python_version(), "ray": ray.__version__, "torch": torch.__version__}
    for package in ("onnxruntime", "piper-tts", "flask"):
        with contextlib.suppress(PackageNotFoundError):
            out[package] = version(package)
    return out


def _machine() -> str:
    import psutil

    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores, {memory:.0f} GiB, {platform.machine()}"


def _meta(
    args: argparse.Namespace, voice_path: Path, voice_name: str, texts: dict[str, str]
) -> dict[str, Any]:
    """What the results need to be read and rerun: command, machine, versions, settings."""
    argv = sys.argv[1:] if args.argv is None else args.argv
    rule = (
        f"{args.requests} requests per level"
        if args.requests is not None
        else "max(8, concurrency) requests per level"
    )
    return {
        "command": "bench/serve_bench.py " + shlex.join(argv),
        "machine": _machine(),
        "versions": _versions(),
        "voice": voice_name,
        "voice_path": str(voice_path),
        "seed": args.seed if args.seed >= 0 else None,
        "server_descriptions": {name: DESCRIPTIONS[name] for name in args.servers},
        "levels": args.levels,
        "requests_rule": rule,
        "texts": texts,
        "timeouts_s": {"total": args.timeout, "stall": args.stall_timeout},
        "load_average_start": _load_average(),
        "admission": (
            f"Composer streams.max_active {args.admit_streams} for every voice (--admit-streams)"
            if args.admit_streams
            else f"as in {args.placement or PLACEMENT_FILE.relative_to(PLACEMENT_FILE.parents[2])}"
        ),
        "servers": {},
        "failures": {},
    }


def _open_loop_meta(args: argparse.Namespace, meta: dict[str, Any]) -> dict[str, Any]:
    """The closed loop's meta less its levels and texts, plus the open loop's settings."""
    for key in ("levels", "requests_rule", "texts"):
        meta.pop(key, None)
    shares = MIXES.get(args.mix, {args.mix: 1.0})
    search = (
        f"--find-capacity from {args.rates[0]:g}/s, at most {args.max_steps} rates"
        if args.find_capacity
        else None
    )
    return {
        **meta,
        "arrivals": "poisson",
        "rates": search or args.rates,
        "duration_s": args.duration_s,
        "mix": args.mix,
        "mix_shares": ", ".join(f"{kind} {share:.0%}" for kind, share in shares.items()),
        "schedule_seed": args.schedule_seed,
        "ttfa_limit_ms": args.ttfa_limit_ms,
        "cpu_cores": os.cpu_count(),
    }


def write_results(
    out: Path, results: list[tuple[LevelSummary, LevelRun]], meta: dict[str, Any]
) -> bool:
    """The markdown table, the JSON and the plot; False when the plot could not be made."""
    summaries = [s for s, _ in results]
    out.mkdir(parents=True, exist_ok=True)
    report = markdown_report(summaries, meta)
    report += "\n" + goals_markdown([asdict(s) for s in summaries])
    (out / f"{RESULTS}.md").write_text(report, encoding="utf-8")
    write_json(out / f"{RESULTS}.json", results, meta)
    return write_plot(summaries, out / f"{RESULTS}.png", meta["command"])


def write_open_loop_results(
    out: Path, results: list[tuple[open_loop.RateSummary, open_loop.RateRun]], meta: dict[str, Any]
) -> bool:
    """The open loop's markdown (rates, then capacities), JSON and plot; False when the plot
    could not be made."""
    summaries = [s for s, _ in results]
    out.mkdir(parents=True, exist_ok=True)
    report = open_loop.markdown_report(summaries, meta)
    (out / f"{RESULTS}.md").write_text(report, encoding="utf-8")
    open_loop.write_json(out / f"{RESULTS}.json", results, meta)
    return write_open_loop_plot(
        summaries, out / f"{RESULTS}.png", meta["command"], meta["ttfa_limit_ms"]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = argv
    started = time.monotonic()
    voice_path = resolve_voice(args.voice)
    voice_name = json.loads((voice_path / "addon.json").read_text(encoding="utf-8"))["name"]
    poisson = args.arrivals == "poisson"
    texts = {} if poisson else benchmark_texts(args.texts)
    meta = _meta(args, voice_path, voice_name, texts)
    if poisson:
        meta = _open_loop_meta(args, meta)
    logs = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    meta["server_logs"] = str(logs)
    placement = read_placement(args.placement) if args.placement else None
    if args.admit_streams:
        chosen = placement if placement is not None else read_placement(PLACEMENT_FILE)
        placement = with_admission(chosen, voice_name, args.admit_streams)
    _log(f"voice {voice_name} ({voice_path}); servers {args.servers}; logs in {logs}")
    references: dict[str, int] = {}
    results: list[Any] = []
    for name in args.servers:
        _log(f"starting {name}")
        try:
            with start_server(
                name, voice_path, voice_name, logs, placement, args.piper_model
            ) as server:
                idle = measure_idle(server.processes, IDLE_S)
                details = meta["servers"][name] = {
                    **server.details,
                    "idle_pss_mib": idle.pss_mib,
                    "idle_cpu_cores": idle.cpu_s / IDLE_S,
                }
                _log(
                    f"{name} ready at {server.url}; idle PSS {idle.pss_mib:.0f} MiB, "
                    f"idle CPU {idle.cpu_s / IDLE_S:.2f} cores"
                )
                warmups = details.setdefault("warmup", {})
                if poisson:
                    open_loop.bench_server_open_loop(
                        server, voice_name, args, references, warmups, results
                    )
                else:
                    bench_server(server, voice_name, texts, args, references, warmups, results)
        except Exception as e:  # one server failing must not lose the others' results
            meta["failures"][name] = f"{type(e).__name__}: {e}"
            _log(f"{name} failed: {type(e).__name__}: {e}")
    meta["load_average_end"] = _load_average()
    meta["finished_utc"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    meta["elapsed_s"] = time.monotonic() - started
    if poisson:
        plotted = write_open_loop_results(args.out, results, meta)
        summaries = [s for s, _ in results]
        print(open_loop.markdown_table(summaries))
        print()
        print(open_loop.capacity_table(open_loop.capacities(summaries), voice_name), end="")
    else:
        meta["reference_audio_bytes"] = references
        plotted = write_results(args.out, results, meta)
        print(markdown_table([s for s, _ in results]))
    written = f"{args.out / RESULTS}.md, .json" + (", .png" if plotted else "")
    if not plotted:
        written += " (no plot: matplotlib is not installed)"
    _log(f"wrote {written} in {meta['elapsed_s']:.0f} s")
    return 1 if meta["failures"] else 0
