"""Scale-out: the same trainer under torchrun with two CPU processes (gloo) keeps replicas identical."""

import json
import os
import subprocess
import sys

import pytest

from silk_ros.datasets.paths import REPO_ROOT


@pytest.mark.usefixtures("data_root")
def test_two_gloo_processes_stay_in_sync(tmp_path):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        "-m", "training.silk", "--config", str(REPO_ROOT / "training/configs/tiny.yaml"),
        "--run-dir", str(tmp_path / "ddp"), "--steps", "4", "--fresh", "--no-progress",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert out.returncode == 0, out.stderr[-3000:]
    replicas = [json.loads((tmp_path / "ddp" / f"replica_{rank}.json").read_text()) for rank in (0, 1)]
    assert sorted(r["rank"] for r in replicas) == [0, 1]
    assert all(r["step"] == 4 for r in replicas)
    # Identical parameters and BatchNorm buffers on both ranks ...
    assert replicas[0]["parameter_digest"] == replicas[1]["parameter_digest"]
    # ... although each rank trained on its own pairs (different losses).
    assert replicas[0]["last_loss"] != replicas[1]["last_loss"]
    # And the shared result differs from the initial weights: training happened.
    import torch

    from training.config import TrainConfig
    from training.silk import Trainer

    config = TrainConfig.from_yaml(REPO_ROOT / "training/configs/tiny.yaml")
    config.val_pairs = 0
    initial = Trainer(config, run_dir=tmp_path / "init", progress=False)
    assert initial.parameter_digest() != replicas[0]["parameter_digest"]
    checkpoint = torch.load(tmp_path / "ddp/checkpoint_last.pt", weights_only=False)
    initial.model.load_state_dict(checkpoint["model"])
    assert initial.parameter_digest() == replicas[0]["parameter_digest"]
