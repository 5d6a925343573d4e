"""Exact resume: a training process killed (SIGKILL) mid-run and restarted ends bit-identical to an
uninterrupted run (model, BatchNorm buffers, Adam state), because RNG states, optimiser and the
step-indexed data order are all restored from the checkpoint."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from silk_ros.datasets.paths import REPO_ROOT

STEPS = 20


def _command(run_dir: Path, fresh: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "training.silk", "--config", str(REPO_ROOT / "training/configs/tiny.yaml"),
           "--run-dir", str(run_dir), "--steps", str(STEPS), "--no-progress"]
    return cmd + (["--fresh"] if fresh else [])


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}


def _last_logged_step(run_dir: Path) -> int:
    log = run_dir / "log.jsonl"
    if not log.exists():
        return 0
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    return int(lines[-1].split('"step": ')[1].split(",")[0]) if lines else 0


@pytest.mark.usefixtures("data_root")
def test_resume_after_kill_is_exact(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_command(straight, fresh=True), cwd=REPO_ROOT, env=_env(), check=True, capture_output=True)

    proc = subprocess.Popen(_command(killed, fresh=True), cwd=REPO_ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _last_logged_step(killed) < 5 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = torch.load(killed / "checkpoint_last.pt", weights_only=False)["step"]
    assert 0 < interrupted_at < STEPS

    resumed = subprocess.run(_command(killed), cwd=REPO_ROOT, env=_env(), check=True, capture_output=True, text=True)
    assert f"at step {interrupted_at}" in resumed.stderr

    a = torch.load(straight / "checkpoint_last.pt", weights_only=False)
    b = torch.load(killed / "checkpoint_last.pt", weights_only=False)
    assert a["step"] == b["step"] == STEPS
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for index, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][index][name]), (index, name)
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    _check_best_checkpoint(straight, tmp_path)


def _check_best_checkpoint(run_dir: Path, tmp_path: Path) -> None:
    """The run keeps the checkpoint of its best validation F1 beside the latest one, and export ships that one by
    default (the latest is overwritten every few steps, so the best would otherwise be gone)."""
    from training.export import main as export_main

    last = torch.load(run_dir / "checkpoint_last.pt", weights_only=False)
    validations = [h for h in last["history"] if "val_f1" in h]
    assert len(validations) >= 3
    best_step = max(validations, key=lambda h: h["val_f1"])["step"]  # the first of equal maxima
    best = torch.load(run_dir / "checkpoint_best.pt", weights_only=False)
    assert best["step"] == best_step
    out = tmp_path / "best.pt"
    assert export_main(["--run-dir", str(run_dir), "--out", str(out), "--int8-images", "2"]) == 0
    from silk_ros.features.quantize import load_int8_models
    from silk_ros.weights import load_weights

    assert load_weights(out, kind="silk").provenance["steps"] == best_step
    assert set(load_int8_models(out)) == {"keypoints", "dense"}  # exported weights come with their 8-bit models
