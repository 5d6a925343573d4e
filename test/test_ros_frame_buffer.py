"""The callback -> worker hand-over (newest-frame slot, bounded queue) and colour/depth pairing, with real threads."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("rclpy")

from silk_ros.ros.frame_buffer import DepthPairer, FrameQueue, LatestFrameSlot  # noqa: E402


def test_slot_keeps_only_the_newest_and_counts_drops():
    slot = LatestFrameSlot()
    assert slot.put(1) is False and slot.put(2) is True and slot.put(3) is True
    assert slot.dropped == 2 and len(slot) == 1
    assert slot.get(0.01) == 3 and slot.get(0.01) is None  # bounded: one item, never a backlog


def test_slot_wakes_a_waiting_consumer_and_close_releases_it():
    slot = LatestFrameSlot()
    got = []
    consumer = threading.Thread(target=lambda: got.append(slot.get(5.0)))
    consumer.start()
    time.sleep(0.05)
    slot.put("frame")
    consumer.join(2.0)
    assert got == ["frame"]
    waiting = threading.Thread(target=lambda: got.append(slot.get(10.0)))
    waiting.start()
    started = time.monotonic()
    slot.close()
    waiting.join(2.0)
    assert got[-1] is None and time.monotonic() - started < 1.0


def test_queue_blocks_the_producer_instead_of_dropping():
    queue = FrameQueue(capacity=2)
    queue.put(1)
    queue.put(2)
    done = threading.Event()

    def producer():
        queue.put(3)  # blocks while full
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(0.2)
    assert not done.is_set() and len(queue) == 2
    assert queue.get(0.1) == 1
    thread.join(2.0)
    assert done.is_set() and [queue.get(0.1), queue.get(0.1)] == [2, 3] and queue.dropped == 0
    with pytest.raises(ValueError):
        FrameQueue(0)


def test_pairer_matches_by_stamp_within_tolerance_and_discards_older_frames():
    pairer = DepthPairer(tolerance=0.01, capacity=4)
    assert pairer.add_colour(1.000, "c1") is None
    assert pairer.add_colour(1.033, "c2") is None
    assert pairer.add_depth(1.034, "d2") == ("c2", "d2")  # c1 is older than the pair: never used
    assert pairer.unpaired == 1
    assert pairer.add_depth(1.066, "d3") is None  # colour for it not here yet
    assert pairer.add_colour(1.0665, "c3") == ("c3", "d3")
    assert pairer.add_colour(1.100, "c4") is None
    assert pairer.add_depth(1.200, "d5") is None  # 100 ms away: outside tolerance
    for i in range(5):  # a stream without partners overflows the bounded buffer: counted, not kept
        pairer.add_colour(2.0 + i, f"x{i}")
    assert pairer.unpaired >= 3
