"""Where the shared evaluation/training data lives (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_root() -> Path:
    """``$SILK_ROS_DATA`` if set, else ``../shared/data`` beside the repository."""
    env = os.environ.get("SILK_ROS_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"
