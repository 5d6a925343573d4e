"""Matcher training: reprojection labels, the assignment loss, and exact resume on real images."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from silk_ros.features.model import SilkNet
from silk_ros.matching.attention import load_attention_net
from silk_ros.weights import save_weights
from training.matcher import (
    IGNORED,
    THRESHOLD_CANDIDATES,
    UNMATCHED,
    MatcherTrainConfig,
    MatcherTrainer,
    assignment_nll,
    build_pool,
    reprojection_labels,
)

TINY = Path(__file__).resolve().parents[1] / "training" / "configs" / "matcher_tiny.yaml"


def test_reprojection_labels_mutual_within_radius():
    h = np.array([[1.0, 0, 10], [0, 1, -5], [0, 0, 1]])  # pure shift (+10, -5)
    kpts0 = np.array([[20, 20], [50, 50], [80, 30], [5, 90]], np.float32)
    kpts1 = np.array(
        [
            [30.5, 15.0],  # partner of 0, 0.5 px off
            [64.0, 45.0],  # 4 px from keypoint 1's reprojection: ambiguous
            [90.0, 25.0],  # exact partner of 2
            [91.0, 25.0],  # second candidate for 2, 1 px off: not mutual -> ignored (within 5 px)
            [200.0, 10.0],  # far from everything
        ],
        np.float32,
    )
    gt0, gt1 = reprojection_labels(kpts0, kpts1, h, (120, 240), (120, 240), 3.0, 5.0)
    assert gt0.tolist() == [0, IGNORED, 2, UNMATCHED]
    assert gt1.tolist() == [0, IGNORED, 2, IGNORED, UNMATCHED]


def test_assignment_nll_rewards_the_right_assignment():
    gt0 = torch.tensor([[1, UNMATCHED]])
    gt1 = torch.tensor([[IGNORED, 0]])
    good = torch.full((1, 3, 3), -20.0)
    good[0, 0, 1] = 0.0  # 0 <-> 1 matched
    good[0, 1, 2] = 0.0  # keypoint 1 of view 0 in its dustbin
    bad = good.clone()
    bad[0, 0, 1], bad[0, 0, 0] = -20.0, 0.0
    assert float(assignment_nll(good, gt0, gt1)) < 1e-6
    assert float(assignment_nll(bad, gt0, gt1)) > 5.0


@pytest.fixture()
def tiny_config(data_root, tmp_path):
    torch.manual_seed(0)
    silk = SilkNet("vggnp-mu")
    silk_path = save_weights(tmp_path / "silk.pt", "silk", asdict(silk.config), silk.state_dict(), {"test": True})
    config = MatcherTrainConfig.from_yaml(TINY)
    config.silk_weights = str(silk_path)
    config.data_root = str(data_root)
    config.cache_dir = str(tmp_path / "cache")
    config.run_dir = str(tmp_path / "run")
    return config


def test_pool_is_cached_and_labelled(tiny_config):
    pool = build_pool(tiny_config, "train", progress=False)
    assert pool["kpts0"].shape == (6, 64, 2) and pool["desc0"].shape == (6, 64, 32)
    assert bool(pool["mask0"].all())
    matched = pool["gt0"] >= 0
    # labels are mutual: gt1[gt0[i]] == i
    rows, cols = matched.nonzero(as_tuple=True)
    assert torch.equal(pool["gt1"][rows, pool["gt0"][rows, cols]], cols)
    again = build_pool(tiny_config, "train", progress=False)  # from the cache file
    assert torch.equal(again["desc1"], pool["desc1"])
    assert len(list(Path(tiny_config.cache_dir).glob("pool_train_*.pt"))) == 1


def test_exact_resume_and_weights(tiny_config, tmp_path):
    straight = MatcherTrainer(tiny_config, progress=False)
    straight.fit()
    resumed_config = MatcherTrainConfig.from_dict({**tiny_config.to_dict(), "run_dir": str(tmp_path / "resumed")})
    first = MatcherTrainer(resumed_config, progress=False)
    first.fit(stop_after=2)
    second = MatcherTrainer(resumed_config, progress=False)
    assert second.load_checkpoint() and second.step == 2
    second.fit()
    for name, tensor in straight.model.state_dict().items():
        torch.testing.assert_close(tensor, second.model.state_dict()[name], rtol=0, atol=0, msg=name)
    path = second.save_matcher()
    net = load_attention_net(path)
    assert net.config.variant == "both" and net.provenance["steps"] == tiny_config.steps
    # the threshold chosen on the validation pool becomes the default; an explicit option overrides it
    assert net.config.filter_threshold == net.provenance["filter_threshold"]
    assert set(net.provenance["validation_f1_by_threshold"]) == {str(t) for t in THRESHOLD_CANDIDATES}
    assert load_attention_net(path, filter_threshold=0.3).config.filter_threshold == 0.3
    changed = MatcherTrainConfig.from_dict({**resumed_config.to_dict(), "lr": 0.5})
    with pytest.raises(ValueError, match="another config"):
        MatcherTrainer(changed, progress=False).load_checkpoint()
