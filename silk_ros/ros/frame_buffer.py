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
from collections.abc import Callable
from typing import Any

__all__ = ["CameraInfoHistory", "DepthPairer", "FrameQueue", "LatestFrameSlot"]


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
    is returned and everything older on both streams is discarded.  Colour frames that will never pair
    are counted in ``unpaired`` and reported to ``on_unpaired(count)``.  ``now`` arguments are a
    monotonic clock (seconds), used only to say how long depth has not paired (:meth:`stall`).
    """

    def __init__(
        self, tolerance: float, capacity: int = 10, on_unpaired: Callable[[int], None] | None = None
    ) -> None:
        self.tolerance = tolerance
        self._colour: collections.deque = collections.deque(maxlen=capacity)
        self._depth: collections.deque = collections.deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._on_unpaired = on_unpaired
        self.unpaired = 0
        self.paired = 0
        # what stall() reports: the newest stamp of each stream, when each last arrived / paired
        self._last_colour: tuple[float, float] | None = None  # (stamp, now)
        self._last_depth: tuple[float, float] | None = None
        self._last_pair_at: float | None = None
        self._colour_since_pair = 0
        self._waiting_since: float | None = None  # first colour frame since the last pair

    def add_colour(self, stamp: float, message: Any, now: float = 0.0) -> tuple[Any, Any] | None:
        with self._lock:
            self._last_colour = (stamp, now)
            self._colour_since_pair += 1
            if self._waiting_since is None:
                self._waiting_since = now
            self._discard(int(len(self._colour) == self._colour.maxlen))
            self._colour.append((stamp, message))
            return self._match(now)

    def add_depth(self, stamp: float, message: Any, now: float = 0.0) -> tuple[Any, Any] | None:
        with self._lock:
            self._last_depth = (stamp, now)
            self._depth.append((stamp, message))
            return self._match(now)

    def clear(self) -> int:
        """Forget the waiting frames (an odometry reset: not counted in ``unpaired``, they are not the stream's
        fault); returns how many colour frames were waiting."""
        with self._lock:
            waiting = len(self._colour)
            self._colour.clear()
            self._depth.clear()
            self._waiting_since = None
            self._colour_since_pair = 0
            return waiting

    def __len__(self) -> int:
        """Colour frames waiting for their depth."""
        return len(self._colour)

    def stall(self, now: float, timeout: float) -> str | None:
        """Why no colour frame has paired with depth for at least ``timeout`` seconds, or None when pairing works
        (or no colour frame waits).  Tells a silent depth topic from one that stopped or whose stamps never pair."""
        with self._lock:
            if self._waiting_since is None or self._last_colour is None:
                return None
            since = self._last_pair_at if self._last_pair_at is not None else self._waiting_since
            waited = now - max(since, self._waiting_since)
            if waited < timeout:
                return None
            images = f"{self._colour_since_pair} image(s) in the last {waited:.1f} s got no odometry"
            if self._last_depth is None:
                return (
                    f"no depth frame has arrived and {images}: is the depth topic published and remapped "
                    "(mode rgbd subscribes 'depth')?"
                )
            depth_stamp, depth_at = self._last_depth
            if now - depth_at >= timeout:
                return f"the depth stream stopped {now - depth_at:.1f} s ago; {images}"
            offset = self._last_colour[0] - depth_stamp
            return (
                f"depth arrives but its stamps do not pair with the images': {images}; newest image stamp "
                f"{self._last_colour[0]:.6f}, newest depth stamp {depth_stamp:.6f} ({offset:+.3f} s, "
                f"depth_sync_tolerance {self.tolerance:g} s)"
            )

    def _discard(self, count: int) -> None:
        if count <= 0:
            return
        self.unpaired += count
        if self._on_unpaired is not None:
            self._on_unpaired(count)

    def _match(self, now: float) -> tuple[Any, Any] | None:
        # Newest colour frame first: live input wants the freshest pair.
        for ci in range(len(self._colour) - 1, -1, -1):
            stamp, colour = self._colour[ci]
            best = min(range(len(self._depth)), key=lambda i: abs(self._depth[i][0] - stamp), default=None)
            if best is not None and abs(self._depth[best][0] - stamp) <= self.tolerance:
                depth = self._depth[best][1]
                self._discard(ci)  # older colour frames will never be used
                for _ in range(ci + 1):
                    self._colour.popleft()
                for _ in range(best + 1):
                    self._depth.popleft()
                self.paired += 1
                self._last_pair_at = now
                self._colour_since_pair = len(self._colour)
                self._waiting_since = now if self._colour else None
                return colour, depth
        return None


class CameraInfoHistory:
    """The recent CameraInfos by stamp, to give each image the one that belongs to it.

    An image takes the CameraInfo of its own stamp; without one, the newest CameraInfo of its size (a driver
    that publishes CameraInfo less often, or a little late).  So one CameraInfo of another size (another camera
    on the topic, a resolution switch) never decides for the images that do not have it.  Bounded: the newest
    ``capacity`` stamps, and the newest CameraInfo of each of at most ``capacity`` sizes.
    """

    def __init__(self, capacity: int = 64) -> None:
        self._capacity = capacity
        self._by_stamp: collections.OrderedDict = collections.OrderedDict()
        self._by_size: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, stamp: float, size: tuple[int, int], info: Any) -> None:
        """Store ``info`` (anything: the node keeps its Camera) for the image ``size`` (width, height)."""
        with self._lock:
            self._by_stamp[stamp] = (size, info)
            self._by_stamp.move_to_end(stamp)
            while len(self._by_stamp) > self._capacity:
                self._by_stamp.popitem(last=False)
            self._by_size[size] = info
            self._by_size.move_to_end(size)
            while len(self._by_size) > self._capacity:
                self._by_size.popitem(last=False)

    def for_image(self, stamp: float, size: tuple[int, int]) -> Any:
        """The CameraInfo of this image: same stamp and size, else the newest of its size; None if there is none."""
        with self._lock:
            same_stamp = self._by_stamp.get(stamp)
            if same_stamp is not None and same_stamp[0] == size:
                return same_stamp[1]
            return self._by_size.get(size)

    def sizes(self) -> list[tuple[int, int]]:
        """The image sizes CameraInfo was received for, newest last."""
        with self._lock:
            return list(self._by_size)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_size)
