"""SiLK's classic matchers on known correspondences: precision, recall, binary descriptors, the registry."""

from __future__ import annotations

import numpy as np
import pytest

from silk_ros.features.types import Features
from silk_ros.matching import DoubleSoftmax, Matches, MutualNearestNeighbour, RatioTest, build_matcher


def known_pair(n_true: int = 200, n_distractors: int = 100, noise: float = 0.15, seed: int = 0):
    """Image 1 holds a shuffled, noisy copy of image 0's first ``n_true`` descriptors plus distractors."""
    rng = np.random.default_rng(seed)
    d0 = rng.normal(size=(n_true + n_distractors, 32)).astype(np.float32)
    d0 /= np.linalg.norm(d0, axis=1, keepdims=True)
    perm = rng.permutation(n_true + n_distractors)
    d1 = np.concatenate([d0[:n_true] + noise * rng.normal(size=(n_true, 32)), rng.normal(size=(n_distractors, 32))])
    d1 = (d1 / np.linalg.norm(d1, axis=1, keepdims=True)).astype(np.float32)[perm]
    # image-0 index -> image-1 index of each true match
    truth = {i: j for i, j in zip(perm[perm < n_true], np.flatnonzero(perm < n_true), strict=True)}

    def features(d):
        xy = rng.random((len(d), 2)).astype(np.float32) * 100
        return Features(xy, rng.random(len(d)).astype(np.float32), d, (100, 100))

    return features(d0), features(d1), truth


def precision_recall(matches: Matches, truth: dict[int, int]) -> tuple[float, float]:
    correct = sum(truth.get(int(i)) == int(j) for i, j in matches.indices)
    return correct / max(len(matches), 1), correct / len(truth)


@pytest.mark.parametrize(
    "matcher,min_recall",
    [(MutualNearestNeighbour(), 0.95), (RatioTest(0.8), 0.9), (DoubleSoftmax(temperature=0.1, threshold=0.1), 0.9)],
)
def test_known_correspondences(matcher, min_recall):
    f0, f1, truth = known_pair()
    matches = matcher(f0, f1)
    precision, recall = precision_recall(matches, truth)
    assert matches.indices.dtype == np.int64 and matches.indices.shape[1] == 2
    assert np.all((matches.confidence >= 0) & (matches.confidence <= 1))
    # distractors may find a mutual partner under MNN, but never a true pair's slot; filtered matchers reject them
    assert recall >= min_recall
    assert precision >= (0.6 if isinstance(matcher, MutualNearestNeighbour) else 0.95)


def test_mnn_min_similarity_removes_distractors():
    f0, f1, truth = known_pair()
    plain, _ = precision_recall(MutualNearestNeighbour()(f0, f1), truth)
    precision, recall = precision_recall(MutualNearestNeighbour(min_similarity=0.5)(f0, f1), truth)
    assert precision > plain and precision >= 0.95 and recall >= 0.9


def test_binary_descriptors_use_hamming():
    rng = np.random.default_rng(1)
    bits0 = rng.integers(0, 256, size=(50, 32), dtype=np.uint8)
    bits1 = bits0.copy()
    flip = rng.integers(0, 32, size=50)
    bits1[np.arange(50), flip] ^= 1  # one bit flipped per descriptor
    xy = rng.random((50, 2)).astype(np.float32)
    f0 = Features(xy, np.ones(50, np.float32), bits0, (10, 10))
    f1 = Features(xy, np.ones(50, np.float32), bits1[::-1].copy(), (10, 10))
    matches = MutualNearestNeighbour()(f0, f1)
    assert len(matches) == 50 and np.array_equal(matches.indices[:, 1], 49 - matches.indices[:, 0])
    with pytest.raises(ValueError, match="binary descriptors against float"):
        MutualNearestNeighbour()(f0, known_pair()[0])


def test_empty_inputs_and_registry():
    f0, _, _ = known_pair()
    empty = Features.empty((100, 100), 32)
    for matcher in (MutualNearestNeighbour(), RatioTest(), DoubleSoftmax()):
        assert len(matcher(f0, empty)) == 0 and len(matcher(empty, f0)) == 0
    assert isinstance(build_matcher("mnn"), MutualNearestNeighbour)
    assert build_matcher({"name": "ratio", "ratio": 0.7}).ratio == 0.7
    with pytest.raises(ValueError, match="unknown matcher 'nope'"):
        build_matcher("nope")


