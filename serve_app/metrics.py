"""The service's Prometheus metrics, through Ray's own metrics export.

Every metric is defined here, once; the serving code calls the small functions and recorders
below. Ray exports them in Prometheus format on each node's metrics export port (`ray start
--metrics-export-port=8080`, or `ray.init(_metrics_export_port=...)`), every few seconds
(`RAY_metrics_report_interval_ms`), each name prefixed `ray_` and each counter suffixed
`_total`. Serve adds the `deployment`, `replica` and `application` tags itself.

Recording is cheap: a handful of calls per chunk, none per sample. The metric objects are made
in the process that first records, so that inside a replica they carry Serve's tags; outside
Ray (unit tests) recording still works and goes nowhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from functools import cache
from types import SimpleNamespace

PREFIX = "voicestack_"

#: Time to first audio: from the request reaching the voice to its first audio chunk, any wait
#: for a stream slot included. 25 ms (a warm, idle GPU) to 10 s (a badly overloaded replica).
TTFA_BUCKETS_S = [0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10]
#: Between two audio chunks of a stream: a chunk holds ~0.2 s to ~1 s of audio, so a gap over
#: that is a stream at risk of running dry.
CHUNK_GAP_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5]
#: Wall seconds per audio second of a finished stream: above 1 a listener waits.
RTF_BUCKETS = [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5]
#: A chunk's wait in a block replica's queue before its network call (batching waits a few ms).
QUEUE_WAIT_BUCKETS_S = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2]
#: Chunks in one network call.
BATCH_SIZE_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]
#: One block call on a replica (a batch of chunks, a sentence's sequence blocks, a source's
#: chunk): 1 ms (a small network on a GPU) to 10 s (a long sentence on a busy CPU).
COMPUTE_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

#: What `requests` counts by `status`: the HTTP status the request was answered with, and 499
#: for a client that went away before its stream ended.
CLIENT_GONE = 499


@cache
def _metrics() -> SimpleNamespace:
    from ray.serve.metrics import Counter, Gauge, Histogram

    voice = ("voice",)
    block = ("block",)
    return SimpleNamespace(
        ttfa=Histogram(
            PREFIX + "ttfa_seconds",
            "Time to first audio: from a request reaching the voice (slot wait included) to its "
            "first audio chunk.",
            TTFA_BUCKETS_S,
            voice,
        ),
        chunk_gap=Histogram(
            PREFIX + "chunk_gap_seconds",
            "Time between consecutive audio chunks of a stream.",
            CHUNK_GAP_BUCKETS_S,
            voice,
        ),
        rtf=Histogram(
            PREFIX + "stream_rtf",
            "Real-time factor of finished streams: wall seconds (from admission to end) per "
            "second of audio.",
            RTF_BUCKETS,
            voice,
        ),
        audio=Counter(PREFIX + "audio_seconds", "Seconds of audio made.", voice),
        requests=Counter(
            PREFIX + "requests",
            "Requests a voice answered, by status (200, 400, 503 shed, 499 client gone, 500).",
            (*voice, "status"),
        ),
        playing=Gauge(PREFIX + "streams_playing", "Streams a composer is playing.", voice),
        waiting=Gauge(PREFIX + "streams_waiting", "Streams waiting for a slot.", voice),
        shed=Counter(
            PREFIX + "streams_shed", "Requests refused at capacity (503, Retry-After).", voice
        ),
        queue_wait=Histogram(
            PREFIX + "block_queue_wait_seconds",
            "A chunk's wait in a block replica's queue before its network call.",
            QUEUE_WAIT_BUCKETS_S,
            block,
        ),
        batch_size=Histogram(
            PREFIX + "block_batch_size", "Chunks per network call.", BATCH_SIZE_BUCKETS, block
        ),
        step_batch=Histogram(
            PREFIX + "block_step_batch_size",
            "Streams per step of a source that steps its streams together (an attention "
            "decoder: one network call makes a frame of each).",
            BATCH_SIZE_BUCKETS,
            block,
        ),
        chunks=Counter(
            PREFIX + "block_chunks",
            "Chunks a source block made (an upsampler's or attention decoder's replica).",
            block,
        ),
        compute=Histogram(
            PREFIX + "block_compute_seconds",
            "Wall time of one block call on a replica: a batch of chunks through a chunk block, "
            "a sentence through a sequence block, one chunk made by a source.",
            COMPUTE_BUCKETS_S,
            block,
        ),
        characters=Counter(
            PREFIX + "characters", "Characters of request text admitted (given a slot).", voice
        ),
        retried=Counter(
            PREFIX + "sentences_retried",
            "Sentences made again because a replica died under them (the stream went on).",
            voice,
        ),
    )


class Stream:
    """One request's metrics, as the composer streams it: `audio()` per audio chunk, then one
    of `done()`, `error(status)` or `gone()`."""

    __slots__ = ("tags", "rate", "arrived", "admitted", "last", "audio_s", "over")

    def __init__(self, voice: str, sample_rate: int, record: bool = True):
        """`record`: False for a request that is no client's (a composer's warm-up)."""
        self.tags = {"voice": voice}
        self.rate = sample_rate
        self.arrived = time.perf_counter()
        self.admitted = self.arrived
        self.last: float | None = None
        self.audio_s = 0.0
        self.over = not record  # nothing to record: as if it had ended

    def admit(self, characters: int) -> None:
        """The stream got its slot; its text has `characters` characters."""
        self.admitted = time.perf_counter()
        if characters > 0 and not self.over:  # a Ray counter takes only positive steps
            _metrics().characters.inc(characters, self.tags)

    def audio(self, samples: int) -> None:
        if self.over:
            return
        now = time.perf_counter()
        m = _metrics()
        if self.last is None:
            m.ttfa.observe(now - self.arrived, self.tags)
        else:
            m.chunk_gap.observe(now - self.last, self.tags)
        self.last = now
        seconds = samples / self.rate
        self.audio_s += seconds
        m.audio.inc(seconds, self.tags)

    def done(self) -> None:
        if self.audio_s > 0 and not self.over:
            wall = time.perf_counter() - self.admitted
            _metrics().rtf.observe(wall / self.audio_s, self.tags)
        self._end(200)

    def error(self, status: int) -> None:
        self._end(status)

    def shed(self) -> None:
        if not self.over:
            _metrics().shed.inc(1, self.tags)
        self._end(503)

    def gone(self) -> None:
        """The client went away (the stream was cancelled) before its end."""
        self._end(CLIENT_GONE)

    def _end(self, status: int) -> None:
        if self.over:  # one outcome per request
            return
        self.over = True
        _metrics().requests.inc(1, {**self.tags, "status": str(status)})


def retried(voice: str) -> None:
    """A sentence of `voice` is made again: a replica died under it."""
    _metrics().retried.inc(1, {"voice": voice})


def streams(voice: str) -> Callable[[int, int], None]:
    """What an Admission calls with (playing, waiting) whenever either changes."""
    tags = {"voice": voice}

    def changed(active: int, waiting: int) -> None:
        _gauges.set("playing", active, tags)
        _gauges.set("waiting", waiting, tags)

    return changed


class _Gauges:
    """The gauges' latest values, set again every half report interval in a daemon thread.

    A process reports a gauge to Ray's agent only in an interval in which it was set, and the
    agent drops a series nobody reported for two intervals: set only on change, an idle voice's
    (or a steadily loaded one's) `streams_playing` would be missing from most scrapes."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def set(self, name: str, value: float, tags: dict[str, str]) -> None:
        with self._lock:  # never overtaken by an older value being set again
            getattr(_metrics(), name).set(value, tags)
            self._values[(name, tuple(sorted(tags.items())))] = value
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._again, daemon=True, name="voicestack-gauges"
                )
                self._thread.start()

    def _again(self) -> None:
        import ray

        # Ray's report interval (RAY_metrics_report_interval_ms), floored at 1 s as Ray does.
        interval_s = max(ray._config.metrics_report_interval_ms(), 1000) / 1000
        while True:
            time.sleep(interval_s / 2)
            with self._lock:
                m = _metrics()
                for (name, tags), value in self._values.items():
                    getattr(m, name).set(value, dict(tags))


