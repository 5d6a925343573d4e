"""Fine-tuning runs: a run starts from given weights (``init_weights``), validates on crops of its own size
(``val_crop``) and on synthetic-room pose pairs (``val_pose_pairs``), and keeps its best-pose checkpoint."""

from __future__ import annotations

import pytest
import torch

from silk_ros.datasets.paths import REPO_ROOT
from silk_ros.features import load_silk_model
from silk_ros.weights import load_weights
from training.config import TrainConfig
from training.export import main as export_main
from training.silk import Trainer
from training.silk import main as train_main

TINY = str(REPO_ROOT / "training/configs/tiny.yaml")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sb = b.state_dict()
    return all(torch.equal(value, sb[key]) for key, value in a.state_dict().items())


@pytest.mark.usefixtures("data_root")
def test_a_run_starts_from_shipped_weights_or_a_checkpoint(tmp_path):
    config = TrainConfig.from_yaml(TINY, [f"run_dir={tmp_path / 'a'}"])
    trainer = Trainer(config, progress=False)
    shipped = load_silk_model("silk-mu")
    assert not _same_weights(trainer.model, shipped)
    trainer.initialise_from("silk-mu")
    assert _same_weights(trainer.model, shipped)

    trainer.fit(stop_after=1)  # moves the weights and writes checkpoint_last.pt
    other = Trainer(TrainConfig.from_yaml(TINY, [f"run_dir={tmp_path / 'b'}"]), progress=False)
    other.initialise_from(str(trainer.checkpoint_path))
    assert _same_weights(other.model, trainer.model) and not _same_weights(other.model, shipped)
    assert other.step == 0  # the weights only: the run itself starts at step 0


def test_val_crop_and_pose_pairs_are_checked():
    for bad in ("val_crop=8", "val_crop=-1", "val_pose_pairs=-2"):
        with pytest.raises(ValueError, match=bad.split("=")[0]):
            TrainConfig.from_yaml(TINY, [bad]).validate()


@pytest.mark.usefixtures("data_root")
def test_fine_tune_validates_pose_and_keeps_the_best_pose_checkpoint(tmp_path, capsys):
    run_dir = tmp_path / "run"
    settings = ["init_weights=silk-mu", "val_crop=48", "val_pose_pairs=3", "val_every=2"]
    argv = ["--config", TINY, "--run-dir", str(run_dir), "--steps", "4", "--no-progress"]
    argv += [arg for setting in settings for arg in ("--set", setting)]
    assert train_main(argv) == 0
    assert "started from the weights silk-mu" in capsys.readouterr().err

    last = torch.load(run_dir / "checkpoint_last.pt", weights_only=False)
    validations = [h for h in last["history"] if "val_f1" in h]
    assert [h["step"] for h in validations] == [2, 4]
    aucs = [h["val_pose_auc10"] for h in validations]
    # Shipped weights a couple of small steps away: they solve some of the rendered pairs.
    assert all(0.0 < auc <= 1.0 for auc in aucs), aucs
    best_pose = torch.load(run_dir / "checkpoint_best_pose.pt", weights_only=False)
    assert best_pose["step"] == validations[aucs.index(max(aucs))]["step"]
    out = tmp_path / "best_pose.pt"
    assert export_main(["--run-dir", str(run_dir), "--checkpoint", "best_pose", "--out", str(out), "--no-int8"]) == 0
    assert load_weights(out, kind="silk").provenance["steps"] == best_pose["step"]

    # Resuming restores the run; the initial weights are not loaded again.
    assert train_main([*argv[:5], "6", *argv[6:]]) == 0
    assert "resumed from" in capsys.readouterr().err


@pytest.mark.usefixtures("data_root")
def test_validation_crops_have_the_val_crop_size(tmp_path):
    config = TrainConfig.from_yaml(TINY, [f"run_dir={tmp_path}", "val_crop=48"])
    trainer = Trainer(config, progress=False)
    metrics = trainer.validate()
    views0, views1, _ = trainer._val_batches[0]
    assert views0.shape[-2:] == views1.shape[-2:] == (48, 48) and trainer.grid == 32 - 2 * trainer.border
    assert 0.0 <= metrics["val_f1"] <= 1.0 and "val_pose_auc10" not in metrics


@pytest.mark.usefixtures("data_root")
def test_a_context_run_trains_and_validates_the_joined_descriptors(tmp_path, monkeypatch):
    """``context_scale``: the losses see (2D)-channel joined descriptors, the validation too, and a DDP run with it is
    refused up front (its second forward pass is not under DDP)."""
    config = TrainConfig.from_yaml(TINY, [f"run_dir={tmp_path / 'c'}", "context_scale=0.5"])
    trainer = Trainer(config, progress=False)
    views = torch.rand(2, 1, config.crop, config.crop)
    _, desc = trainer.model(views)
    joined = trainer._matched_descriptors(views, desc)
    assert joined.shape == (2, 2 * desc.shape[1], *desc.shape[2:])
    assert torch.allclose(joined.norm(dim=1), torch.ones(1))
    before = trainer.parameter_digest()
    trainer.fit(stop_after=2)
    assert trainer.parameter_digest() != before and trainer.step == 2
    assert "val_f1" in trainer.validate()
    with pytest.raises(ValueError, match="context_scale must be in"):
        TrainConfig.from_yaml(TINY, ["context_scale=1.5"])
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="one process"):
        Trainer(config, progress=False)
