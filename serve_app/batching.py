"""Cross-request batching of chunk calls inside a replica.

Chunks of different streams (and of voices that share a network) that reach a replica within a
few milliseconds of each other are run as one network call: one dispatch instead of many, which
is what keeps many streams real-time on shared hardware. The wait is bounded (`wait_ms`), and
waiting chunks run earliest deadline first: each carries the time its listener will have played
all the audio sent so far, so a new stream (deadline: now) goes ahead of streams with seconds
buffered, and a stream about to run dry ahead of one that is not.

Serve's own `@serve.batch` is first-in first-out; the priority rule is why this is ours.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("voicestack.serve")


@dataclass(order=True)
class _Entry:
    priority: float
    seq: int
    item: Any = field(compare=False)
    future: asyncio.Future = field(compare=False)
    arrived: float = field(compare=False, default=0.0)


class Batcher:
    """Collects items for at most `wait_s` (or until `max_size` are waiting), runs them in one
    call of `run` in a worker thread, and gives each caller its own result."""

    def __init__(
        self,
        run: Callable[[list[Any]], list[Any]],
        max_size: int,
        wait_s: float,
        concurrent: int = 4,
        executor: Any = None,
        together: Callable[[Any, Any], bool] | None = None,
        formed: Callable[[float, Sequence[float]], None] | None = None,
        ran: Callable[[float], None] | None = None,
    ):
        self._run = run
        #: Told of each batch as it is formed: (now, each item's arrival), on the loop's clock
        #: (the metrics' queue wait and batch size; serve_app/metrics.py `batches`).
        self._formed = formed
        #: Told, on the loop, of the wall seconds of each call of `run` that returned, as
        #: timed in its worker thread (the metrics' compute time; metrics.py `computed`).
        self._ran = ran
        #: Whether an item may join a batch led by another (None: any may). A batch is the
        #: earliest-deadline item and the next ones that may join it; the others wait for a
        #: batch of their own, in their order.
        self._together = together
        self.max_size = max_size
        self.wait_s = wait_s
        #: Batches running at once (the replica's threads). Items arriving meanwhile queue by
        #: priority, and the wait for more counts from the oldest one's arrival, so time spent
        #: queueing behind a running batch is not waited again.
        self._slots = asyncio.Semaphore(concurrent)
        #: Where batches run (None: asyncio's default thread pool).
        self._executor = executor
        self._running: set[asyncio.Task] = set()
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, item: Any, priority: float = 1.0) -> Any:
        """`item`'s result, run in a batch; lower `priority` runs first (the composer sends the
        time its stream's listener runs out of audio: earliest deadline first)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._arrived = asyncio.Event()
            self._task = loop.create_task(self._loop())
        future = loop.create_future()
        entry = _Entry(priority, next(self._seq), item, future, loop.time())
        heapq.heappush(self._heap, entry)
        assert self._arrived is not None  # made with the task, above
        self._arrived.set()
        return await future

    async def _loop(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            if not self._heap:
                continue
            # A batch is formed only once a slot is free: until then arrivals queue by priority,
            # so a first chunk that arrives while every slot computes still goes next.
            await self._slots.acquire()
            deadline = min(e.arrived for e in self._heap) + self.wait_s
            while len(self._heap) < self.max_size and (left := deadline - loop.time()) > 0:
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                    self._arrived.clear()
                except TimeoutError:
                    break
            batch = self._take()
            if self._heap:
                self._arrived.set()
            if not batch:
                self._slots.release()
                continue
            if self._formed is not None:
                self._formed(loop.time(), [e.arrived for e in batch])
            task = loop.create_task(self._dispatch(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _take(self) -> list[_Entry]:
        """The next batch: the earliest deadline first, then the next items that may join it."""
        batch: list[_Entry] = []
        left: list[_Entry] = []
        while self._heap and len(batch) < self.max_size:
            entry = heapq.heappop(self._heap)
            if entry.future.cancelled():
                continue
            if (
                batch
                and self._together is not None
                and not self._together(batch[0].item, entry.item)
            ):
                left.append(entry)
            else:
                batch.append(entry)
        for entry in left:
            heapq.heappush(self._heap, entry)
        return batch

    async def _dispatch(self, batch: list[_Entry]) -> None:
        try:
            try:
                results = await self._in_thread([e.item for e in batch])
            except Exception:  # one bad item must not cost the others their audio
                logger.exception("batch of %d failed; running its items one by one", len(batch))
                for entry in batch:
                    await self._one(entry)
                return
            for entry, result in zip(batch, results, strict=True):
                if not entry.future.done():
                    entry.future.set_result(result)
        finally:
            self._slots.release()

    async def _in_thread(self, items: list[Any]) -> list[Any]:
        loop = asyncio.get_running_loop()
        if self._ran is None:
            return await loop.run_in_executor(self._executor, self._run, items)
        results, seconds = await loop.run_in_executor(self._executor, _timed, self._run, items)
        self._ran(seconds)
        return results

    async def _one(self, entry: _Entry) -> None:
        try:
            (result,) = await self._in_thread([entry.item])
        except Exception as e:
            if not entry.future.done():
                entry.future.set_exception(e)
            return
        if not entry.future.done():
            entry.future.set_result(result)


def _timed(run: Callable[[list[Any]], list[Any]], items: list[Any]) -> tuple[list[Any], float]:
    """`run(items)` and its wall seconds (in the worker thread: no wait for the thread)."""
    started = time.perf_counter()
    results = run(items)
    return results, time.perf_counter() - started


def batch_together(first: tuple[Any, Any, Any], other: tuple[Any, Any, Any]) -> bool:
    """Whether chunk call `other` may join a batch led by `first`: their blocks say so (the same
    `batch_key`, and `batches_with` the leading chunk). Blocks without a key run alone."""
    (block, chunk, _), (other_block, other_chunk, _) = first, other
    key = block.batch_key()
    return (
        key is not None
        and key == other_block.batch_key()
        and block.batches_with(chunk, other_chunk)
    )


def apply_items(items: list[tuple[Any, Any, tuple[int, int]]]) -> list[Any]:
    """(block, chunk, keep) items: those whose blocks share a `batch_key` run as one batch
    (`apply_batch`, the block's own); any other block applies its chunk on its own."""
    results: list[Any] = [None] * len(items)
    together: dict[Hashable, list[int]] = {}
    for i, (block, chunk, keep) in enumerate(items):
        key = block.batch_key()
        if key is None:
            results[i] = block.apply(chunk, keep)
        else:
            together.setdefault(key, []).append(i)
    for indices in together.values():
        block = items[indices[0]][0]
        for i, out in zip(indices, block.apply_batch([items[i] for i in indices]), strict=True):
            results[i] = out
    return results
