"""Matcher training: reprojection labels, the assignment loss, and exact resume on real images."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from silk_ros.features.model import SilkNet
from silk_ros.geometry.camera import Camera
from silk_ros.matching.attention import load_attention_net
from silk_ros.weights import save_weights
from training import matcher as matcher_module
from training.matcher import (
    IGNORED,
    THRESHOLD_CANDIDATES,
    UNMATCHED,
    MatcherTrainConfig,
    MatcherTrainer,
    assignment_nll,
    batch_from_pool,
    build_pool,
    depth_labels,
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


def test_depth_labels_follow_parallax_and_occlusion():
    """A wall 2 m ahead, the second camera 0.1 m to the right: partners shift by f * 0.1 / 2 = 5 px to the left;
    a keypoint whose partner is hidden behind a nearer surface in view 1 is unmatched, never matched."""
    camera = Camera.from_intrinsics(100.0, 100.0, 79.5, 59.5, 160, 120)
    depth0 = np.full((120, 160), 2.0, np.float32)
    depth1 = depth0.copy()
    depth1[:, 100:] = 1.0  # a nearer box covers the right of view 1
    t_1_0 = np.eye(4)
    t_1_0[0, 3] = -0.1  # camera 1 at x = +0.1 m in camera 0's frame
    kpts0 = np.array([[40.0, 60.0], [70.0, 30.0], [120.0, 60.0], [150.0, 100.0]], np.float32)
    kpts1 = np.array([[35.5, 60.0], [65.0, 30.0], [115.0, 60.0], [3.0, 3.0]], np.float32)
    gt0, gt1 = depth_labels(kpts0, kpts1, depth0, depth1, camera, camera, t_1_0, 3.0, 5.0)
    assert gt0.tolist() == [0, 1, UNMATCHED, UNMATCHED]  # 2 is occluded in view 1 (its 115 px is the box)
    assert gt1.tolist()[:2] == [0, 1] and gt1[3] == UNMATCHED
    # without the box keypoint 2 has its partner
    gt0, _ = depth_labels(kpts0, kpts1, depth0, depth0, camera, camera, t_1_0, 3.0, 5.0)
    assert gt0.tolist()[:3] == [0, 1, 2]


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


def test_an_interrupted_pool_build_resumes_from_its_chunks(tiny_config, monkeypatch):
    """A cache build cut off (a session's end) keeps its finished chunks and resumes after them; the pool is the
    one a straight build gives, and the chunks are gone once the pool file is written."""
    tiny_config.room_pairs, tiny_config.room_size, tiny_config.keypoint_selection = 5, [96, 64], "default"
    monkeypatch.setattr(matcher_module, "CHUNK_PAIRS", 2)
    straight = build_pool(tiny_config, "train", progress=False)
    cache = Path(tiny_config.cache_dir)
    for f in cache.glob("*.pt"):
        f.unlink()
    real_room_pair, built = matcher_module._room_pair, []

    def room_pair_cut_at(stop):
        def maker(*args):
            pair = real_room_pair(*args)

            def counted(i):
                if i == stop:
                    raise KeyboardInterrupt
                built.append(i)
                return pair(i)
            return counted
        return maker

    monkeypatch.setattr(matcher_module, "_room_pair", room_pair_cut_at(3))
    with pytest.raises(KeyboardInterrupt):
        build_pool(tiny_config, "train", progress=False)
    assert len(list(cache.glob("rooms_train_*.chunk*.pt"))) == 1  # pairs 0-1 saved; pair 2 is lost with its chunk
    built.clear()
    monkeypatch.setattr(matcher_module, "_room_pair", room_pair_cut_at(None))
    resumed = build_pool(tiny_config, "train", progress=False)
    assert built == [2, 3, 4]  # only what the chunks did not hold
    assert all(torch.equal(resumed[name], straight[name]) for name in straight)
    assert not list(cache.glob("*.chunk*.pt")) and len(list(cache.glob("rooms_train_*.pt"))) == 1


def test_context_pool_trains_a_matcher_of_the_context_descriptors_size(tiny_config):
    """``context_scale`` pools the extractor's context descriptors (twice the network's size, own half first) in a
    cache file of its own, and the trainer's matcher takes that size."""
    own = build_pool(tiny_config, "train", progress=False)
    tiny_config.context_scale = 0.5
    pool = build_pool(tiny_config, "train", progress=False)
    assert pool["desc0"].shape == (6, 64, 64) and torch.equal(pool["kpts0"], own["kpts0"])
    assert len(list(Path(tiny_config.cache_dir).glob("pool_train_*.pt"))) == 2
    fine = pool["desc0"][..., :32]
    cosine = (fine * own["desc0"]).sum(-1) / fine.norm(dim=-1).clamp_min(1e-12)
    assert float(cosine[pool["mask0"]].min()) > 0.999  # the own half is the network's descriptor
    trainer = MatcherTrainer(tiny_config, progress=False)
    assert trainer.model.config.descriptor_dim == 64
    losses = trainer.train_step()
    assert losses and all(np.isfinite(v) for v in losses.values())


