"""An LRU cache of loaded networks, bounded by the bytes of their parameters.

Loading a version means reading θ and building the network, far slower than a prediction on a few
rows, so the API keeps recently used versions in memory. Keys are (architecture, θ blob): versions
that share θ (importance refreshes) share one entry. Loading happens outside the lock, so one slow
load never blocks predictions from versions already in memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from app.mas.networks import MultiHeadNet
from app.metrics import count_cache_lookup


def network_bytes(net: MultiHeadNet) -> int:
    return sum(t.numel() * t.element_size() for t in net.state_dict().values())


class NetworkCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[MultiHeadNet, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0

    def get(self, key: Hashable, load: Callable[[], MultiHeadNet]) -> MultiHeadNet:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                count_cache_lookup(hit=True)
                return self._entries[key][0]
        count_cache_lookup(hit=False)
        net = load().eval()
        size = network_bytes(net)
        with self._lock:
            if key not in self._entries and size <= self.max_bytes:
                self._entries[key] = (net, size)
                self.bytes += size
                while self.bytes > self.max_bytes:
                    _, (_, evicted) = self._entries.popitem(last=False)
                    self.bytes -= evicted
        return net

    def __len__(self) -> int:
        return len(self._entries)
