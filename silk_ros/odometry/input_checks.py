"""What an image or depth map must be for the odometry to give a pose, checked before it runs, with a message that
says what is wrong and what is needed.  The node uses these to skip a frame with a reason of its own
(``image_too_small``, ``invalid_depth``) instead of a processing error; library users get the same lines from
:class:`~silk_ros.odometry.vo.VisualOdometry`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_IMAGE_SIDE", "depth_problem", "image_size_problem"]

#: Smallest image side (px) the odometry takes.  SiLK's network trims 3 px on every side, and a pose needs at
#: least ``min_inliers`` (default 20) matched keypoints: on 7-Scenes images shrunk to 24x24 SiLK finds 19
#: keypoints, at 32x32 about 40 (tracking can start).  ORB (31 px border) and SIFT need larger images still to
#: find that many, but run.
MIN_IMAGE_SIDE = 32


def image_size_problem(width: int, height: int) -> str | None:
    """Why an image of ``width`` x ``height`` is too small for the odometry, or None."""
    if min(width, height) >= MIN_IMAGE_SIDE:
        return None
    return (
        f"image is {width}x{height} px, the odometry needs at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}: SiLK trims "
        f"3 px per side and a pose needs at least 20 matched keypoints, which a smaller image cannot hold"
    )


def depth_problem(depth: np.ndarray, depth_min: float, depth_max: float) -> str | None:
    """Why a depth map (metres) has not a single usable pixel, or None.  Usable: finite and within
    ``[depth_min, depth_max]``.  The message counts what the pixels are instead (zero, NaN, infinite, out of range)."""
    depth = np.asarray(depth)
    finite = np.isfinite(depth)
    usable = finite & (depth >= depth_min) & (depth <= depth_max)
    if usable.any():
        return None
    total = depth.size
    counts = {
        "zero": int(np.count_nonzero(finite & (depth == 0))),
        "NaN": int(np.count_nonzero(np.isnan(depth))),
        "infinite": int(np.count_nonzero(np.isinf(depth))),
    }
    counts["outside the range"] = total - sum(counts.values())
    seen = ", ".join(f"{count} {what}" for what, count in counts.items() if count)
    return (
        f"depth has no usable pixel in [depth_min, depth_max] = [{depth_min:g}, {depth_max:g}] m "
        f"({seen} of {total}): 16UC1 must be millimetres, 32FC1 metres"
    )
