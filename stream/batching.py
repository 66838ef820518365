"""Micro-batching policy: collect ready windows up to ``max_batch`` or ``max_wait``."""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    """A bounded queue whose consumer takes everything ready, waiting at most ``max_wait_s`` for more.

    ``put`` blocks when ``maxsize`` items wait: the stream then slows down and the backlog
    stays in Kafka (lag) instead of in memory.
    """

    def __init__(self, max_batch: int, max_wait_s: float, maxsize: int = 0) -> None:
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue: asyncio.Queue[T] = asyncio.Queue(maxsize)

    async def put(self, item: T) -> None:
        await self.queue.put(item)

    def qsize(self) -> int:
        return self.queue.qsize()

    async def next_batch(self) -> list[T]:
        batch = [await self.queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self.queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                break
        return batch
