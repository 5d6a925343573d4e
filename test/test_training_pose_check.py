"""``python -m training.pose_check``: the threshold chosen by pose and the check against MNN, on the shipped matcher
and rendered rooms (a few pairs: the real check renders 64 a room)."""

from __future__ import annotations

import shutil

import pytest

from silk_ros.bench.pose_pairs import evaluate_pose
from silk_ros.matching.attention import load_attention_net
from silk_ros.weights import load_weights, shipped_weights
from training import pose_check
from training.matcher import THRESHOLD_CANDIDATES


@pytest.fixture(scope="module")
def pairs(data_root):
    return pose_check.synthetic_pose_pairs(3, seed=5, data_root=data_root, progress=False)


def test_thresholds_from_one_assignment_equal_a_matcher_at_each_threshold(pairs):
    """One run of the matcher at threshold 0 filtered by probability gives what a matcher built at t gives."""
    extractor, matcher = pose_check.front_end("matcher-mu", "silk-mu", 512, threshold=0.0)
    swept = pose_check.pose_auc_by_threshold(extractor, matcher, pairs, (0.0, 0.2, 0.5))
    for t in (0.0, 0.2, 0.5):
        _, at_t = pose_check.front_end("matcher-mu", "silk-mu", 512, threshold=t)
        assert swept[t] == pytest.approx(evaluate_pose(extractor, pairs, matcher=at_t)["auc@10"], abs=1e-12)
    with pytest.raises(ValueError, match="threshold"):
        pose_check.pose_auc_by_threshold(extractor, at_t, pairs, (0.0, 0.2))


def test_chosen_threshold_becomes_the_weights_default(tmp_path, data_root):
    path = tmp_path / "matcher.pt"
    shutil.copy(shipped_weights("matcher-mu"), path)
    before = load_weights(path, kind="matcher").provenance
    assert pose_check.main(["--matcher-weights", str(path), "--pairs", "2", "--seeds", "0,1",
                            "--threshold-seeds", "3", "--choose-threshold", "--write"]) == 0
    after = load_weights(path, kind="matcher").provenance
    assert after["filter_threshold"] in THRESHOLD_CANDIDATES
    # the trainer's F1 choice is kept (a file checked before keeps its first one: the shipped file holds 0.3)
    assert after["filter_threshold_f1"] == before.get("filter_threshold_f1", before["filter_threshold"])
    assert after["filter_threshold_chosen_on"]["seeds"] == [3]
    assert set(after["filter_threshold_chosen_on"]["pose_auc10_by_threshold"]) == {str(t) for t in THRESHOLD_CANDIDATES}
    check = after["pose_vs_mnn"]
    assert set(check["per_seed"]) == {"0", "1"}
    per_seed = [check["per_seed"][seed]["matcher"] for seed in ("0", "1")]
    assert check["matcher"] == pytest.approx(sum(per_seed) / 2)
    assert load_attention_net(path).config.filter_threshold == after["filter_threshold"]


def test_threshold_rooms_must_differ_from_the_check_rooms():
    with pytest.raises(SystemExit):
        pose_check.main(["--pairs", "1", "--seeds", "0,1", "--threshold-seeds", "1", "--choose-threshold"])


def test_the_image_pair_regime_is_checked_with_the_package_selection_and_never_written(tmp_path):
    """``--selection pairs`` extracts as image-pair matching and the benches do (the package's NMS), not as the
    odometry; a check at another size or selection must not overwrite the record the odometry decides on."""
    from silk_ros.features import ExtractorConfig
    from silk_ros.odometry.config import OdometryConfig

    odometry, _ = pose_check.front_end("matcher-mu", "silk-mu", 256)
    pairs_extractor, _ = pose_check.front_end("matcher-mu", "silk-mu", 256, selection="pairs")
    assert odometry.config.nms_radius == OdometryConfig().extractor.nms_radius
    assert pairs_extractor.config.nms_radius == ExtractorConfig().nms_radius != odometry.config.nms_radius
    assert pairs_extractor.config.top_k == 256
    with pytest.raises(ValueError, match="selection"):
        pose_check.front_end("matcher-mu", "silk-mu", 256, selection="bench")
    path = tmp_path / "matcher.pt"
    shutil.copy(shipped_weights("matcher-mu"), path)
    for extra in (["--size", "640x480"], ["--selection", "pairs"]):
        with pytest.raises(SystemExit):
            pose_check.main(["--matcher-weights", str(path), "--pairs", "1", "--write", *extra])
    with pytest.raises(SystemExit):
        pose_check.main(["--pairs", "1", "--size", "640by480"])
    assert load_weights(path, kind="matcher").provenance == load_weights(
        shipped_weights("matcher-mu"), kind="matcher").provenance


def test_rooms_render_at_the_size_asked(data_root):
    (pair,) = pose_check.synthetic_pose_pairs(1, seed=5, width=160, height=120, data_root=data_root, progress=False)
    assert pair.image0.shape == pair.image1.shape == (120, 160)
    assert pair.k0[0, 2] == pytest.approx(79.5) and pair.k0[0, 0] == pytest.approx(128.0)
