"""Open-loop load: requests arrive as a Poisson process at a set rate, and the capacity of a
server is the highest rate it serves in real time.

A closed loop (the levels) sends the next request only when one ends, so a slow server is sent
less: it measures a fixed number of streams, not a sustained arrival rate. Here each request is
sent at its time whatever is in flight (`client.run_open_loop`), with exponentially distributed
gaps (`poisson_schedule`), for `duration_s`; then the streams in flight are read to their end.
Texts are drawn from a length mix (texts.py `MIXES`): a service's load is mostly short replies
with the odd paragraph, not one text.

The rule (`failures`): a rate is served when the p99 TTFA is under the limit (300 ms), no
admitted stream underran, and no stream was an error, lost or shed (503). Shed streams fail the
rate too: admission must not refuse what the voice could serve, so either the limit refused
streams the voice keeps real-time (measure with `--admit-streams` above any concurrency reached,
so that the voice, not its setting, is what is measured) or the voice is past its capacity.
Either way the rate was not served. A server's capacity (`capacity_rate`) is the highest rate
served with every lower rate measured served too: a lucky pass above a failure is noise, not
capacity.

Each rate reports the mean number of concurrent streams by Little's law (the admitted streams'
seconds in flight, request sent to last byte, over the arrival window: the time average when
the load is steady) and the peak (counted exactly from the records), per core of the machine:
the streams a voice's composer held at once while every stream stayed real-time, the measure
`Composer.streams.max_active` is set from.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.serve_bench.client import (
    LevelRun,
    StreamRecord,
    Timeouts,
    run_level_sync,
    run_open_loop_sync,
)
from bench.serve_bench.launch import Server
from bench.serve_bench.report import _percentile
from bench.serve_bench.sampler import Usage, UsageSampler
from bench.serve_bench.texts import draw_mix

#: The p99 TTFA a served rate stays under, by default (--ttfa-limit-ms).
TTFA_LIMIT_MS = 300.0
#: `--find-capacity` stops once the highest served rate and the lowest failed one are this
#: close (as a ratio): finer steps measure noise more than capacity.
RESOLUTION = 1.1


def poisson_schedule(rate_per_s: float, duration_s: float, seed: int) -> list[float]:
    """Send times (seconds from the start, below `duration_s`) of a Poisson process of
    `rate_per_s`: exponential gaps of mean 1 / rate. One seeded generator of unit gaps scaled
    by 1 / rate, so a seed gives the same schedule every run, and every rate of a run the same
    pattern, compressed: rates differ in their rate, not in their luck."""
    if rate_per_s <= 0 or duration_s <= 0:
        raise ValueError(f"rate and duration must be positive, got {rate_per_s}, {duration_s}")
    rng = random.Random(f"arrivals:{seed}")
    times: list[float] = []
    at = rng.expovariate(1.0) / rate_per_s
    while at < duration_s:
        times.append(at)
        at += rng.expovariate(1.0) / rate_per_s
    return times


@dataclass
class RateRun:
    """One rate's load: the run (records in send order), and each request's text."""

    rate_per_s: float
    duration_s: float
    run: LevelRun
    kinds: list[str]
    texts: list[str]


@dataclass
class RateSummary:
    server: str
    mix: str
    rate_per_s: float  # offered: the Poisson process's rate
    duration_s: float  # the arrival window
    requests: int
    sent_per_s: float  # this schedule's requests over the window (a draw of the offered rate)
    ok: int
    completed_per_s: float  # clean admitted streams over the window
    rejected: int  # 503 with Retry-After: shed by admission
    errors: int
    lost: int | None  # None: not checkable (the server's audio length varies per request)
    ttfa_p50_ms: float | None
    ttfa_p95_ms: float | None
    ttfa_p99_ms: float | None
    max_gap_ms: float | None
    underrun_streams: int
    stalled_s: float
    mean_stream_s: float | None  # request sent to last byte, admitted streams
    mean_concurrent: float  # Little's law: admitted stream-seconds / window
    peak_concurrent: int
    cpu_cores: int
    concurrent_per_core: float  # mean_concurrent / cpu_cores
    audio_s: float
    wall_s: float  # the window and the drain of the streams in flight
    send_lag_max_ms: float  # the latest a request was sent after its time (client overloaded)
    peak_pss_mib: float
    server_cpu_s: float
    cpu_ms_per_audio_s: float | None
    ttfa_limit_ms: float
    failed: list[str] = field(default_factory=list)  # why the rate was not served; [] served

    @property
    def served(self) -> bool:
        return not self.failed


def failures(
    ttfa_p99_ms: float | None,
    underrun_streams: int,
    errors: int,
    lost: int | None,
    rejected: int,
    ok: int,
    ttfa_limit_ms: float = TTFA_LIMIT_MS,
) -> list[str]:
    """Why a rate was not served, one phrase a reason; empty when it was. `lost` None (not
    checkable: Piper's lengths vary) counts as none lost; its errors still count."""
    out: list[str] = []
    if ok == 0 or ttfa_p99_ms is None:
        out.append("no stream completed")
    elif ttfa_p99_ms >= ttfa_limit_ms:
        out.append(f"p99 TTFA {ttfa_p99_ms:.0f} ms >= {ttfa_limit_ms:.0f}")
    if underrun_streams:
        out.append(f"{underrun_streams} underrun")
    if errors:
        out.append(f"{errors} errors")
    if lost:
        out.append(f"{lost} lost")
    if rejected:
        out.append(f"{rejected} shed (503)")
    return out


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals (start, end) open at one time; one ending as another starts is not
    an overlap."""
    events = sorted([(end, -1) for _, end in intervals] + [(start, 1) for start, _ in intervals])
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def summarize_rate(
    server: str,
    mix: str,
    rate: RateRun,
    usage: Usage,
    references: dict[str, int] | None,
    ttfa_limit_ms: float = TTFA_LIMIT_MS,
    cpu_cores: int | None = None,
) -> RateSummary:
    """One rate's numbers; `references` (text -> audio bytes of a whole stream) tells a lost
    stream from a complete one, None where the server's lengths vary (lost is then None)."""
    records, window = rate.run.records, rate.duration_s
    ok = [r for r in records if r.ok]
    admitted = [r for r in records if not r.rejected]
    ttfas = [r.ttfa_s for r in ok if r.ttfa_s is not None]
    underruns = [r.underruns() for r in ok]
    audio_s = sum(r.audio_s for r in ok)
    lost = None
    if references is not None:
        lost = sum(
            1
            for r, text in zip(records, rate.texts, strict=True)
            if r.ok and r.audio_bytes < references.get(text, 0)
        )
    durations = [r.ended_s - r.started_s for r in admitted]
    mean_concurrent = sum(durations) / window
    cores = cpu_cores or os.cpu_count() or 1
    lags = [r.started_s - due for r, due in zip(records, rate.run.scheduled_s, strict=True)]
    p99 = _percentile(ttfas, 99)
    underrun_streams = sum(1 for n, _ in underruns if n > 0)
    errors = sum(1 for r in records if r.error is not None)
    rejected = sum(1 for r in records if r.rejected)
    return RateSummary(
        server=server,
        mix=mix,
        rate_per_s=rate.rate_per_s,
        duration_s=window,
        requests=len(records),
        sent_per_s=len(records) / window,
        ok=len(ok),
        completed_per_s=len(ok) / window,
        rejected=rejected,
        errors=errors,
        lost=lost,
        ttfa_p50_ms=_percentile(ttfas, 50),
        ttfa_p95_ms=_percentile(ttfas, 95),
        ttfa_p99_ms=p99,
        max_gap_ms=max((r.max_gap_s() for r in ok), default=0.0) * 1000 if ok else None,
        underrun_streams=underrun_streams,
        stalled_s=sum(s for _, s in underruns),
        mean_stream_s=float(np.mean(durations)) if durations else None,
        mean_concurrent=mean_concurrent,
        peak_concurrent=peak_overlap([(r.started_s, r.ended_s) for r in admitted]),
        cpu_cores=cores,
        concurrent_per_core=mean_concurrent / cores,
        audio_s=audio_s,
        wall_s=rate.run.wall_s,
        send_lag_max_ms=max(lags, default=0.0) * 1000,
        peak_pss_mib=usage.pss_mib,
        server_cpu_s=usage.cpu_s,
        cpu_ms_per_audio_s=usage.cpu_s / audio_s * 1000 if audio_s > 0 else None,
        ttfa_limit_ms=ttfa_limit_ms,
        failed=failures(p99, underrun_streams, errors, lost, rejected, len(ok), ttfa_limit_ms),
    )


def capacity_rate(tried: list[tuple[float, bool]]) -> float | None:
    """The highest rate served (rate, served) with every lower rate tried served too; None
    when the lowest rate tried failed (or none was)."""
    best = None
    for rate, served in sorted(tried):
        if not served:
            break
        best = rate
    return best


def _round(rate: float) -> float:
    return float(f"{rate:.3g}")


def next_rate(tried: list[tuple[float, bool]], start: float, max_steps: int) -> float | None:
    """The next rate `--find-capacity` measures, None when done: `start`, then doubling while
    every rate is served (halving while none is), then bisection between the highest served
    rate and the lowest failed one until they are within RESOLUTION, at most `max_steps`
    rates in all."""
    if not tried:
        return start
    if len(tried) >= max_steps:
        return None
    low = capacity_rate(tried)
    failed = [rate for rate, served in tried if not served and (low is None or rate > low)]
    if not failed:
        return _round(max(rate for rate, _ in tried) * 2)
    high = min(failed)
    if low is None:
        return _round(high / 2)
    if high <= low * RESOLUTION:
        return None
    middle = _round((low + high) / 2)
    return None if middle in (low, high) else middle


@dataclass
class Capacity:
    """A server's capacity from its rates: `at` the summary of the highest rate served (None:
    not even the lowest), `above` the lowest rate above it that failed (None: no rate failed,
    so the capacity is at least `at`'s rate, not known)."""

    server: str
    at: RateSummary | None
    above: RateSummary | None


def capacities(summaries: list[RateSummary]) -> list[Capacity]:
    """Each server's capacity, in the order the servers ran."""
    out: list[Capacity] = []
    for server in dict.fromkeys(s.server for s in summaries):
        rows = sorted((s for s in summaries if s.server == server), key=lambda s: s.rate_per_s)
        rate = capacity_rate([(s.rate_per_s, s.served) for s in rows])
        at = next((s for s in rows if s.rate_per_s == rate), None)
        above = next(
            (s for s in rows if not s.served and (rate is None or s.rate_per_s > rate)), None
        )
        out.append(Capacity(server, at, above))
    return out


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _payload(voice: str, text: str, seed: int) -> dict[str, Any]:
    payload: dict[str, Any] = {"voice": voice, "text": text, "format": "pcm"}
    if seed >= 0:
        payload["seed"] = seed  # ignored by piper-stream, not sent to piper-http
    return payload


def measure_rate(
    server: Server, voice_name: str, rate_per_s: float, args: argparse.Namespace
) -> tuple[RateRun, Usage]:
    """One rate against a running server, its processes sampled throughout."""
    offsets = poisson_schedule(rate_per_s, args.duration_s, args.schedule_seed)
    drawn = draw_mix(args.mix, len(offsets), args.schedule_seed)
    payloads = [_payload(voice_name, text, args.seed) for _, text in drawn]
    timeouts = Timeouts(args.timeout, args.stall_timeout)
    with UsageSampler(server.processes) as sampler:
        run = run_open_loop_sync(server.url, payloads, offsets, timeouts, server.protocol)
    rate = RateRun(rate_per_s, args.duration_s, run, [k for k, _ in drawn], [t for _, t in drawn])
    return rate, sampler.usage


def _longest(rates: list[RateRun], warm: list[tuple[str, StreamRecord]]) -> dict[str, int]:
    """Text -> the most audio bytes a clean stream of it carried."""
    out: dict[str, int] = {}
    pairs = [(t, r) for rate in rates for t, r in zip(rate.texts, rate.run.records, strict=True)]
    for text, record in [*pairs, *warm]:
        if record.ok:
            out[text] = max(out.get(text, 0), record.audio_bytes)
    return out


def bench_server_open_loop(
    server: Server,
    voice_name: str,
    args: argparse.Namespace,
    references: dict[str, int],
    warmups: dict[str, Any],
    results: list[tuple[RateSummary, RateRun]],
) -> None:
    """Every rate (`args.rates`, or the `--find-capacity` search from its first) against one
    server, appended to `results`; `references` (text -> bytes) is filled by the naive server,
    whose streams cannot be truncated.

    One text of each kind is first synthesized once, unmeasured (times in `warmups`), as in the
    closed loop. A stream is lost when it carried less audio than the naive server made for its
    text, else than the longest clean stream of that text on this server, over all its rates
    (every rate sends the same texts first, so most texts are seen several times). The verdict
    logged after each rate (and steering the search) uses the streams so far; the summaries
    kept are recomputed with all of them."""
    timeouts = Timeouts(args.timeout, args.stall_timeout)
    warm: list[tuple[str, StreamRecord]] = []
    first_of_kind: dict[str, str] = {}
    for kind, text in draw_mix(args.mix, 200, args.schedule_seed):
        first_of_kind.setdefault(kind, text)
    for kind, text in first_of_kind.items():
        payload = _payload(voice_name, text, args.seed)
        record = run_level_sync(server.url, payload, 1, 1, timeouts, server.protocol).records[0]
        warm.append((text, record))
        warmups[kind] = {"ttfa_s": record.ttfa_s, "total_s": record.ended_s, "error": record.error}
    rates: list[tuple[RateRun, Usage]] = []

    def refs() -> dict[str, int] | None:
        if not server.reproducible:
            return None
        return {**_longest([r for r, _ in rates], warm), **references}

    tried: list[tuple[float, bool]] = []
    planned = list(args.rates)
    while True:
        if args.find_capacity:
            rate_per_s = next_rate(tried, args.rates[0], args.max_steps)
        else:
            rate_per_s = planned.pop(0) if planned else None
        if rate_per_s is None:
            break
        rate, usage = measure_rate(server, voice_name, rate_per_s, args)
        rates.append((rate, usage))
        summary = summarize_rate(server.name, args.mix, rate, usage, refs(), args.ttfa_limit_ms)
        tried.append((rate_per_s, summary.served))
        verdict = "served" if summary.served else "not served: " + ", ".join(summary.failed)
        _log(f"{server.name} {rate_per_s:g}/s: {markdown_table([summary]).split(chr(10))[-1]}")
        _log(f"{server.name} {rate_per_s:g}/s {verdict}")
    if server.name == "naive":
        references.update(_longest([r for r, _ in rates], warm))
    final = refs()
    for rate, usage in rates:
        summary = summarize_rate(server.name, args.mix, rate, usage, final, args.ttfa_limit_ms)
        results.append((summary, rate))


COLUMNS: tuple[tuple[str, str], ...] = (
    ("server", "server"),
    ("rate_per_s", "offered /s"),
    ("requests", "req."),
    ("completed_per_s", "completed /s"),
    ("ttfa_p50_ms", "TTFA p50 ms"),
    ("ttfa_p95_ms", "TTFA p95 ms"),
    ("ttfa_p99_ms", "TTFA p99 ms"),
    ("max_gap_ms", "max gap ms"),
    ("underrun_streams", "underrun streams"),
    ("errors", "errors"),
    ("lost", "lost"),
    ("rejected", "shed (503)"),
    ("mean_concurrent", "mean conc."),
    ("peak_concurrent", "peak conc."),
    ("concurrent_per_core", "conc. / core"),
    ("send_lag_max_ms", "send lag ms"),
    ("cpu_ms_per_audio_s", "server CPU ms / audio s"),
    ("failed", "served"),
)


def _cell(summary: RateSummary, key: str) -> str:
    value = getattr(summary, key)
    if key == "failed":
        return "yes" if not value else "no: " + ", ".join(value)
    if value is None:
        return "-"
    if key in ("rate_per_s",):
        return f"{value:g}"
    if key in ("completed_per_s", "mean_concurrent", "concurrent_per_core"):
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.0f}"
    return str(value)


