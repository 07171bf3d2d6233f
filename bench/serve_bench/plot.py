"""The benchmark's pictures. The closed loop's two, from the level summaries, in one PNG:

- TTFA p50 against text length at concurrency 1: does the first audio wait for the whole text?
- RTFX against concurrency for the 400-character text (else the one-sentence text, else the
  first text run): how much audio the machine keeps making as streams are added.

The open loop's (`write_open_loop_plot`): TTFA percentiles and concurrent streams against the
offered arrival rate, per server.

matplotlib is imported only here, so a machine without it still runs the benchmark (and says
that the plot was skipped).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from bench.serve_bench.report import LevelSummary

if TYPE_CHECKING:
    from bench.serve_bench.open_loop import RateSummary

#: Text whose RTFX is plotted against concurrency, when it was run.
RTFX_TEXT = "400"


def rtfx_text(summaries: list[LevelSummary]) -> str:
    """RTFX_TEXT, else the one-sentence text, else the first text run."""
    run = list(dict.fromkeys(s.text for s in summaries))
    for text in (RTFX_TEXT, "sentence"):
        if text in run:
            return text
    return run[0] if run else RTFX_TEXT


def _series(
    summaries: list[LevelSummary], server: str, x_key: str, y_key: str, **match: object
) -> tuple[list[float], list[float]]:
    points = sorted(
        (getattr(s, x_key), getattr(s, y_key))
        for s in summaries
        if s.server == server
        and getattr(s, y_key) is not None
        and all(getattr(s, k) == v for k, v in match.items())
    )
    return [x for x, _ in points], [y for _, y in points]


def write_plot(summaries: list[LevelSummary], path: Path, title: str) -> bool:
    """Write the PNG; False (and nothing written) when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    servers = list(dict.fromkeys(s.server for s in summaries))
    throughput_text = rtfx_text(summaries)
    chars = next((s.text_chars for s in summaries if s.text == throughput_text), 0)
    figure, (ttfa, rtfx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for server in servers:
        x, y = _series(summaries, server, "text_chars", "ttfa_p50_ms", concurrency=1)
        if x:
            ttfa.plot(x, y, marker="o", label=server)
        x, y = _series(summaries, server, "concurrency", "rtfx", text=throughput_text)
        if x:
            rtfx.plot(x, y, marker="o", label=server)
    ttfa.set(
        title="Time to first audio, concurrency 1",
        xlabel="text length (characters)",
        ylabel="TTFA p50 (ms)",
        yscale="log",
    )
    rtfx.set(
        title=f"Throughput, text {throughput_text} ({chars} characters)",
        xlabel="concurrent streams",
        ylabel="RTFX (s of audio / s of wall time)",
    )
    rtfx.set_xscale("log", base=2)
    rtfx.set_xticks(sorted({s.concurrency for s in summaries}))
    rtfx.xaxis.set_major_formatter(ticker.ScalarFormatter())
    rtfx.xaxis.set_minor_formatter(ticker.NullFormatter())
    rtfx.set_ylim(bottom=0)
    for axes in (ttfa, rtfx):
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend()
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


#: Line style of each TTFA percentile in the open-loop plot.
PERCENTILES: tuple[tuple[str, str, str], ...] = (
    ("ttfa_p50_ms", "p50", ":"),
    ("ttfa_p95_ms", "p95", "--"),
    ("ttfa_p99_ms", "p99", "-"),
)


def _two_and_five(value: float, _: object = None) -> str:
    """A log axis's minor label at 2 and 5 times a power of ten only (200, 500), so a wide
    range stays legible."""
    if value <= 0:
        return ""
    leading = round(value / 10 ** math.floor(math.log10(value)))
    return f"{value:g}" if leading in (2, 5) else ""


def write_open_loop_plot(
    summaries: list[RateSummary], path: Path, title: str, ttfa_limit_ms: float
) -> bool:
    """The open-loop PNG: TTFA p50/p95/p99 against offered rate, one colour per server, the
    limit drawn across (where p99 crosses it is the capacity, unless underruns, errors or shed
    streams came first); and mean and peak concurrent streams against offered rate. False (and
    nothing written) when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    servers = list(dict.fromkeys(s.server for s in summaries))
    figure, (ttfa, streams) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, server in enumerate(servers):
        colour = colours[i % len(colours)]
        rows = sorted((s for s in summaries if s.server == server), key=lambda s: s.rate_per_s)
        for key, name, style in PERCENTILES:
            points = [(s.rate_per_s, getattr(s, key)) for s in rows if getattr(s, key) is not None]
            if points:
                ttfa.plot(
                    *zip(*points, strict=True),
                    style,
                    marker="o",
                    color=colour,
                    label=f"{server} {name}",
                )
        rates = [s.rate_per_s for s in rows]
        streams.plot(
            rates,
            [s.mean_concurrent for s in rows],
            "-",
            marker="o",
            color=colour,
            label=f"{server} mean",
        )
        streams.plot(
            rates,
            [s.peak_concurrent for s in rows],
            "--",
            marker="^",
            color=colour,
            label=f"{server} peak",
        )
        failed = [s for s in rows if not s.served and s.ttfa_p99_ms is not None]
        if failed:
            ttfa.scatter(
                [s.rate_per_s for s in failed],
                [s.ttfa_p99_ms for s in failed],
                marker="x",
                s=80,
                color=colour,
                zorder=3,
            )
    ttfa.axhline(ttfa_limit_ms, color="grey", linewidth=1, label=f"limit {ttfa_limit_ms:g} ms")
    ttfa.set(
        title="Time to first audio, Poisson arrivals (x: rate not served)",
        xlabel="offered rate (streams / s)",
        ylabel="TTFA (ms)",
        yscale="log",
    )
    streams.set(
        title="Concurrent streams (Little's law mean; peak)",
        xlabel="offered rate (streams / s)",
        ylabel="streams in flight",
    )
    ttfa.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ttfa.yaxis.set_minor_formatter(ticker.FuncFormatter(_two_and_five))
    streams.set_ylim(bottom=0)
    for axes in (ttfa, streams):
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True
