"""Micro-batching of concurrent single requests into one call (one matrix product).

While a batch is being scored in a worker thread, the requests that arrive queue up; when it is done,
all of them (up to ``max_batch``) form the next batch. No timer: an idle service scores a lone request
at once, a busy one amortises the catalogue read (one query over 63k x 64 float32 reads 16 MB) over
every request that waited. BentoML's adaptive batching needs list-shaped endpoints; ``/recommend``
takes one query, so it is batched here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import anyio.to_thread

Q = TypeVar("Q")
R = TypeVar("R")


class Batcher(Generic[Q, R]):
    def __init__(self, fn: Callable[[Sequence[Q]], Sequence[R]], max_batch: int = 256):
        self.fn, self.max_batch = fn, max_batch
        self._pending: list[tuple[Q, asyncio.Future[R]]] = []
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0

    async def __call__(self, query: Q) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((query, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            self.batches += 1
            try:
                results = await anyio.to_thread.run_sync(self.fn, [q for q, _ in batch])
            except Exception as exc:  # every waiter gets the error, the loop goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