def test_room_pairs_join_the_pool_with_their_own_size(tiny_config):
    """3D pairs of a rendered room are labelled from depth and normalised by their own view size."""
    tiny_config.room_pairs, tiny_config.room_size, tiny_config.keypoint_selection = 2, [96, 64], "default"
    pool = build_pool(tiny_config, "train", progress=False)
    assert pool["kpts0"].shape[0] == 8
    assert pool["size"][-1].tolist() == [64, 96] and pool["size"][0].tolist() == [96, 96]
    rooms = slice(6, 8)
    matched = pool["gt0"][rooms] >= 0
    assert int(matched.sum()) > 0  # the room views overlap
    rows, cols = matched.nonzero(as_tuple=True)
    assert torch.equal(pool["gt1"][rooms][rows, pool["gt0"][rooms][rows, cols]], cols)
    batch = batch_from_pool(pool, np.array([0, 7]), np.zeros(2, bool))
    valid = batch["mask0"]
    assert float(batch["kpts0"][valid].abs().max()) <= 1.0 + 1e-6
    assert len(list(Path(tiny_config.cache_dir).glob("rooms_train_*.pt"))) == 1


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


def test_a_fine_tune_starts_from_the_given_matcher(tiny_config, tmp_path):
    trained = MatcherTrainer(tiny_config, progress=False)
    trained.fit(stop_after=2)
    path = trained.save_matcher(tmp_path / "start.pt")
    tuned_config = MatcherTrainConfig.from_dict(
        {**tiny_config.to_dict(), "run_dir": str(tmp_path / "tuned"), "init_matcher": str(path), "seed": 7}
    )
    tuned = MatcherTrainer(tuned_config, progress=False)
    for name, tensor in trained.model.state_dict().items():
        torch.testing.assert_close(tensor, tuned.model.state_dict()[name], rtol=0, atol=0, msg=name)
    fresh = MatcherTrainer(MatcherTrainConfig.from_dict({**tuned_config.to_dict(), "init_matcher": ""}), progress=False)
    assert any(
        not torch.equal(tensor, fresh.model.state_dict()[name]) for name, tensor in trained.model.state_dict().items()
    )
    other = MatcherTrainConfig.from_dict(
        {**tuned_config.to_dict(), "model": {**tuned_config.model, "num_layers": tuned_config.model["num_layers"] + 1}}
    )
    with pytest.raises(ValueError, match="architecture differs"):
        MatcherTrainer(other, progress=False)


def test_pooled_features_are_keyed_by_the_extraction_code(tmp_path, monkeypatch):
    """A change to how features are extracted (not only to the weights or the config) makes the cached pools stale:
    session 21's padded context pass left pools that later, clamped runs would have read as current."""
    import training.matcher as matcher

    weights = tmp_path / "w.pt"
    weights.write_bytes(b"same weights")
    config = MatcherTrainConfig.from_yaml(TINY)
    before = matcher._pool_key(config, "train", 8, weights)
    assert matcher._pool_key(config, "train", 8, weights) == before
    monkeypatch.setattr(matcher, "_extraction_code_digest", lambda: "another extractor")
    assert matcher._pool_key(config, "train", 8, weights) != before
