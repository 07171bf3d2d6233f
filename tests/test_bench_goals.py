"""The serving benchmark checks its serving goals off one run's summaries: a ratio past its limit
is not met, and a goal whose levels were not run is never reported as met."""

from bench.serve_bench.goals import goals


def _level(server, text, concurrency, **figures):
    base = {"ttfa_p50_ms": 100.0, "ttfa_p99_ms": 200.0, "rtfx": 20.0, "errors": 0, "lost": 0}
    return {
        "server": server,
        "text": text,
        "concurrency": concurrency,
        "rejected": 0,
        **base,
        **figures,
    }


def test_ratios_are_checked_against_their_limits_and_missing_levels_are_not_met():
    summaries = [
        _level("voicestack", "sentence", 1, ttfa_p50_ms=100.0),
        _level("voicestack", "2000", 1, ttfa_p50_ms=140.0),  # 1.4 > 1.3
        _level("naive", "2000", 1, ttfa_p50_ms=7000.0),  # 50x
        _level("voicestack", "400", 16, rtfx=21.0, errors=1),
        _level("streaming", "400", 16, rtfx=25.0),
    ]
    by_name = {g.name.split(" <=")[0].split(" >=")[0]: g for g in goals(summaries)}
    assert by_name["TTFA, 2,000 characters / one sentence (voicestack, 1 stream)"].met is False
    assert by_name["TTFA, naive / voicestack, 2,000 characters, 1 stream"].met is True
    assert by_name["RTFX, voicestack / in-process streaming, 400 characters, 16 streams"].met
    batching = by_name["RTFX, batching on / off, 400 characters, 16 streams"]
    assert (batching.met, batching.measured) == (None, "not measured")
    errors = [g for g in goals(summaries) if g.name.startswith("voicestack: zero errors")]
    assert errors[0].met is False and errors[0].measured.startswith("1 errors")
