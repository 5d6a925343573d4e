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
