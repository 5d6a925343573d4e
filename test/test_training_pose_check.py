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
