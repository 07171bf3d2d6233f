"""Per-chunk cost of a hop between blocks: Serve deployments vs plain actors owned by the voice.

The voice's composer passes each chunk through three blocks (source -> decoder -> vocoder in
the duration voice). Here the blocks do nothing (they return their input) so only the cost of
the hops is left, measured from inside a Serve deployment (where the composer runs), both ways,
in one run on one Ray:

- `deployments`: each block is a Serve deployment; the composer chains DeploymentResponses.
- `actors`: each block is a plain Ray actor created by the composer; it chains ObjectRefs.

For each: the latency of one chunk through the three hops (one at a time), and the time per
chunk when 32 chunks are in flight at once (pipelined, as the composer runs them).

    .venv/bin/python bench/hops.py
"""

from __future__ import annotations

import asyncio
import statistics
import time

import numpy as np
import ray
from ray import serve

HOPS = 3
N = 200
IN_FLIGHT = 32


class Echo:
    def apply(self, x):
        return x


@ray.remote(num_cpus=0.1)
class EchoActor(Echo):
    pass


class Bench:
    def __init__(self, *handles):
        self.handles = handles
        self.actors = [EchoActor.remote() for _ in range(HOPS)]

    async def run(self, kind: str, payload) -> dict:
        def chain(x):
            if kind == "actors":
                for a in self.actors:
                    x = a.apply.remote(x)
            else:
                for h in self.handles:
                    x = h.apply.remote(x)
            return x

        for _ in range(20):  # warm up routers and workers
            await chain(payload)
        one = []
        for _ in range(N):
            t = time.perf_counter()
            await chain(payload)
            one.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        for start in range(0, N, IN_FLIGHT):
            await asyncio.gather(*(chain(payload) for _ in range(min(IN_FLIGHT, N - start))))
        pipelined = (time.perf_counter() - t) * 1000 / N
        return {
            "median_ms": statistics.median(one),
            "p90_ms": float(np.percentile(one, 90)),
            "pipelined_ms_per_chunk": pipelined,
        }


def main() -> None:
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    echo = serve.deployment(Echo, ray_actor_options={"num_cpus": 0.1})
    handles = [echo.options(name=f"Echo{i}").bind() for i in range(HOPS)]
    bench = serve.run(
        serve.deployment(Bench, ray_actor_options={"num_cpus": 0.1}).bind(*handles),
        name="hops",
    )
    payloads = {
        "mel chunk 64x80 f32": np.random.rand(64, 80).astype(np.float32),
        "audio chunk 0.74 s f32": np.random.rand(64 * 256).astype(np.float32),
    }
    print(f"{HOPS} hops per chunk; {N} chunks; pipelined = {IN_FLIGHT} chunks in flight")
    print("| payload | via | one chunk, median ms | p90 ms | pipelined ms/chunk |")
    print("|---|---|---|---|---|")

    async def drive() -> None:  # async: a handle may be set to route on the caller's loop
        for label, payload in payloads.items():
            for kind in ("deployments", "actors"):
                r = await bench.run.remote(kind, payload)
                print(
                    f"| {label} | {kind} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} "
                    f"| {r['pipelined_ms_per_chunk']:.2f} |"
                )

    asyncio.run(drive())
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
