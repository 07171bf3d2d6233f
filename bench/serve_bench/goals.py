"""The goals of a run, read off its summaries: each as a ratio, the figure, and whether it
holds. A goal whose levels were not run is reported as not measured, which is not met.

Two tables (`tables` picks those a run's servers measure):

- serving (`goals`): voicestack against the naive and in-process streaming servers, and
  batching on against off;
- piper (`piper_goals`): voicestack against Piper's own engine on the same Piper voice
  (`--voice joe`): `piper-stream`, sentence by sentence, and `piper-http`, Piper's server.

    .venv/bin/python -m bench.serve_bench.goals out/serve-bench/bench_results.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Goal:
    name: str
    measured: str
    met: bool | None  # None: the levels it needs were not run


def _find(summaries: Iterable[dict], server: str, text: str, concurrency: int) -> dict | None:
    for s in summaries:
        if (s["server"], s["text"], s["concurrency"]) == (server, text, concurrency):
            return s
    return None


#: (goal, numerator level, denominator level, summary key, holds, unit): each a ratio of two
#: levels of the same run; a level is (server, text, concurrency).
RATIOS: list[tuple[str, tuple, tuple, str, Callable[[float], bool], str]] = [
    (
        "TTFA, 2,000 characters / one sentence (voicestack, 1 stream) <= 1.3",
        ("voicestack", "2000", 1),
        ("voicestack", "sentence", 1),
        "ttfa_p50_ms",
        lambda r: r <= 1.3,
        " ms",
    ),
    (
        "TTFA, naive / voicestack, 2,000 characters, 1 stream >= 20",
        ("naive", "2000", 1),
        ("voicestack", "2000", 1),
        "ttfa_p50_ms",
        lambda r: r >= 20,
        " ms",
    ),
    (
        "RTFX, voicestack / in-process streaming, 400 characters, 16 streams >= 0.8",
        ("voicestack", "400", 16),
        ("streaming", "400", 16),
        "rtfx",
        lambda r: r >= 0.8,
        "",
    ),
    (
        "RTFX, batching on / off, 400 characters, 16 streams >= 1.5",
        ("voicestack", "400", 16),
        ("voicestack-unbatched", "400", 16),
        "rtfx",
        lambda r: r >= 1.5,
        "",
    ),
    (
        "p99 TTFA, batching on / off, 400 characters, 16 streams <= 2",
        ("voicestack", "400", 16),
        ("voicestack-unbatched", "400", 16),
        "ttfa_p99_ms",
        lambda r: r <= 2,
        " ms",
    ),
]


#: The comparison with Piper's own engine, same voice: a long first sentence is where
#: sentence-by-sentence streaming waits longest for its first sound; a whole-file server waits
#: for the whole text; and one-sentence requests at 16 streams, where there is nothing to stream
#: within, is where voicestack's chunking must not cost throughput.
PIPER_RATIOS: list[tuple[str, tuple, tuple, str, Callable[[float], bool], str]] = [
    (
        "TTFA, voicestack / piper-stream, long first sentence, 1 stream <= 0.5",
        ("voicestack", "long-first-sentence", 1),
        ("piper-stream", "long-first-sentence", 1),
        "ttfa_p50_ms",
        lambda r: r <= 0.5,
        " ms",
    ),
    (
        "TTFA, voicestack / piper-http, 2,000 characters, 1 stream <= 0.2",
        ("voicestack", "2000", 1),
        ("piper-http", "2000", 1),
        "ttfa_p50_ms",
        lambda r: r <= 0.2,
        " ms",
    ),
    (
        "RTFX, voicestack / piper-stream, one sentence, 16 streams >= 1",
        ("voicestack", "sentence", 16),
        ("piper-stream", "sentence", 16),
        "rtfx",
        lambda r: r >= 1.0,
        "",
    ),
]


def _ratios(summaries: list[dict[str, Any]], ratios: list[tuple]) -> list[Goal]:
    out: list[Goal] = []
    for name, top, bottom, key, holds, unit in ratios:
        a, b = _find(summaries, *top), _find(summaries, *bottom)
        if a is None or b is None or not b[key]:
            out.append(Goal(name, "not measured", None))
            continue
        value = a[key] / b[key]
        digits = 0 if unit else 1
        measured = f"{a[key]:.{digits}f} / {b[key]:.{digits}f}{unit} = {value:.2f}"
        out.append(Goal(name, measured, holds(value)))
    return out


def _no_errors(summaries: list[dict[str, Any]], server: str) -> Goal:
    rows = [s for s in summaries if s["server"] == server]
    if not rows:
        return Goal(f"{server}: zero errors and lost streams", "not measured", None)
    errors = sum(s["errors"] for s in rows)
    lost = sum(s["lost"] or 0 for s in rows)
    rejected = sum(s["rejected"] for s in rows)
    return Goal(
        f"{server}: zero errors and zero lost streams at every level; excess gets 503",
        f"{errors} errors, {lost} lost, {rejected} rejected with Retry-After "
        f"over {len(rows)} levels",
        errors == 0 and lost == 0,
    )


def goals(summaries: list[dict[str, Any]]) -> list[Goal]:
    """The serving goals: voicestack against the servers a user would write instead."""
    out = _ratios(summaries, RATIOS)
    out += [_no_errors(summaries, server) for server in ("voicestack", "voicestack-unbatched")]
    return out


def piper_goals(summaries: list[dict[str, Any]]) -> list[Goal]:
    """The goals against Piper's own engine; the Piper servers' errors are listed too (a
    ratio over failed streams compares nothing)."""
    out = _ratios(summaries, PIPER_RATIOS)
    out.append(_no_errors(summaries, "voicestack"))
    for server in ("piper-stream", "piper-http"):
        rows = [s for s in summaries if s["server"] == server]
        errors = sum(s["errors"] for s in rows)
        measured = f"{errors} errors over {len(rows)} levels" if rows else "not measured"
        out.append(
            Goal(f"{server}: zero errors at every level", measured, errors == 0 if rows else None)
        )
    return out


#: Goal tables: title, the goals, and the servers (besides voicestack) that call for the table.
TABLES: list[tuple[str, Callable[[list[dict[str, Any]]], list[Goal]], frozenset[str]]] = [
    ("serving", goals, frozenset({"naive", "streaming", "voicestack-unbatched"})),
    ("piper", piper_goals, frozenset({"piper-stream", "piper-http"})),
]


def tables(summaries: list[dict[str, Any]]) -> list[tuple[str, list[Goal]]]:
    """The goal tables this run's servers call for: a table when one of its own servers ran;
    the serving goals when only voicestack did."""
    ran = {s["server"] for s in summaries}
    chosen = [(title, make) for title, make, own in TABLES if ran & own]
    if not chosen:
        chosen = [(TABLES[0][0], TABLES[0][1])]
    return [(title, make(summaries)) for title, make in chosen]


def markdown(rows: list[Goal], title: str = "serving") -> str:
    mark = {True: "met", False: "not met", None: "not met (not measured)"}
    lines = [f"| goal ({title}) | measured | |", "|---|---|---|"]
    lines += [f"| {g.name} | {g.measured} | {mark[g.met]} |" for g in rows]
    return "\n".join(lines) + "\n"


def markdown_tables(summaries: list[dict[str, Any]]) -> str:
    """Every goal table the run calls for, one after another."""
    return "\n".join(markdown(rows, title) for title, rows in tables(summaries))


def main(argv: list[str]) -> int:
    data = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    print(markdown_tables(data["summaries"]), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
