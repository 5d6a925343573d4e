"""External odometry/SLAM systems run by ``silk-vo bench vo`` as extra front ends ("peers"), through the same
replay, frames, report and ATE alignment as silk_ros' own.

Benchmark-only: their packages come from ``requirements-bench.txt`` (``make bench``), are imported lazily when a
peer is built, and nothing outside ``silk_ros/bench/peers`` imports them (``test/test_layering.py``).
"""

from __future__ import annotations

import importlib

from .base import PeerOdometry, PeerOptions, PeerUnavailable

__all__ = ["PEERS", "PeerOptions", "is_peer", "make_peer", "skip_reason", "PeerOdometry", "PeerUnavailable"]

#: front-end name -> (module, class, modes it runs in)
PEERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "open3d-rgbd": ("silk_ros.bench.peers.open3d_rgbd", "Open3dRgbdOdometry", ("rgbd",)),
    "orbslam3": ("silk_ros.bench.peers.orbslam3", "OrbSlam3", ("mono", "rgbd")),
}


def is_peer(name: str) -> bool:
    return name in PEERS


def skip_reason(name: str, mode: str) -> str | None:
    """Why the peer does not run on a sequence of this mode (None: it does)."""
    modes = PEERS[name][2]
    return None if mode in modes else f"{name} runs only in {' or '.join(modes)} mode; this run is {mode}"


def make_peer(name: str, mode: str, options: PeerOptions | None = None) -> PeerOdometry:
    """Build the peer for ``mode``; :class:`PeerUnavailable` names the missing package or file."""
    reason = skip_reason(name, mode)
    if reason:
        raise PeerUnavailable(reason)
    module, cls, _ = PEERS[name]
    return getattr(importlib.import_module(module), cls)(mode, options or PeerOptions())
