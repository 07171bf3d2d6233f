"""The serving benchmark's open loop, without a server: the Poisson schedule keeps its rate and
its seed, the text mix keeps its shares and lengths, and the capacity rule and search pick the
rate the summaries call for (a lucky pass above a failure is not capacity; shed streams fail a
rate)."""

from collections import Counter

import numpy as np
import pytest

from bench.serve_bench.client import LevelRun, StreamRecord
from bench.serve_bench.open_loop import (
    RateRun,
    capacities,
    capacity_rate,
    failures,
    next_rate,
    peak_overlap,
    poisson_schedule,
    summarize_rate,
)
from bench.serve_bench.sampler import Usage
from bench.serve_bench.texts import MIXES, PARAGRAPH_CHARS, draw_mix

RATE_HZ = 16000


def test_poisson_schedule_has_its_mean_rate_and_exponential_gaps_and_repeats_for_a_seed():
    times = poisson_schedule(4.0, 2500.0, seed=3)
    assert len(times) / 2500.0 == pytest.approx(4.0, rel=0.05)
    gaps = np.diff([0.0, *times])
    assert gaps.mean() == pytest.approx(0.25, rel=0.05)
    assert gaps.std() == pytest.approx(0.25, rel=0.1)  # exponential: std = mean
    assert all(0 < t < 2500.0 for t in times) and times == sorted(times)
    assert poisson_schedule(4.0, 2500.0, seed=3) == times
    assert poisson_schedule(4.0, 2500.0, seed=4) != times
    # every rate of a run has the same pattern, compressed: rate differs, luck does not
    doubled = poisson_schedule(8.0, 100.0, seed=3)
    assert doubled == pytest.approx([t / 2 for t in times if t < 200.0])


def test_the_assistant_mix_has_its_stated_shares_and_lengths_and_repeats_for_a_seed():
    drawn = draw_mix("assistant", 20000, seed=0)
    counts = Counter(kind for kind, _ in drawn)
    for kind, share in MIXES["assistant"].items():
        assert counts[kind] / len(drawn) == pytest.approx(share, abs=0.015)
    lengths = {kind: [len(t) for k, t in drawn if k == kind] for kind in counts}
    assert min(lengths["short"]) >= 20 and max(lengths["short"]) <= 80
    assert min(lengths["sentences"]) >= 100 and max(lengths["sentences"]) < 400
    low, high = PARAGRAPH_CHARS
    assert low <= min(lengths["paragraph"]) and max(lengths["paragraph"]) <= high
    assert draw_mix("assistant", 50, seed=0) == drawn[:50]  # a longer draw starts the same
    assert draw_mix("assistant", 50, seed=1) != drawn[:50]
    assert len(set(draw_mix("sentence", 3, seed=0))) == 1


def _record(start: float, ttfa: float, audio_s: float = 1.0, **kw) -> StreamRecord:
    """A clean stream sent at `start`: its audio arrives at once at `ttfa` (no underrun), and
    it ends then."""
    size = int(audio_s * RATE_HZ) * 2
    record = StreamRecord(started_s=start, ended_s=start + ttfa, status=200, sample_rate=RATE_HZ)
    record.arrivals = [(ttfa, size)]
    for key, value in kw.items():
        setattr(record, key, value)
    return record


def _rate(rate: float, ttfa: float, n: int = 100, **last) -> RateRun:
    """`n` streams of one text at `rate`: every TTFA `ttfa`; the last one altered by `last`."""
    starts = [i / rate for i in range(n)]
    records = [_record(s, ttfa) for s in starts]
    if last:
        records[-1] = _record(starts[-1], ttfa, **last)
    run = LevelRun(records, starts[-1] + ttfa, scheduled_s=starts)
    return RateRun(rate, n / rate, run, ["short"] * n, ["Hello there."] * n)


def _summary(rate: RateRun, server: str = "voicestack"):
    references = {"Hello there.": int(RATE_HZ) * 2}
    return summarize_rate(server, "assistant", rate, Usage(), references, 300.0, cpu_cores=2)