def markdown_table(summaries: list[RateSummary]) -> str:
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_cell(s, k) for k, _ in COLUMNS) + " |" for s in summaries]
    return "\n".join(lines)


def capacity_table(found: list[Capacity], voice: str) -> str:
    """One row per server: its capacity as streams per second and concurrent streams per core,
    and the rate above it that failed, with why."""
    lines = [
        "| server | voice | capacity (streams/s) | completed /s | TTFA p99 ms | mean conc. | "
        "peak conc. | conc. / core | next rate failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in found:
        above = (
            f"{c.above.rate_per_s:g}/s: {', '.join(c.above.failed)}"
            if c.above is not None
            else "none failed: capacity at least this"
        )
        if c.at is None:
            lines.append(
                f"| {c.server} | {voice} | below the lowest rate | - | - | - | - | - | {above} |"
            )
            continue
        a = c.at
        bound = "" if c.above is not None else ">= "
        lines.append(
            f"| {c.server} | {voice} | {bound}{a.rate_per_s:g} | {a.completed_per_s:.2f} | "
            f"{_cell(a, 'ttfa_p99_ms')} | {a.mean_concurrent:.2f} | {a.peak_concurrent} | "
            f"{a.concurrent_per_core:.2f} | {above} |"
        )
    return "\n".join(lines) + "\n"


def markdown_report(summaries: list[RateSummary], meta: dict[str, Any]) -> str:
    """The results file of an open-loop run: how it was made, every rate, the capacities."""
    limit = meta["ttfa_limit_ms"]
    head = [
        "# Serving benchmark results: open loop",
        "",
        f"`{meta['command']}` at {meta['finished_utc']} UTC on {meta['machine']}.",
        f"Voice `{meta['voice']}`; Poisson arrivals for {meta['duration_s']:g} s a rate, texts "
        f"of mix `{meta['mix']}` ({meta['mix_shares']}), schedule seed {meta['schedule_seed']}; "
        f"admission {meta['admission']}; load average at start {meta['load_average_start']}, "
        f"at end {meta['load_average_end']}.",
        "",
        "offered: the Poisson rate; req.: requests this schedule sent in the window.",
        "completed: clean streams per second of the window. TTFA: request sent to first audio",
        "byte (clean streams). underrun streams: admitted streams whose real-time playback ran",
        "dry at least once. lost: clean streams with less audio than the naive server (else this",
        "server's longest stream of the same text) made. shed: 503 with Retry-After. mean conc.:",
        "Little's law, admitted streams' seconds in flight (sent to last byte) over the window;",
        f"peak: the most in flight at once; per core: mean over {meta['cpu_cores']} cores",
        "(os.cpu_count()). send lag: the latest a request left after its time (the client",
        f"falling behind). A rate is served when p99 TTFA < {limit:g} ms and no stream underran,",
        "failed, was lost or shed.",
        "",
        *[f"- `{name}`: {line}" for name, line in meta.get("server_descriptions", {}).items()],
        "",
        markdown_table(summaries),
        "",
        "## Capacity",
        "",
        "The highest offered rate served, every lower rate measured served too (a pass above a",
        "failure is taken for noise); shed streams fail a rate, as admission must not refuse",
        "what the voice could serve. `>=`: no rate failed, so the capacity is not bounded.",
        "",
        capacity_table(capacities(summaries), meta["voice"]),
    ]
    return "\n".join(head)


def write_json(path: Path, runs: list[tuple[RateSummary, RateRun]], meta: dict[str, Any]) -> None:
    """Meta, every rate's summary, each server's capacity, then every stream's raw record with
    its send time, kind and text (an index into `texts`)."""
    summaries = [s for s, _ in runs]
    texts = list(dict.fromkeys(t for _, rate in runs for t in rate.texts))
    index = {t: i for i, t in enumerate(texts)}

    def record(r: StreamRecord, due: float, kind: str, text: str) -> dict[str, Any]:
        return {**r.as_dict(), "scheduled_s": due, "kind": kind, "text_index": index[text]}

    data = {
        "meta": meta,
        "summaries": [{**asdict(s), "served": s.served} for s in summaries],
        "capacity": [
            {
                "server": c.server,
                "rate_per_s": c.at.rate_per_s if c.at else None,
                "bounded": c.above is not None,
                "completed_per_s": c.at.completed_per_s if c.at else None,
                "mean_concurrent": c.at.mean_concurrent if c.at else None,
                "peak_concurrent": c.at.peak_concurrent if c.at else None,
                "concurrent_per_core": c.at.concurrent_per_core if c.at else None,
                "failed_above": (
                    {"rate_per_s": c.above.rate_per_s, "failed": c.above.failed}
                    if c.above
                    else None
                ),
            }
            for c in capacities(summaries)
        ],
        "texts": texts,
        "rates": [
            {
                "summary": asdict(s),
                "records": [
                    record(r, due, kind, text)
                    for r, due, kind, text in zip(
                        rate.run.records, rate.run.scheduled_s, rate.kinds, rate.texts, strict=True
                    )
                ],
            }
            for s, rate in runs
        ],
    }
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
