"""Issue 5's goals, read off one run's summaries: each as a ratio, the figure, and whether it
holds. A goal whose levels were not run is reported as not measured, never as met.

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


def goals(summaries: list[dict[str, Any]]) -> list[Goal]:
    out: list[Goal] = []
    for name, top, bottom, key, holds, unit in RATIOS:
        a, b = _find(summaries, *top), _find(summaries, *bottom)
        if a is None or b is None or not b[key]:
            out.append(Goal(name, "not measured", None))
            continue
        value = a[key] / b[key]
        digits = 0 if unit else 1
        measured = f"{a[key]:.{digits}f} / {b[key]:.{digits}f}{unit} = {value:.2f}"
        out.append(Goal(name, measured, holds(value)))
    vs = "voicestack"
    for server in (vs, "voicestack-unbatched"):
        rows = [s for s in summaries if s["server"] == server]
        if not rows:
            out.append(Goal(f"{server}: zero errors and lost streams", "not measured", None))
            continue
        errors = sum(s["errors"] for s in rows)
        lost = sum(s["lost"] for s in rows)
        rejected = sum(s["rejected"] for s in rows)
        out.append(
            Goal(
                f"{server}: zero errors and zero lost streams at every level; excess gets 503",
                f"{errors} errors, {lost} lost, {rejected} rejected with Retry-After "
                f"over {len(rows)} levels",
                errors == 0 and lost == 0,
            )
        )
    return out


def markdown(rows: list[Goal]) -> str:
    mark = {True: "met", False: "not met", None: "-"}
    lines = ["| goal (issue 5) | measured | |", "|---|---|---|"]
    lines += [f"| {g.name} | {g.measured} | {mark[g.met]} |" for g in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    data = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    print(markdown(goals(data["summaries"])), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
