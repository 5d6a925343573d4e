"""Shared fixtures: the real data beside the repo (tests that need it skip only when it is absent)."""

from __future__ import annotations

import os

import pytest

from silk_ros.datasets.paths import shared_data_root

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def data_root():
    root = shared_data_root()
    if not root.exists():
        pytest.skip(f"shared data not found at {root}")
    return root


@pytest.fixture(scope="session")
def redkitchen_frames(data_root):
    """16 frames of 7-Scenes redkitchen (real Kinect colour + depth) at 320x240, every second frame."""
    from silk_ros.datasets import open_sequence

    path = data_root / "sequences" / "7scenes_redkitchen"
    return list(open_sequence("7scenes", path, resize=(320, 240), max_frames=16, stride=2))


@pytest.fixture(scope="module")
def ros():
    """rclpy initialised on a private DDS domain per test module (read by rclpy.init and inherited by
    subprocesses): no cross-talk with other modules or with other test sessions on this machine."""
    import random

    import rclpy

    os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))
    rclpy.init()
    yield
    rclpy.shutdown()


@pytest.fixture
def running(ros):
    """Factory: start SilkVoNode(parameters) + a NodeHarness, spinning in this process; everything is torn down
    after the test.  Returns (node, harness)."""
    from silk_ros.ros.harness import NodeHarness, spin_in_background
    from silk_ros.ros.node import SilkVoNode

    started = []

    def start(parameters, connected: bool = True, **harness_options):
        """``connected=False``: a harness whose image publisher the node cannot hear (another topic, QoS)."""
        node = SilkVoNode(parameter_overrides=parameters)
        harness = NodeHarness(**harness_options)
        executor, thread = spin_in_background(node, harness)
        started.append((executor, thread, node, harness))
        if connected:
            assert harness.wait_for_subscribers(15.0), "DDS discovery of the node's image subscription failed"
        return node, harness

    yield start
    for executor, thread, node, harness in started:
        executor.shutdown()
        thread.join(5.0)
        node.destroy_node()
        harness.destroy_node()
