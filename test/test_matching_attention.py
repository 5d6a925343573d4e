"""Attention matcher: padding/batching invariance, reweighting switches, dustbin assignment, ONNX parity,
weights files, and (when trained weights are shipped) a real HPatches pair against MNN."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import torch

from silk_ros.features.types import Features
from silk_ros.matching import MutualNearestNeighbour, build_matcher
from silk_ros.matching.attention import (
    MASKED_LOGIT,
    AttentionMatcher,
    AttentionMatcherConfig,
    AttentionMatcherNet,
    OnnxAttentionMatcher,
    Reweighting,
    attend,
    build_attention_matcher,
    export_matcher_onnx,
    load_attention_net,
    pad_features,
)
from silk_ros.weights import WeightsError, save_weights, shipped_weights


def random_features(rng: np.random.Generator, n: int, size=(240, 320)) -> Features:
    d = rng.normal(size=(n, 32)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    xy = (rng.random((n, 2)) * [size[1] - 1, size[0] - 1]).astype(np.float32)
    return Features(xy, rng.random(n).astype(np.float32), d, size)


def small_net(seed: int = 0, **options) -> AttentionMatcherNet:
    torch.manual_seed(seed)
    net = AttentionMatcherNet(AttentionMatcherConfig(width=32, num_layers=2, **options)).eval()
    # Random (not zero) matchability heads, so the refined matchability really varies per keypoint.
    for head in net.matchability_heads:
        torch.nn.init.normal_(head.delta.weight, std=0.3)
    return net


def test_padded_batch_equals_single_pairs():
    rng = np.random.default_rng(0)
    pairs = [(random_features(rng, 40), random_features(rng, 55)), (random_features(rng, 70), random_features(rng, 23))]
    matcher = AttentionMatcher(small_net())
    batched = matcher.log_assignment(pairs)
    for b, (f0, f1) in enumerate(pairs):
        single = matcher.log_assignment([(f0, f1)])[0]
        n0, n1 = len(f0), len(f1)
        # valid block and both dustbins agree; padding rows/columns never leak into valid entries
        np.testing.assert_allclose(batched[b, :n0, :n1], single[:n0, :n1], atol=1e-4)
        np.testing.assert_allclose(batched[b, :n0, -1], single[:n0, -1], atol=1e-5)
        np.testing.assert_allclose(batched[b, -1, :n1], single[-1, :n1], atol=1e-5)
        assert (batched[b, n0:-1, :] <= MASKED_LOGIT / 2).all()
    # a valid row is a distribution over the other image's keypoints plus the dustbin (softmax-sized mass)
    f0, f1 = pairs[0]
    probs = np.exp(matcher.log_assignment([(f0, f1)])[0])
    assert np.all(probs[: len(f0)].sum(1) <= 1.0 + 1e-4)


def test_attend_value_rescaling_removes_a_key_with_zero_matchability():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
    mask = torch.ones(1, 6, dtype=torch.bool)
    m = torch.rand(1, 6) * 0.8 + 0.1
    m[0, 3] = 0.0
    v_changed = v.clone()
    v_changed[:, :, 3] = 100.0
    # value rescaling: key 3's value no longer reaches any query
    torch.testing.assert_close(attend(q, k, v, mask, None, m), attend(q, k, v_changed, mask, None, m))
    # without it, the same change moves the output
    assert not torch.allclose(attend(q, k, v, mask, None, None), attend(q, k, v_changed, mask, None, None))


def test_attend_logit_bias_suppresses_low_matchability_keys():
    torch.manual_seed(1)
    q, k, v = torch.randn(1, 1, 4, 8), torch.randn(1, 1, 6, 8), torch.randn(1, 1, 6, 8)
    full = torch.ones(1, 6, dtype=torch.bool)
    without_3 = full.clone()
    without_3[0, 3] = False
    m = torch.ones(1, 6)
    m[0, 3] = 0.0
    reweight = Reweighting(bias=True, value=False, gamma_init=2.0, eps=1e-4)
    bias, scale = reweight(m)
    assert scale is None
    torch.testing.assert_close(bias[0, 3], torch.tensor(2.0 * np.log(1e-4), dtype=torch.float32))
    # gamma * log(m + eps) with m = 0 is (almost) the same as masking the key out; m = 1 leaves it alone
    torch.testing.assert_close(attend(q, k, v, full, bias), attend(q, k, v, without_3), atol=1e-5, rtol=0)
    assert not torch.allclose(attend(q, k, v, full), attend(q, k, v, without_3), atol=1e-3)


@pytest.mark.parametrize("bias,value", [(False, False), (True, False), (False, True), (True, True)])
def test_reweighting_switches(bias, value):
    torch.manual_seed(0)
    net = AttentionMatcherNet(
        AttentionMatcherConfig(width=32, num_layers=2, bias_reweighting=bias, value_reweighting=value)
    ).eval()
    assert net.config.variant == {(0, 0): "none", (1, 0): "bias", (0, 1): "value", (1, 1): "both"}[(bias, value)]
    gammas = [n for n, _ in net.named_parameters() if n.endswith("reweight.gamma")]
    assert len(gammas) == (2 * net.config.num_layers if bias else 0)
    # SiLK's keypoint probabilities change the attention (not only the dustbins) only when reweighting is on
    rng = np.random.default_rng(3)
    f0, f1 = random_features(rng, 30), random_features(rng, 30)
    s_a, s_b = rng.uniform(0.05, 0.95, 30).astype(np.float32), rng.uniform(0.05, 0.95, 30).astype(np.float32)
    a = AttentionMatcher(net).log_assignment([(Features(f0.keypoints_xy, s_a, f0.descriptors, f0.image_size), f1)])[0]
    b = AttentionMatcher(net).log_assignment([(Features(f0.keypoints_xy, s_b, f0.descriptors, f0.image_size), f1)])[0]
    # untrained heads keep z = logit(score): remove the row term logsigmoid(z0_i) = log(score_i)
    dual_a, dual_b = a[:30, :30] - np.log(s_a)[:, None], b[:30, :30] - np.log(s_b)[:, None]
    changed = not np.allclose(dual_a, dual_b, atol=1e-4)
    assert changed == (bias or value)


def test_matchability_starts_from_silk_scores_and_dustbins_are_consistent():
    net = AttentionMatcherNet(AttentionMatcherConfig(width=32, num_layers=2)).eval()
    rng = np.random.default_rng(4)
    f0, f1 = random_features(rng, 20), random_features(rng, 25)
    a, b = pad_features([f0]), pad_features([f1])
    t = {k: torch.from_numpy(v) for k, v in a.items()}
    u = {k: torch.from_numpy(v) for k, v in b.items()}
    out = net(
        t["kpts"], t["desc"], t["scores"], t["mask"], u["kpts"], u["desc"], u["scores"], u["mask"], all_layers=True
    )
    assert len(out.log_assignment) == 2 and len(out.matchability0) == 3
    clamp = net.config.score_clamp
    np.testing.assert_allclose(out.matchability0[0][0].numpy(), np.clip(f0.scores, clamp, 1 - clamp), atol=1e-6)
    # zero-initialised refinement heads: an untrained network keeps SiLK's estimate
    np.testing.assert_allclose(
        out.matchability0[-1][0].detach().numpy(), np.clip(f0.scores, clamp, 1 - clamp), atol=1e-6
    )
    log_p = out.log_assignment[-1][0].detach().numpy()
    m_final = out.matchability0[-1][0].detach().numpy()
    np.testing.assert_allclose(np.exp(log_p[:20, -1]), 1 - m_final, atol=1e-5)


def test_early_exit_stops_when_confident():
    net = small_net(early_exit_ratio=0.5, early_exit_confidence=0.5)
    for head in net.matchability_heads:  # everything confidently unmatched -> decided after layer 1
        torch.nn.init.zeros_(head.delta.weight)
        torch.nn.init.constant_(head.delta.bias, -20.0)
    rng = np.random.default_rng(5)
    f0, f1 = random_features(rng, 30), random_features(rng, 30)
    a, b = (dict((k, torch.from_numpy(v)) for k, v in pad_features([f]).items()) for f in (f0, f1))
    with torch.no_grad():
        out = net(a["kpts"], a["desc"], a["scores"], a["mask"], b["kpts"], b["desc"], b["scores"], b["mask"])
    assert out.layers_run == 1
    assert len(AttentionMatcher(net)(f0, f1)) == 0


def test_onnx_runtime_matches_torch():
    pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(6)
    f0, f1 = random_features(rng, 100), random_features(rng, 77)
    net = small_net()
    torch_log_p = AttentionMatcher(net).log_assignment([(f0, f1)])[0]
    onnx = OnnxAttentionMatcher(net, buckets=(64, 128))
    onnx_log_p = onnx.log_assignment([(f0, f1)])[0]
    assert onnx_log_p.shape == (129, 129)  # padded to the 128 bucket
    np.testing.assert_allclose(onnx_log_p[:100, :77], torch_log_p[:100, :77], atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx_log_p[:100, -1], torch_log_p[:100, -1], atol=1e-4, rtol=0)
    np.testing.assert_allclose(onnx_log_p[-1, :77], torch_log_p[-1, :77], atol=1e-4, rtol=0)
    torch_m, onnx_m = AttentionMatcher(net)(f0, f1), onnx(f0, f1)
    np.testing.assert_array_equal(torch_m.indices, onnx_m.indices)
    with pytest.raises(ValueError, match="exceed the largest ONNX bucket"):
        onnx(random_features(rng, 129), f1)
    buffer = io.BytesIO()
    export_matcher_onnx(net, buffer, 32)
    assert len(buffer.getvalue()) > 10_000


def test_weights_roundtrip_and_wrong_architecture(tmp_path):
    net = small_net(bias_reweighting=False)
    path = save_weights(tmp_path / "m.pt", "matcher", net.config.architecture(), net.state_dict(), {"test": True})
    loaded = load_attention_net(path, filter_threshold=0.2)
    assert loaded.config.filter_threshold == 0.2 and loaded.config.bias_reweighting is False
    rng = np.random.default_rng(7)
    f0, f1 = random_features(rng, 30), random_features(rng, 40)
    np.testing.assert_array_equal(
        AttentionMatcher(net).log_assignment([(f0, f1)]), AttentionMatcher(loaded).log_assignment([(f0, f1)])
    )
    matcher = build_matcher({"name": "attention", "weights": str(path)})
    assert isinstance(matcher, AttentionMatcher)
    # the architecture record claims bias reweighting, the tensors have no gammas
    wrong = save_weights(
        tmp_path / "wrong.pt", "matcher", {**net.config.architecture(), "bias_reweighting": True}, net.state_dict()
    )
    with pytest.raises(WeightsError, match="does not fit the architecture"):
        load_attention_net(wrong)
    silk = save_weights(tmp_path / "silk.pt", "silk", {"name": "vggnp-mu"}, {})
    with pytest.raises(WeightsError, match="expected 'matcher'"):
        load_attention_net(silk)
    with pytest.raises(ValueError, match="unknown attention matcher options"):
        load_attention_net(path, widht=3)
    with pytest.raises(WeightsError, match="allow_untrained"):
        build_attention_matcher(weights="untrained")


def test_bad_inputs_are_named():
    net = small_net()
    rng = np.random.default_rng(8)
    f0 = random_features(rng, 10)
    binary = Features(f0.keypoints_xy, f0.scores, np.zeros((10, 32), np.uint8), f0.image_size)
    with pytest.raises(ValueError, match="binary"):
        AttentionMatcher(net)(f0, binary)
    wrong_dim = Features(f0.keypoints_xy, f0.scores, np.ones((10, 16), np.float32) / 4, f0.image_size)
    with pytest.raises(ValueError, match="descriptor dimension 16"):
        AttentionMatcher(net)(wrong_dim, f0)
    assert len(AttentionMatcher(net)(f0, Features.empty(f0.image_size))) == 0


def _hpatches_pair(data_root):
    folder = data_root / "homography" / "hpatches" / "v_churchill"
    if not folder.exists():
        pytest.skip(f"{folder} not found")
    images = [cv2.imread(str(folder / f"{k}.ppm"), cv2.IMREAD_GRAYSCALE) for k in (1, 2)]
    return images, np.loadtxt(folder / "H_1_2")


def test_shipped_matcher_is_precise_on_hpatches(data_root):
    """The shipped matcher on the shipped SiLK's features (the odometry's: context descriptors, NMS, sub-pixel) gives
    more correct matches than MNN on a real pair, at a higher precision: the point of a learned matcher."""
    try:
        shipped_weights("matcher-mu")
        shipped_weights("silk-mu")
    except WeightsError as exc:
        pytest.skip(str(exc))
    from silk_ros.features import SilkExtractor

    (image0, image1), h = _hpatches_pair(data_root)
    extractor = SilkExtractor(top_k=1024)  # the features the shipped matcher was trained on
    f0, f1 = extractor.extract(image0), extractor.extract(image1)

    def precision(matches):
        p0, p1 = matches.points(f0, f1)
        projected = cv2.perspectiveTransform(p0[None].astype(np.float64), h)[0]
        return float((np.linalg.norm(projected - p1, axis=1) < 3.0).mean())

    attention = build_matcher({"name": "attention"})(f0, f1)
    mnn = MutualNearestNeighbour()(f0, f1)
    # measured: 445 matches at 0.955 precision, MNN 468 at 0.603
    assert precision(attention) > 0.85 and precision(attention) > precision(mnn) + 0.2
    assert len(attention) * precision(attention) > len(mnn) * precision(mnn)
