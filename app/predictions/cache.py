"""An LRU cache of loaded networks, bounded by the bytes of their parameters.

Loading a version means reading θ and building the network, far slower than a prediction on a few
rows, so the API keeps recently used versions in memory. Keys are (architecture, θ blob): versions
that share θ (importance refreshes) share one entry. Loading happens outside the lock, so one slow
load never blocks predictions from versions already in memory. Each entry also keeps the pace of its
last prediction (seconds per row), from which `quick` tells whether a small one may run on the event loop.
Networks are kept on the cache's device (LIFELONG_PREDICT_DEVICE), moved there once when loaded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import torch

from app.mas.networks import MultiHeadNet
from app.metrics import count_cache_lookup
from app.predictions.batching import Coalescer


def network_bytes(net: MultiHeadNet) -> int:
    return sum(t.numel() * t.element_size() for t in net.state_dict().values())


class NetworkCache:
    def __init__(self, max_bytes: int, device: torch.device | None = None, passes: Coalescer | None = None):
        self.max_bytes = max_bytes
        self.device = device or torch.device("cpu")
        self.passes = passes or Coalescer(wait_s=0.0, max_rows=1)  # how concurrent predictions share passes
        self._entries: OrderedDict[Hashable, tuple[MultiHeadNet, int]] = OrderedDict()
        self._pace: dict[Hashable, float] = {}  # seconds per row of each entry's last prediction
        self._lock = threading.Lock()
        self.bytes = 0

    def get(self, key: Hashable, load: Callable[[], MultiHeadNet]) -> MultiHeadNet:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                count_cache_lookup(hit=True)
                return self._entries[key][0]
        count_cache_lookup(hit=False)
        net = load().eval().to(self.device)
        size = network_bytes(net)
        with self._lock:
            if key not in self._entries and size <= self.max_bytes:
                self._entries[key] = (net, size)
                self.bytes += size
                while self.bytes > self.max_bytes:
                    evicted, (_, freed) = self._entries.popitem(last=False)
                    self._pace.pop(evicted, None)
                    self.bytes -= freed
        return net

    def quick(self, key: Hashable, rows: int, budget_s: float) -> MultiHeadNet | None:
        """The network under `key` when it is in memory and, at its last prediction's pace, `rows` rows
        take at most `budget_s`; None otherwise (not loaded, never run, or too slow)."""
        with self._lock:
            entry, pace = self._entries.get(key), self._pace.get(key)
            if entry is None or pace is None or rows * pace > budget_s:
                return None
            self._entries.move_to_end(key)
        count_cache_lookup(hit=True)
        return entry[0]

    def note_pace(self, key: Hashable, rows: int, seconds: float) -> None:
        with self._lock:
            if key in self._entries:
                self._pace[key] = seconds / max(rows, 1)

    def __len__(self) -> int:
        return len(self._entries)
