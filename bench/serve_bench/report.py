"""From raw stream records to the benchmark's numbers, as a markdown table and JSON.

Summaries are computed from the kept records (never accumulated during the run), so the JSON's
raw arrivals can always be re-checked against the table. A stream that ended cleanly but with
less audio than the naive server made for the same text (the naive server cannot truncate: it
sends a whole body or an error) is counted as lost: raw PCM cannot say that it failed part way.
Where a text's audio has no one length (Piper draws its noise, hence its durations, inside its
graph), lost is not counted: None, `-` in the table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.serve_bench.client import LevelRun, StreamRecord
from bench.serve_bench.sampler import Usage


@dataclass
class LevelSummary:
    server: str
    text: str
    text_chars: int
    concurrency: int
    requests: int
    ok: int
    ttfa_p50_ms: float | None
    ttfa_p90_ms: float | None
    ttfa_p99_ms: float | None
    max_gap_ms: float | None
    rtfx: float
    audio_s: float
    wall_s: float
    underrun_streams: int
    stalled_s: float
    errors: int
    rejected: int
    lost: int | None  # None: not checkable (the server's audio length varies per request)
    peak_pss_mib: float
    peak_rss_mib: float
    processes: int
    server_cpu_s: float
    cpu_ms_per_audio_s: float | None


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) * 1000 if values else None


def lost_streams(records: list[StreamRecord], expected_bytes: int | None) -> int:
    """Clean streams that carried less audio than the reference for the same text."""
    if expected_bytes is None:
        return 0
    return sum(1 for r in records if r.ok and r.audio_bytes < expected_bytes)


def _lost(records: list[StreamRecord], expected_bytes: int | None, checkable: bool) -> int | None:
    return lost_streams(records, expected_bytes) if checkable else None


def summarize(
    server: str,
    text: str,
    text_chars: int,
    concurrency: int,
    run: LevelRun,
    usage: Usage,
    expected_bytes: int | None,
    lost_checkable: bool = True,
) -> LevelSummary:
    """One level's numbers; `lost_checkable` False where the server's audio length for a text
    varies per request (lost is then None)."""
    ok = [r for r in run.records if r.ok]
    ttfas = [r.ttfa_s for r in ok if r.ttfa_s is not None]
    underruns = [r.underruns() for r in ok]
    audio_s = sum(r.audio_s for r in ok)
    return LevelSummary(
        server=server,
        text=text,
        text_chars=text_chars,
        concurrency=concurrency,
        requests=len(run.records),
        ok=len(ok),
        ttfa_p50_ms=_percentile(ttfas, 50),
        ttfa_p90_ms=_percentile(ttfas, 90),
        ttfa_p99_ms=_percentile(ttfas, 99),
        max_gap_ms=max((r.max_gap_s() for r in ok), default=0.0) * 1000 if ok else None,
        rtfx=audio_s / run.wall_s if run.wall_s > 0 else 0.0,
        audio_s=audio_s,
        wall_s=run.wall_s,
        underrun_streams=sum(1 for n, _ in underruns if n > 0),
        stalled_s=sum(s for _, s in underruns),
        errors=sum(1 for r in run.records if r.error is not None),
        rejected=sum(1 for r in run.records if r.rejected),
        lost=_lost(run.records, expected_bytes, lost_checkable),
        peak_pss_mib=usage.pss_mib,
        peak_rss_mib=usage.rss_mib,
        processes=usage.processes,
        server_cpu_s=usage.cpu_s,
        cpu_ms_per_audio_s=usage.cpu_s / audio_s * 1000 if audio_s > 0 else None,
    )


COLUMNS: tuple[tuple[str, str], ...] = (
    ("server", "server"),
    ("text", "text (chars)"),
    ("concurrency", "conc."),
    ("requests", "req."),
    ("ttfa_p50_ms", "TTFA p50 ms"),
    ("ttfa_p90_ms", "TTFA p90 ms"),
    ("ttfa_p99_ms", "TTFA p99 ms"),
    ("max_gap_ms", "max gap ms"),
    ("rtfx", "RTFX"),
    ("underrun_streams", "underrun streams"),
    ("errors", "errors"),
    ("rejected", "rejected"),
    ("lost", "lost"),
    ("peak_pss_mib", "peak PSS MiB"),
    ("cpu_ms_per_audio_s", "server CPU ms / audio s"),
)


def _cell(summary: LevelSummary, key: str) -> str:
    value = getattr(summary, key)
    if key == "text":
        return f"{value} ({summary.text_chars})"
    if value is None:
        return "-"
    if key == "rtfx":
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.0f}"
    return str(value)


def markdown_table(summaries: list[LevelSummary]) -> str:
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_cell(s, k) for k, _ in COLUMNS) + " |" for s in summaries]
    return "\n".join(lines)


def markdown_report(summaries: list[LevelSummary], meta: dict[str, Any]) -> str:
    """The results file: how it was made, then the table."""
    head = [
        "# Serving benchmark results",
        "",
        f"`{meta['command']}` at {meta['finished_utc']} UTC on {meta['machine']}.",
        f"Voice `{meta['voice']}`; {meta['requests_rule']}; load average at start "
        f"{meta['load_average_start']}, at end {meta['load_average_end']}.",
        "",
        "TTFA: request sent to first audio byte. max gap: largest wait between two pieces of one",
        "stream. RTFX: seconds of audio received per second of wall time over the level.",
        "underrun streams: streams whose real-time playback, from the first byte, ran dry at",
        "least once. rejected: 503 with Retry-After. lost: streams that ended cleanly with less",
        "audio than the naive server (else the level's longest stream) made for the text; `-`",
        "where a server's audio length varies per request (Piper). peak PSS: the server's",
        "processes (all Ray processes for voicestack), sampled every 0.2 s during the level.",
        "server CPU: their user + system CPU time over the level per second of audio delivered.",
        "",
        *[f"- `{name}`: {line}" for name, line in meta.get("server_descriptions", {}).items()],
        "",
        markdown_table(summaries),
        "",
    ]
    return "\n".join(head)


def write_json(path: Path, runs: list[tuple[LevelSummary, LevelRun]], meta: dict[str, Any]) -> None:
    """Every summary, then every stream's raw record (arrival times and sizes) by level."""
    data = {
        "meta": meta,
        "summaries": [asdict(s) for s, _ in runs],
        "levels": [
            {"summary": asdict(s), "records": [r.as_dict() for r in run.records]} for s, run in runs
        ],
    }
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
