"""The servers that run leaf blocks inside Serve replicas: plain classes, no Serve imports.

A replica rebuilds just its own block from the addon (its config node and path, under the
voice's placement), so it loads only the networks that block calls. One server may hold the
same block of several voices (a placement `group`, such as one universal vocoder): calls name
the voice. Networks that are byte-identical across those voices are loaded once per process.

Three kinds, after the plan (runtime/plan.py):
- `SequenceServer`: features in, features (merged with its outputs) out.
- `SourceServer`: a segment head that starts a stream (Upsampler, AttentionDecoder): a streaming
  method yielding chunks that carry the context the rest of the segment needs.
- `ChunkServer`: a stateless chunk step (Decoder, Vocoder, effects): one chunk in, one out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voicestack.runtime.plan import Leaf, Plan

logger = logging.getLogger("voicestack.serve")


#: What a replica is told to run: a voice's plan as data (Plan.to_dict) and the path of the
#: leaf it runs. A grouped deployment runs one leaf of each of several voices.
Served = tuple[dict[str, Any], str]


def _built(plan: Plan, leaf: Leaf) -> Any:
    """`leaf` of `plan`, built in this process, its networks warmed."""
    block = leaf.build(plan.env())
    for network in {id(n): n for n in _networks(block)}.values():
        network.ready().warm_up()  # on its device, every static size, before any request
    return block


def _networks(block: Any) -> list[Any]:
    return [b.network for b in block.walk() if hasattr(b, "network")]


class _LeafServer:
    def __init__(self, leaves: list[Served]):
        import torch
        from voicestack.runtime.plan import Plan
        from voicestack.serve_app import metrics

        # Replicas ask Ray for fractions of a CPU; torch's default of one thread per core would
        # have every replica on a node compete for all cores.
        torch.set_num_threads(int(os.environ.get("VOICESTACK_TORCH_THREADS", "1")))
        #: Each voice's plan and the leaf of it this replica runs.
        plans = [(Plan.from_dict(data), path) for data, path in leaves]
        self.served = [(plan, plan.leaf(path)) for plan, path in plans]
        self.blocks = {plan.name: _built(plan, leaf) for plan, leaf in self.served}
        #: This deployment's name: the metrics' `block` tag.
        self.block_name = metrics.deployment_name(self.served[0][1].type)
        #: Told of each block call's wall seconds (the metrics' compute time).
        self.computed = metrics.computed(self.block_name)

    def where(self) -> dict[str, Any]:
        """Which node and device this replica runs on (for tests and `GET /v1/voices`)."""
        import ray

        ctx = ray.get_runtime_context()
        return {
            "node_id": ctx.get_node_id(),
            "pid": os.getpid(),
            # Ray's workers start at its worker_niceness (launch.py WORKER_NICENESS_ENV).
            "niceness": os.getpriority(os.PRIO_PROCESS, 0),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "voices": sorted(self.blocks),
            # Distinct networks in memory: voices that ship the same network share one copy.
            "networks": len({id(n) for b in self.blocks.values() for n in _networks(b)}),
            # The shape policy each network runs under here (dynamic, or the static sizes it
            # is padded to), as the placement gave it to this replica.
            "shapes": {
                n.name: n.shapes.model_dump(mode="json")
                for b in self.blocks.values()
                for n in _networks(b)
            },
        }


class SequenceServer(_LeafServer):
    def __call__(self, voice: str, features: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        out = self.blocks[voice](features)
        self.computed(time.perf_counter() - started)
        return {**features, **out}


class SourceServer(_LeafServer):
    def __init__(self, leaves: list[Served]):
        from concurrent.futures import ThreadPoolExecutor

        from voicestack.serve_app import metrics
        from voicestack.serve_app.stepping import Stepper

        super().__init__(leaves)
        #: Told of each chunk the source yields (the metrics' chunks made).
        self.made_chunk = metrics.chunks(self.block_name)
        #: Blocks whose streams one stepper steps together (a frame of every stream in flight
        #: per network call), by voice; the other sources stream each request on its own.
        self.stepped: dict[str, Any] = {}
        limits = []
        for plan, leaf in self.served:
            block = self.blocks[plan.name]
            if not getattr(block, "steps_together", False) or block.max_streams < 2:
                continue
            self.stepped[plan.name] = block
            limits.append(block.max_streams)
            # An explicit `batching: {max_batch_size}` for the block caps its steps too.
            placement = plan.placement.for_block(leaf.placement_type, voice=plan.name)
            if "batching" in placement.model_fields_set:
                limits.append(placement.batching.max_batch_size)
        self.stepper = Stepper(
            min(limits, default=1), ran=self.computed, stepped=metrics.steps(self.block_name)
        )
        # A stepped stream's chunk waits for its frames in one of these threads, which sleep
        # meanwhile: one each, so that no stream waits for another's thread (threads are made
        # as needed).
        self._waiting = ThreadPoolExecutor(256, thread_name_prefix="source-stream")

    async def stream(
        self, voice: str, features: dict[str, Any], need: tuple[int, int]
    ) -> AsyncIterator[Any]:
        """The source's chunks. Each chunk is made in a worker thread, but no thread is held
        between chunks: a sync generator would keep one of the replica's few threads for as
        long as its consumer takes, and a dozen slow streams would stall every other one.

        A block that steps its streams together (`steps_together`) makes its frames in the
        replica's stepper, with every other stream in flight; only its chunking is done here."""
        if voice in self.stepped:
            async for chunk in self._stepped(voice, features, need):
                yield chunk
            return
        from voicestack.blocks.core.chunk import with_context

        chunks = with_context(self.blocks[voice].stream(features, None), *need)
        done = object()

        def timed_next() -> tuple[Any, float]:  # timed in the thread: no wait for one counted
            started = time.perf_counter()
            chunk = next(chunks, done)
            return chunk, time.perf_counter() - started

        while True:
            chunk, seconds = await asyncio.to_thread(timed_next)
            if chunk is done:
                break
            self.computed(seconds)
            self.made_chunk()
            yield chunk

    async def _stepped(
        self, voice: str, features: dict[str, Any], need: tuple[int, int]
    ) -> AsyncIterator[Any]:
        from voicestack.blocks.core.chunk import with_context

        block = self.stepped[voice]
        stream = self.stepper.join(block, features, block.seconds_per_frame)
        chunks = with_context(block.chunks(stream.frames()), *need)
        done = object()
        loop = asyncio.get_running_loop()
        try:
            while True:
                chunk = await loop.run_in_executor(self._waiting, next, chunks, done)
                if chunk is done:
                    break
                self.made_chunk()
                yield chunk
        finally:
            # The client has gone (or the stream failed): out of the next step, and a thread
            # still waiting for its frames is let go.
            self.stepper.leave(stream)