_gauges = _Gauges()


def batches(block: str) -> Callable[[float, Sequence[float]], None]:
    """What a Batcher calls with (now, each item's enqueue time) for each batch it forms, on
    its event loop's clock."""
    tags = {"block": block}

    def formed(now: float, arrived: Sequence[float]) -> None:
        m = _metrics()
        m.batch_size.observe(len(arrived), tags)
        for t in arrived:
            m.queue_wait.observe(now - t, tags)

    return formed


def steps(block: str) -> Callable[[int], None]:
    """What a source's stepper (serve_app/stepping.py) calls with the number of streams of each
    step it runs, from its worker thread."""
    tags = {"block": block}

    def stepped(streams: int) -> None:
        _metrics().step_batch.observe(streams, tags)

    return stepped


def chunks(block: str) -> Callable[[], None]:
    """What a source's server calls for each chunk it yields."""
    tags = {"block": block}

    def made() -> None:
        _metrics().chunks.inc(1, tags)

    return made


def computed(block: str) -> Callable[[float], None]:
    """What a block's server calls with the wall seconds of each call it runs (a Batcher's
    `ran` hook; the sequence and source servers time their own calls)."""
    tags = {"block": block}

    def ran(seconds: float) -> None:
        _metrics().compute.observe(seconds, tags)

    return ran


def deployment_name(default: str) -> str:
    """This replica's deployment name (a block's deployment/leaf key), or `default` outside
    Serve."""
    from ray import serve
    from ray.serve.exceptions import RayServeException

    try:
        return serve.get_replica_context().deployment
    except RayServeException:  # not in a replica
        return default
