"""Continuous batching of a source's frame loop inside a replica.

An autoregressive source (the attention decoder) makes a stream's audio one frame at a time,
each frame one small network call. Alone, a replica serving many streams would make one such
call per frame per stream, and the per-call cost, not the arithmetic, would bound how many
streams it keeps real-time. Here one worker thread holds every active stream's loop state and
steps up to `max_batch` of them with one call per step; streams join and leave between steps,
so a new stream waits at most one step, not for the others to finish.

When more streams are active than one call takes, the ones whose listeners run out of audio
first step first (earliest deadline first, as in serve_app/batching.py): a stream's deadline is
when its audio so far will have played, from its start (a new stream: now). Stepping a stream
moves its deadline on by one frame of audio, so full batches take turns in that order.

The block does the work (`start`, `step`); this only decides which streams step together and
hands each its frames. A stream whose consumer has gone (`leave`) is out of the next batch.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("voicestack.serve")

#: Put in a stream's queue after its last frame, or when it leaves.
_END = object()


@dataclass(eq=False)
class Stepped:
    """One stream in a `Stepper`: its block and loop state, its deadline, and its frames as
    they are made (`frames()` yields them, waiting for each)."""

    block: Any
    state: Any
    deadline: float
    seconds_per_frame: float
    made: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    gone: bool = False

    def frames(self) -> Iterator[Any]:
        """This stream's frames in order, each as the stepper makes it (blocking); ends after
        the last, or when the stream has left; raises what its step raised."""
        while True:
            item = self.made.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class Stepper:
    """Steps streams of blocks that declare `steps_together` (`start`, `step`), up to
    `max_batch` streams of one block per step, in one daemon thread started on first use."""

    def __init__(
        self,
        max_batch: int,
        ran: Callable[[float], None] | None = None,
        stepped: Callable[[int], None] | None = None,
    ):
        self.max_batch = max(1, max_batch)
        #: Told of each step's wall seconds (the metrics' compute time).
        self._ran = ran
        #: Told of each step's number of streams (the metrics' step batch size).
        self._stepped = stepped
        self._streams: list[Stepped] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def join(self, block: Any, features: Any, seconds_per_frame: float) -> Stepped:
        """Start a stream of `block` for `features`; it steps from the next step on."""
        stream = Stepped(block, block.start(features), time.monotonic(), seconds_per_frame)
        with self._changed:
            self._streams.append(stream)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="stepper")
                self._thread.start()
            self._changed.notify()
        return stream

    def leave(self, stream: Stepped) -> None:
        """Take `stream` out before its end (its consumer has gone); its `frames()` ends."""
        with self._changed:
            if stream in self._streams:
                self._streams.remove(stream)
        stream.gone = True
        stream.made.put(_END)

    @property
    def active(self) -> int:
        """Streams stepping now (tests, diagnostics)."""
        with self._changed:
            return len(self._streams)

    def _next_batch(self) -> list[Stepped]:
        """The earliest-deadline stream and the next ones of the same block, up to
        `max_batch` (and the block's own limit), in deadline order. Called with the lock."""
        ordered = sorted(self._streams, key=lambda s: s.deadline)
        block = ordered[0].block
        limit = min(self.max_batch, max(1, getattr(block, "max_streams", self.max_batch)))
        return [s for s in ordered if s.block is block][:limit]

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._streams:
                    self._changed.wait()
                batch = self._next_batch()
            self._step(batch)

    def _step(self, batch: list[Stepped]) -> None:
        block = batch[0].block
        started = time.perf_counter()
        try:
            made = block.step([s.state for s in batch])
        except Exception:  # one bad stream must not cost the others their audio
            logger.exception("a step of %d streams failed; stepping them one by one", len(batch))
            for stream in batch:
                self._step_alone(stream)
            return
        self._report(len(batch), time.perf_counter() - started)
        for stream, item in zip(batch, made, strict=True):
            self._deliver(stream, item)

    def _step_alone(self, stream: Stepped) -> None:
        started = time.perf_counter()
        try:
            (item,) = stream.block.step([stream.state])
        except Exception as e:
            self._finish(stream)
            stream.made.put(e)
            return
        self._report(1, time.perf_counter() - started)
        self._deliver(stream, item)

    def _deliver(self, stream: Stepped, item: tuple[Any, bool, Any]) -> None:
        stream.deadline += stream.seconds_per_frame
        if stream.gone:
            return
        stream.made.put(item)
        if item[1]:  # its last frame
            self._finish(stream)
            stream.made.put(_END)

    def _finish(self, stream: Stepped) -> None:
        with self._changed:
            if stream in self._streams:
                self._streams.remove(stream)

    def _report(self, size: int, seconds: float) -> None:
        if self._stepped is not None:
            self._stepped(size)
        if self._ran is not None:
            self._ran(seconds)
