"""Samples made on demand: a dataset too large to hold preprocessed, read a batch at a time.

Decoded and resized images take 3·S²·4 bytes each (600 kB at 224 px), so a job that preprocessed
its whole image dataset up front would need memory in proportion to the dataset. `LazySamples`
holds only a loader, `load(indices) -> Tensor`, and answers the part of a tensor's interface that
training, importance and evaluation use: `shape`, `len`, `device`, `.to(device or dtype)`, and
indexing by a slice or an index tensor, which materialises just those rows. Training asks for its
batches in order through `batches`, which loads the next batch in a background thread while the
current one trains (decoding in PIL and resizing release the GIL). A thread rather than DataLoader
worker processes: a Celery pool process is a daemon, and daemons cannot start children.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

_DONE = object()


class LazySamples:
    def __init__(self, n: int, sample_shape: Sequence[int], dtype: torch.dtype,
                 load: Callable[[list[int]], Tensor], device: torch.device | None = None):
        self.n, self.sample_shape, self.dtype, self.load = n, tuple(sample_shape), dtype, load
        self.device = device or torch.device("cpu")

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.n, *self.sample_shape))

    def __len__(self) -> int:
        return self.n

    def to(self, target: torch.device | torch.dtype | str) -> LazySamples:
        """The same samples, delivered on another device or in another dtype (nothing is loaded now)."""
        if isinstance(target, torch.dtype):
            return LazySamples(self.n, self.sample_shape, target, self.load, self.device)
        return LazySamples(self.n, self.sample_shape, self.dtype, self.load, torch.device(target))

    def subset(self, rows: Tensor) -> LazySamples:
        """These rows only, still loaded on demand (a task's training rows without its validation rows)."""
        chosen = [int(i) for i in rows.tolist()]
        return LazySamples(len(chosen), self.sample_shape, self.dtype,
                           lambda wanted: self.load([chosen[i] for i in wanted]), self.device)

    def __getitem__(self, index: slice | Tensor) -> Tensor:
        rows = list(range(self.n)[index]) if isinstance(index, slice) else [int(i) for i in index.tolist()]
        return self._rows(rows)

    def batches(self, index_batches: Sequence[Tensor], depth: int = 2) -> Iterator[Tensor]:
        """The rows of each index batch in turn, up to `depth` batches loaded ahead in a thread."""
        ready: queue.Queue = queue.Queue(maxsize=depth)
        stop = threading.Event()

        def produce() -> None:
            try:
                for index in index_batches:
                    if stop.is_set():
                        return
                    ready.put(self.load([int(i) for i in index.tolist()]))
                ready.put(_DONE)
            except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
                ready.put(error)

        worker = threading.Thread(target=produce, name="lazy-samples", daemon=True)
        worker.start()
        try:
            while (item := ready.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item.to(self.device, self.dtype)
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue, then let it end
                try:
                    ready.get_nowait()
                except queue.Empty:
                    worker.join(0.01)

    def _rows(self, rows: list[int]) -> Tensor:
        if not rows:
            return torch.zeros(0, *self.sample_shape, dtype=self.dtype, device=self.device)
        return self.load(rows).to(self.device, self.dtype)


def batches_of(inputs: Tensor | LazySamples, index_batches: Sequence[Tensor]) -> Iterator[Tensor]:
    """Rows of `inputs` for each index batch: prefetched for lazy samples, indexed for a tensor."""
    if isinstance(inputs, LazySamples):
        return inputs.batches(index_batches)
    return (inputs[index] for index in index_batches)


def rows_of(inputs: Tensor | LazySamples, rows: Tensor) -> Tensor | LazySamples:
    """The given rows of `inputs`: a lazy subset of lazy samples (nothing decoded), else an indexed tensor."""
    return inputs.subset(rows) if isinstance(inputs, LazySamples) else inputs[rows.to(inputs.device)]
