"""The benchmark's two pictures, from the level summaries, in one PNG:

- TTFA p50 against text length at concurrency 1: does the first audio wait for the whole text?
- RTFX against concurrency for the 400-character text (else the one-sentence text, else the
  first text run): how much audio the machine keeps making as streams are added.

matplotlib is imported only here, so a machine without it still runs the benchmark (and says
that the plot was skipped).
"""

from __future__ import annotations

from pathlib import Path

from bench.serve_bench.report import LevelSummary

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
