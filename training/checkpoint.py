"""Training checkpoints written atomically, so a run killed mid-write resumes from the previous one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_NAME = "checkpoint_last.pt"
#: The checkpoint of the best validation F1 so far (same record): the one to export, since the last one is
#: overwritten every ``checkpoint_every`` steps.
BEST_CHECKPOINT_NAME = "checkpoint_best.pt"
#: The checkpoint of the best validation pose AUC@10 so far (``val_pose_pairs`` > 0).
BEST_POSE_CHECKPOINT_NAME = "checkpoint_best_pose.pt"


def save_checkpoint_atomically(record: dict[str, Any], path: Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(record, tmp)
    os.replace(tmp, path)
    return path