def test_mutual_within_radius_tells_repeated_descriptors_apart_by_position():
    """Four copies of one pattern (a tiled wall): global MNN can pair at most one, the radius pairs each copy with
    its own neighbour; no prediction (NaN) or a prediction too far matches nothing."""
    from silk_ros.matching.classic import mutual_within_radius

    rng = np.random.default_rng(0)
    d = rng.normal(size=32).astype(np.float32)
    d /= np.linalg.norm(d)
    xy1 = np.array([[10, 10], [60, 10], [10, 60], [60, 60]], np.float32)
    descriptors = np.repeat(d[None], 4, axis=0)
    f0 = Features(xy1 + 3.0, np.ones(4, np.float32), descriptors, (100, 100))
    f1 = Features(xy1, np.ones(4, np.float32), descriptors + 0.01 * rng.normal(size=(4, 32)).astype(np.float32),
                  (100, 100))
    assert len(MutualNearestNeighbour()(f0, f1)) <= 1
    predicted = xy1 + np.array([[2, -1], [0, 3], [-2, 2], [1, 1]], np.float32)
    matches = mutual_within_radius(f0, predicted, f1, xy1, radius=8.0)
    assert sorted(map(tuple, matches.indices.tolist())) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    predicted[1] = np.nan
    predicted[2] += 20.0
    matches = mutual_within_radius(f0, predicted, f1, xy1, radius=8.0)
    assert sorted(map(tuple, matches.indices.tolist())) == [(0, 0), (3, 3)]


def test_double_softmax_defaults_keep_the_matches_of_the_shipped_features(data_root):
    """The default temperature is the one the shipped SiLK-µ was trained at; with it, double-softmax keeps a large,
    more precise subset of MNN's matches on a real pair (at 0.1 it kept none: BENCHMARKS.md `matchers`)."""
    import cv2

    from silk_ros.features import SilkExtractor
    from silk_ros.weights import WeightsError, load_weights, shipped_weights

    try:
        record = load_weights(shipped_weights("silk-mu"), kind="silk")
    except WeightsError as exc:
        pytest.skip(str(exc))
    assert DoubleSoftmax().temperature == record.provenance["config"]["temperature"]

    folder = data_root / "homography" / "hpatches" / "v_churchill"
    images = [cv2.imread(str(folder / f"{k}.ppm"), cv2.IMREAD_GRAYSCALE) for k in (1, 2)]
    h = np.loadtxt(folder / "H_1_2")
    extractor = SilkExtractor(top_k=1024)
    f0, f1 = (extractor.extract(image) for image in images)

    def correct(matches: Matches) -> int:
        p0, p1 = matches.points(f0, f1)
        projected = cv2.perspectiveTransform(p0[None].astype(np.float64), h)[0]
        return int((np.linalg.norm(projected - p1, axis=1) < 3.0).sum())

    mnn, double_softmax = MutualNearestNeighbour()(f0, f1), DoubleSoftmax()(f0, f1)
    assert len(double_softmax) >= 0.25 * len(mnn)
    assert correct(double_softmax) / len(double_softmax) > correct(mnn) / len(mnn)
    assert np.all(double_softmax.confidence > DoubleSoftmax().threshold)


def test_extended_matches_add_only_pairs_of_unmatched_keypoints():
    """The keyframe matcher's matches win; the tracking matches fill in keypoints it left unmatched, one-to-one."""
    strong = Matches(np.array([[0, 0], [1, 2]]), np.array([0.9, 0.8], np.float32))
    tracking = Matches(np.array([[0, 5], [3, 2], [4, 4], [1, 2]]), np.array([0.5, 0.5, 0.4, 0.3], np.float32))
    both = strong.extended(tracking)
    np.testing.assert_array_equal(both.indices, [[0, 0], [1, 2], [4, 4]])
    np.testing.assert_allclose(both.confidence, [0.9, 0.8, 0.4])
    assert len(Matches.empty().extended(tracking)) == 4 and len(strong.extended(Matches.empty())) == 2
