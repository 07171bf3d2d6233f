"""How the composer calls a leaf: through its deployment's handle, or in the composer's own
process when the placement fuses it there (`fuse`).

Both answer the same three calls, so the composer drives a voice the same way whatever is
fused: `sequence` (features through a sequence leaf), `open` (the source's stream of chunks)
and `apply` (a chunk through a chunk step). Each returns at once something to await (and to
`cancel`), which may be passed on as the next call's input without being awaited: between
deployments Ray hands the data from replica to replica; into a fused leaf the composer awaits
it first; out of one into a deployment it is sent from here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any


def _local(value: Any) -> bool:
    """Whether `value` is a result made in this process (an asyncio future or task)."""
    return isinstance(value, asyncio.Future)


async def _resolved(value: Any) -> Any:
    """`value`, awaited if it is a call's result (a task here or a deployment's response)."""
    return await value if hasattr(value, "__await__") else value


class SourceStream:
    """A source's chunks as the composer reads them: each item is something to await for the
    chunk (or to pass on unawaited), and `cancel` stops the source's work."""

    def __init__(self, items: AsyncIterator[Any], cancel: Any) -> None:
        self._items = items
        self.cancel = cancel

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._items


class Deployed:
    """A leaf in a deployment of its own (or its group's), called through its handle."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def sequence(self, voice: str, features: Any) -> Awaitable[Any]:
        if _local(features):
            return asyncio.ensure_future(self._after(features, voice))
        return self.handle.remote(voice, features)

    async def _after(self, features: Any, voice: str) -> Any:
        return await self.handle.remote(voice, await features)

    async def open(self, voice: str, features: Any, need: tuple[int, int]) -> SourceStream:
        if _local(features):
            features = await features
        stream = self.handle.options(stream=True).stream.remote(voice, features, need)
        refs = await stream._to_object_ref_gen()  # chunk references, passed on unfetched
        return SourceStream(refs.__aiter__(), stream.cancel)

    def apply(self, voice: str, chunk: Any, keep: tuple[int, int], deadline: float) -> Any:
        if _local(chunk):
            return asyncio.ensure_future(self._applied_after(voice, chunk, keep, deadline))
        return self.handle.apply.remote(voice, chunk, keep, deadline)

    async def _applied_after(
        self, voice: str, chunk: Any, keep: tuple[int, int], deadline: float
    ) -> Any:
        return await self.handle.apply.remote(voice, await chunk, keep, deadline)

    async def where(self) -> dict[str, Any]:
        return await self.handle.where.remote()


class Fused:
    """A leaf run in the composer's process: its server (serve_app/leaf.py) built here, called
    without a hop. Its batcher and stepper batch the chunks of every stream of this composer."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def sequence(self, voice: str, features: Any) -> asyncio.Task:
        return asyncio.ensure_future(self._sequence(voice, features))

    async def _sequence(self, voice: str, features: Any) -> Any:
        return await asyncio.to_thread(self.server, voice, await _resolved(features))

    async def open(self, voice: str, features: Any, need: tuple[int, int]) -> SourceStream:
        chunks = self.server.stream(voice, await _resolved(features), need)

        async def items() -> AsyncIterator[Any]:
            async for chunk in chunks:
                done = asyncio.get_running_loop().create_future()
                done.set_result(chunk)
                yield done

        async def close() -> None:
            # The reader (the composer's pump) is cancelled first, which ends the stream where
            # it waits; this closes one that was never read to its end.
            with contextlib.suppress(RuntimeError):  # still closing in the reader's task
                await chunks.aclose()

        return SourceStream(items(), lambda: asyncio.ensure_future(close()))

    def apply(self, voice: str, chunk: Any, keep: tuple[int, int], deadline: float) -> Any:
        return asyncio.ensure_future(self._apply(voice, chunk, keep, deadline))

    async def _apply(self, voice: str, chunk: Any, keep: tuple[int, int], deadline: float) -> Any:
        return await self.server.apply(voice, await _resolved(chunk), keep, deadline)

    async def where(self) -> dict[str, Any]:
        return {**self.server.where(), "fused": True}
