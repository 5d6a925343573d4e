"""The shipped SiLK-µ weights: a valid weights file that SilkExtractor() loads, and trained (beats random)."""

import numpy as np
import pytest
import torch

from silk_ros.bench.pair_data import homography_pairs
from silk_ros.evaluation.matching_metrics import mean_matching_accuracy
from silk_ros.features import SilkConfig, SilkExtractor
from silk_ros.matching import build_matcher
from silk_ros.weights import load_weights, save_weights, shipped_weights


@pytest.fixture(scope="module")
def shipped():
    path = shipped_weights("silk-mu")
    return path, load_weights(path, kind="silk")


def test_shipped_weights_roundtrip(shipped, tmp_path):
    path, record = shipped
    assert SilkConfig.from_dict(record.architecture).name == "vggnp-mu"
    for key in ("data", "steps", "wall_time_s", "hardware", "config", "git_commit"):
        assert key in record.provenance, key
    assert record.provenance["steps"] > 0
    copy = save_weights(tmp_path / "copy.pt", "silk", record.architecture, record.state_dict, record.provenance)
    again = load_weights(copy, kind="silk")
    assert again.state_dict.keys() == record.state_dict.keys()
    for key, value in record.state_dict.items():
        assert torch.equal(value, again.state_dict[key])
    assert again.provenance["steps"] == record.provenance["steps"]
    # The default extractor picks the shipped file up by name.
    extractor = SilkExtractor(backend="torch", top_k=100)
    trained = dict(extractor.model.state_dict())
    assert all(torch.equal(trained[k], v) for k, v in record.state_dict.items())


def test_shipped_weights_beat_random_on_hpatches(data_root):
    pair = homography_pairs(data_root, short_side=240)[0]  # v_churchill 1-2
    matcher = build_matcher("mnn")

    def mma(extractor):
        f0, f1 = extractor.extract(pair.image0), extractor.extract(pair.image1)
        p0, p1 = matcher(f0, f1).points(f0, f1)
        return mean_matching_accuracy(p0, p1, pair.h_1_0, (3,))[3]

    trained = mma(SilkExtractor(backend="torch", top_k=1000))
    random = mma(SilkExtractor(weights="untrained", allow_untrained=True, backend="torch", top_k=1000))
    assert trained > random + 0.1, (trained, random)
    assert np.isfinite(trained)