def test_a_rate_is_summarized_and_judged_from_its_records():
    served = _summary(_rate(2.0, 0.1))
    assert served.served and served.requests == served.ok == 100
    assert served.ttfa_p99_ms == pytest.approx(100.0)
    assert served.completed_per_s == pytest.approx(2.0)
    # Little's law: 2 streams a second, each 0.1 s in flight
    assert served.mean_concurrent == pytest.approx(0.2)
    assert served.concurrent_per_core == pytest.approx(0.1)
    assert served.peak_concurrent == 1
    slow = _summary(_rate(2.0, 0.4))
    assert slow.failed == ["p99 TTFA 400 ms >= 300"]
    shed = _summary(_rate(2.0, 0.1, status=503, rejected=True, arrivals=[]))
    assert shed.failed == ["1 shed (503)"] and shed.ok == 99
    lost = _summary(_rate(2.0, 0.1, audio_s=0.5))
    assert lost.failed == ["1 lost"]
    underrun = _rate(2.0, 0.1)
    underrun.run.records[0].arrivals = [(0.1, 3200), (0.5, 28800)]  # 0.1 s of audio, then 0.4 s dry
    assert _summary(underrun).failed == ["1 underrun"]


def test_failures_name_every_reason_and_an_unchecked_lost_count_is_none_lost():
    assert failures(120.0, 0, 0, None, 0, ok=10) == []
    assert failures(None, 0, 0, 0, 5, ok=0) == ["no stream completed", "5 shed (503)"]
    assert failures(310.0, 2, 1, 3, 0, ok=10) == [
        "p99 TTFA 310 ms >= 300",
        "2 underrun",
        "1 errors",
        "3 lost",
    ]


def test_capacity_is_the_highest_rate_served_with_every_lower_rate_served():
    assert capacity_rate([(1, True), (2, True), (4, False), (3, True)]) == 3
    # a pass above a failure is noise, not capacity
    assert capacity_rate([(1, True), (2, False), (4, True)]) == 1
    assert capacity_rate([(1, False), (2, True)]) is None
    assert capacity_rate([]) is None
    summaries = [
        _summary(_rate(1.0, 0.1)),
        _summary(_rate(2.0, 0.1)),
        _summary(_rate(4.0, 0.1, status=503, rejected=True, arrivals=[])),
        _summary(_rate(8.0, 0.1)),
        _summary(_rate(1.0, 0.1), "streaming"),
    ]
    voicestack, streaming = capacities(summaries)
    assert voicestack.at.rate_per_s == 2.0 and voicestack.above.rate_per_s == 4.0
    assert voicestack.above.failed == ["1 shed (503)"]
    assert streaming.at.rate_per_s == 1.0 and streaming.above is None  # not bounded


def test_the_search_doubles_then_bisects_within_its_steps():
    capacity = 5.2

    def search(start: float, steps: int) -> list[float]:
        tried: list[tuple[float, bool]] = []
        while (rate := next_rate(tried, start, steps)) is not None:
            assert rate not in [r for r, _ in tried]
            tried.append((rate, rate <= capacity))
        return [r for r, _ in tried]

    rates = search(1.0, 8)
    assert rates[:4] == [1.0, 2.0, 4.0, 8.0] and rates[4:] == [6.0, 5.0, 5.5]
    assert capacity_rate([(r, r <= capacity) for r in rates]) == 5.0
    assert search(1.0, 3) == [1.0, 2.0, 4.0]
    assert search(20.0, 8)[:3] == [20.0, 10.0, 5.0]  # halves while nothing is served
    assert len(search(0.001, 50)) < 50  # stops at the resolution, not at the step limit


def test_peak_overlap_counts_streams_in_flight_at_once():
    assert peak_overlap([(0, 1), (0.5, 2), (1, 3)]) == 2  # one ends as another starts
    assert peak_overlap([(0, 10), (1, 2), (3, 4), (3.5, 5)]) == 3
    assert peak_overlap([]) == 0
