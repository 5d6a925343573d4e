"""ClassicExtractor (ORB / SIFT baselines) on a real HPatches image: the Features contract holds."""

import cv2
import numpy as np
import pytest

from silk_ros.features.classic import ClassicExtractor


@pytest.fixture(scope="module")
def churchill(data_root):
    return cv2.imread(str(data_root / "homography/hpatches/v_churchill/1.ppm"))


@pytest.mark.parametrize("kind", ["orb", "sift"])
def test_classic_features_contract(churchill, kind):
    features = ClassicExtractor(kind, top_k=500).extract(churchill)
    assert 100 < len(features) <= 500
    assert features.image_size == churchill.shape[:2]
    h, w = churchill.shape[:2]
    assert (features.keypoints_xy >= -0.5).all() and (features.keypoints_xy[:, 0] < w).all()
    assert features.scores.max() == pytest.approx(1.0) and (features.scores >= 0).all()
    if kind == "orb":
        assert features.is_binary and features.descriptors.shape[1] == 32
    else:
        assert not features.is_binary
        np.testing.assert_allclose(np.linalg.norm(features.descriptors, axis=1), 1.0, atol=1e-5)
        assert (features.descriptors >= 0).all()  # RootSIFT: square roots of a histogram


def test_classic_rejects_bad_kind():
    with pytest.raises(ValueError, match="surf"):
        ClassicExtractor("surf")
