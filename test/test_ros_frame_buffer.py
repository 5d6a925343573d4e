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


def test_pairer_reports_every_colour_frame_that_will_never_pair():
    lost = []
    pairer = DepthPairer(tolerance=0.01, capacity=3, on_unpaired=lost.append)
    for i in range(5):
        pairer.add_colour(float(i), f"c{i}")
    assert sum(lost) == 2 and pairer.unpaired == 2 and len(pairer) == 3  # the deque overflowed twice
    assert pairer.add_depth(4.0, "d4") == ("c4", "d4")
    assert sum(lost) == 4 and len(pairer) == 0  # c2 and c3 are older than the pair: never used
    pairer.add_colour(5.0, "c5")
    assert pairer.clear() == 1 and sum(lost) == 4  # a reset is not the stream's fault


def test_pairer_says_why_depth_does_not_pair():
    silent = DepthPairer(tolerance=0.02)
    for i in range(3):
        silent.add_colour(100.0 + i, i, now=float(i))
    assert silent.stall(now=2.5, timeout=5.0) is None  # not for long enough
    assert "no depth frame has arrived" in silent.stall(now=5.5, timeout=5.0)

    offset = DepthPairer(tolerance=0.02)
    for i in range(3):
        offset.add_colour(100.0 + i, i, now=float(i))
        offset.add_depth(100.5 + i, i, now=float(i))  # half a second off: never within tolerance
    message = offset.stall(now=6.0, timeout=5.0)
    assert "do not pair" in message and "-0.500 s" in message and "depth_sync_tolerance 0.02" in message

    stopped = DepthPairer(tolerance=0.02)
    assert stopped.add_colour(100.0, "c", now=0.0) is None
    assert stopped.add_depth(100.0, "d", now=0.0) == ("c", "d")
    assert stopped.stall(now=10.0, timeout=5.0) is None  # nothing waits
    for i in range(1, 8):
        stopped.add_colour(100.0 + i, i, now=float(i))
    message = stopped.stall(now=8.0, timeout=5.0)
    assert "stopped 8.0 s ago" in message and "7 image(s)" in message


def test_camera_infos_are_chosen_by_stamp_then_by_size():
    from silk_ros.ros.frame_buffer import CameraInfoHistory

    history = CameraInfoHistory(capacity=4)
    assert history.for_image(1.0, (320, 240)) is None
    history.add(1.0, (320, 240), "A@1")
    history.add(2.0, (640, 480), "big@2")  # one CameraInfo of another size (another camera, a switch)
    history.add(3.0, (320, 240), "A@3")
    assert history.for_image(1.0, (320, 240)) == "A@1"  # its own stamp
    assert history.for_image(2.0, (320, 240)) == "A@3"  # same stamp but another size: the newest of its size
    assert history.for_image(9.0, (320, 240)) == "A@3" and history.for_image(9.0, (640, 480)) == "big@2"
    assert history.for_image(9.0, (160, 120)) is None and history.sizes() == [(640, 480), (320, 240)]
    for i in range(10):  # bounded
        history.add(10.0 + i, (320, 240), f"A@{10 + i}")
    assert history.for_image(1.0, (320, 240)) == "A@19" and len(history._by_stamp) == 4