class ChunkServer(_LeafServer):
    def __init__(self, leaves: list[Served]):
        from concurrent.futures import ThreadPoolExecutor

        from voicestack.serve_app import metrics
        from voicestack.serve_app.batching import Batcher, apply_items, batch_together

        super().__init__(leaves)
        plan, leaf = self.served[0]
        placement = plan.placement.for_block(leaf.placement_type, voice=plan.name)
        # Chunk calls run at once: by default one per whole CPU the replica reserved, at least
        # one. Many more only fight over the GIL and cost more CPU per second of audio
        # (docs/benchmarks.md, "where a second of audio's CPU goes").
        self.threads = placement.threads or max(1, int(placement.num_cpus))
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="chunk")
        # Every call goes through the batcher, batched or not (a batch of one never waits):
        # its queue runs waiting chunks earliest deadline first.
        batching = placement.batching
        self.batcher = Batcher(
            apply_items,
            batching.max_batch_size,
            batching.wait_ms / 1000,
            concurrent=self.threads,
            executor=self._pool,
            together=batch_together,
            formed=metrics.batches(self.block_name),
            ran=self.computed,
        )

    async def apply(
        self, voice: str, chunk: Any, keep: tuple[int, int], deadline: float | None = None
    ) -> Any:
        """`chunk` through this voice's block. `deadline` (wall-clock seconds): when the stream's
        listener runs out of audio; chunks waiting here run earliest deadline first, and a call
        without one counts as due now."""
        due = time.time() if deadline is None else deadline
        return await self.batcher.submit((self.blocks[voice], chunk, keep), priority=due)


def server_for(kind: str) -> type[_LeafServer]:
    """The server class of a leaf kind (serve_app/deployments.py `Kind`)."""
    return {"sequence": SequenceServer, "source": SourceServer, "chunk": ChunkServer}[kind]
