"""Hand-over between the ROS callbacks and the processing thread, and colour/depth pairing.

Why: inference takes longer than a camera period on a CPU, and the executor must keep serving
camera_info, services and parameters meanwhile.  Live input uses :class:`LatestFrameSlot` (the
callback overwrites, stale frames are dropped and counted: latency stays one frame, memory stays
bounded); bag replay uses :class:`FrameQueue` (the callback blocks when full: every frame is
processed, in order).  Neither grows without bound.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

__all__ = ["DepthPairer", "FrameQueue", "LatestFrameSlot"]


class LatestFrameSlot:
    """Holds only the newest item; ``put`` over an unconsumed item drops the old one."""

    def __init__(self) -> None:
        self._item: Any = None
        self._condition = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Store ``item``; returns True when an older, unprocessed item was dropped for it."""
        with self._condition:
            replaced = self._item is not None
            if replaced:
                self.dropped += 1
            self._item = item
            self._condition.notify()
            return replaced

    def get(self, timeout: float | None = None) -> Any:
        """The newest item, or None on timeout / after ``close``."""
        with self._condition:
            if self._item is None and not self._closed:
                self._condition.wait(timeout)
            item, self._item = self._item, None
            return item

    def clear(self) -> int:
        with self._condition:
            had = int(self._item is not None)
            self._item = None
            return had

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def __len__(self) -> int:
        return int(self._item is not None)


class FrameQueue:
    """Bounded FIFO: ``put`` blocks while full, so nothing is dropped (deterministic replay)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {capacity}")
        self._items: collections.deque = collections.deque()
        self._capacity = capacity
        self._condition = threading.Condition()
        self._closed = False
        self.dropped = 0  # stays 0: kept so both buffers report the same figures

    def put(self, item: Any) -> bool:
        with self._condition:
            while len(self._items) >= self._capacity and not self._closed:
                self._condition.wait(0.1)
            if self._closed:
                return False
            self._items.append(item)
            self._condition.notify_all()
            return False

    def get(self, timeout: float | None = None) -> Any:
        with self._condition:
            if not self._items and not self._closed:
                self._condition.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._condition.notify_all()
            return item

    def clear(self) -> int:
        with self._condition:
            count = len(self._items)
            self._items.clear()
            self._condition.notify_all()
            return count

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def __len__(self) -> int:
        return len(self._items)


class DepthPairer:
    """Pairs colour and depth messages whose stamps differ by at most ``tolerance`` seconds.

    A small replacement for message_filters' ApproximateTimeSynchronizer: each stream keeps its
    newest ``capacity`` messages; when a colour frame finds a depth frame within tolerance the pair
    is returned and everything older on both streams is discarded (counted in ``unpaired``).
    """

    def __init__(self, tolerance: float, capacity: int = 10) -> None:
        self.tolerance = tolerance
        self._colour: collections.deque = collections.deque(maxlen=capacity)
        self._depth: collections.deque = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.unpaired = 0

    def add_colour(self, stamp: float, message: Any) -> tuple[Any, Any] | None:
        with self._lock:
            self.unpaired += int(len(self._colour) == self._colour.maxlen)
            self._colour.append((stamp, message))
            return self._match()

    def add_depth(self, stamp: float, message: Any) -> tuple[Any, Any] | None:
        with self._lock:
            self._depth.append((stamp, message))
            return self._match()

    def clear(self) -> None:
        with self._lock:
            self._colour.clear()
            self._depth.clear()

    def _match(self) -> tuple[Any, Any] | None:
        # Newest colour frame first: live input wants the freshest pair.
        for ci in range(len(self._colour) - 1, -1, -1):
            stamp, colour = self._colour[ci]
            best = min(range(len(self._depth)), key=lambda i: abs(self._depth[i][0] - stamp), default=None)
            if best is not None and abs(self._depth[best][0] - stamp) <= self.tolerance:
                depth = self._depth[best][1]
                self.unpaired += ci  # older colour frames will never be used
                for _ in range(ci + 1):
                    self._colour.popleft()
                for _ in range(best + 1):
                    self._depth.popleft()
                return colour, depth
        return None
