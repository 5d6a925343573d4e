"""SiLK network, extractor, backends and the weights format."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from silk_ros.features import (
    PAPER_SELECTION,
    ExtractorConfig,
    ImageError,
    SilkExtractor,
    SilkNet,
    count_parameters,
    load_silk_model,
    multiply_accumulates,
)
from silk_ros.features.fusion import FusedSilk, KeypointsAndFeatures, SparseDescriptorHead
from silk_ros.features.onnx_export import export_onnx
from silk_ros.weights import WeightsError, load_weights, save_weights, shipped_weights


def _randomised(name: str = "vggnp-mu", seed: int = 0) -> SilkNet:
    """A network with non-trivial BatchNorm statistics, so fusion and export are really exercised."""
    torch.manual_seed(seed)
    model = SilkNet(name)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> SilkNet:
    return _randomised()


@pytest.fixture(scope="module")
def textured() -> np.ndarray:
    rng = np.random.default_rng(1)
    import cv2

    small = rng.random((30, 40)).astype(np.float32)
    return (cv2.resize(small, (160, 120), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


def test_parameter_counts_match_the_paper():
    assert count_parameters(SilkNet("vggnp-mu")) == 76_035
    assert count_parameters(SilkNet("vggnp-4")) == 942_147


def test_border_is_one_pixel_per_unpadded_conv():
    for name, border in (("vggnp-mu", 3), ("vggnp-4", 9)):
        net = SilkNet(name).eval()
        logits, desc = net(torch.rand(1, 1, 40, 50))
        assert logits.shape == (1, 1, 40 - 2 * border, 50 - 2 * border)
        assert desc.shape[2:] == logits.shape[2:]
        assert net.border == border


def test_macs_count_matches_a_direct_count():
    # µ at 240x320: conv 1->64 and 64->64, then two heads of 64->32 (3x3) plus 1x1 outputs.
    h, w = 240, 320
    expected = (
        1 * 64 * 9 * (h - 2) * (w - 2)
        + 64 * 64 * 9 * (h - 4) * (w - 4)
        + 2 * 64 * 32 * 9 * (h - 6) * (w - 6)
        + (32 * 1 + 32 * 32) * (h - 6) * (w - 6)
    )
    assert multiply_accumulates(SilkNet("vggnp-mu").config, h, w) == expected


def test_fused_network_equals_the_trained_layout(model):
    x = torch.rand(2, 1, 37, 45)
    with torch.no_grad():
        reference = model(x)
        fused = FusedSilk.from_model(model)(x)
    for a, b in zip(reference, fused, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_sparse_descriptor_head_equals_the_dense_head(model):
    """The extractor evaluates the descriptor head at the keypoints only: same values as the dense map."""
    fused = FusedSilk.from_model(model)
    x = torch.rand(1, 1, 41, 53)
    with torch.no_grad():
        _, dense = fused(x)
        logits, features = KeypointsAndFeatures(fused)(x)
    h, w = logits.shape[2:]
    assert features.shape == (1, h + 2, w + 2, fused.trunk[-2].out_channels)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    sparse = SparseDescriptorHead(fused)(features[0].numpy(), rows.ravel(), cols.ravel())
    np.testing.assert_allclose(sparse, dense[0].numpy().reshape(dense.shape[1], -1).T, atol=1e-5)


def test_onnx_runtime_agrees_with_pytorch_at_several_sizes(model):
    buffer = io.BytesIO()
    export_onnx(model, buffer)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for shape in ((1, 1, 64, 64), (2, 1, 97, 131)):  # dynamic batch, height and width
        x = torch.rand(*shape)
        with torch.no_grad():
            logits, desc = model(x)
        onnx_logits, onnx_desc = session.run(None, {"image": x.numpy()})
        assert np.abs(onnx_logits - logits.numpy()).max() < 1e-4
        assert np.abs(onnx_desc - desc.numpy()).max() < 1e-4


def test_both_backends_extract_the_same_features(model, textured):
    for selection, position_atol in ((PAPER_SELECTION, 0.0), ({}, 1e-3)):
        # integer cells agree exactly; the default sub-pixel fit carries the backends' float noise (1e-5 in the
        # logits) into the positions
        torch_features = SilkExtractor(model=model, backend="torch", top_k=200, **selection).extract(textured)
        onnx_features = SilkExtractor(model=model, backend="onnxruntime", top_k=200, **selection).extract(textured)
        np.testing.assert_allclose(
            torch_features.keypoints_xy[:150], onnx_features.keypoints_xy[:150], rtol=0, atol=position_atol
        )
        np.testing.assert_allclose(torch_features.descriptors[:150], onnx_features.descriptors[:150], atol=1e-4)


def test_keypoints_map_grid_cells_to_input_pixels(model, textured):
    extractor = SilkExtractor(model=model, backend="torch", top_k=50, **PAPER_SELECTION)
    logits, desc = extractor.dense(textured)
    features = extractor.extract(textured)
    # The best keypoint is the arg-max cell, shifted by the border (pixel-centre convention).
    row, col = np.unravel_index(np.argmax(logits), logits.shape)
    np.testing.assert_array_equal(features.keypoints_xy[0], [col + 3, row + 3])
    expected = desc[:, row, col] / np.linalg.norm(desc[:, row, col])
    np.testing.assert_allclose(features.descriptors[0], expected, atol=1e-5)
    assert np.allclose(np.linalg.norm(features.descriptors, axis=1), 1.0, atol=1e-5)
    assert np.all(np.diff(features.scores) <= 0) and features.scores.max() <= 1.0


def test_top_k_threshold_nms_and_border_margin(model, textured):
    base = dict(model=model, backend="torch", **PAPER_SELECTION)
    assert len(SilkExtractor(**base, top_k=100).extract(textured)) == 100
    all_cells = SilkExtractor(**base, top_k=0).extract(textured)
    assert len(all_cells) == (120 - 6) * (160 - 6)
    median = float(np.median(all_cells.scores))
    thresholded = SilkExtractor(**base, top_k=0, threshold=median).extract(textured)
    assert 0 < len(thresholded) < len(all_cells) and thresholded.scores.min() >= median - 1e-6
    nms = SilkExtractor(**{**base, "nms_radius": 2}, top_k=0).extract(textured)
    pts = nms.keypoints_xy
    dist = np.abs(pts[:, None] - pts[None]).max(-1) + np.eye(len(pts)) * 99
    assert dist.min() > 2  # no two maxima within the suppression window
    margin = SilkExtractor(**base, top_k=0, border_margin=10).extract(textured).keypoints_xy
    assert margin.min() >= 13 and margin[:, 0].max() <= 160 - 14 and margin[:, 1].max() <= 120 - 14


def test_image_formats_give_the_same_features(model, textured):
    import cv2

    extractor = SilkExtractor(model=model, backend="torch", top_k=100, **PAPER_SELECTION)
    reference = extractor.extract(textured).keypoints_xy
    bgr = cv2.cvtColor(textured, cv2.COLOR_GRAY2BGR)
    rgba = cv2.cvtColor(textured, cv2.COLOR_GRAY2RGBA)
    mono16 = textured.astype(np.uint16) * 257
    for image, order in ((bgr, "bgr"), (rgba, "rgb"), (mono16, "bgr"), (textured[:, :, None], "bgr")):
        np.testing.assert_array_equal(extractor.extract(image, order).keypoints_xy, reference)
    batch = extractor.extract_batch([textured, textured])
    np.testing.assert_array_equal(batch[1].keypoints_xy, reference)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((0, 0), np.uint8), "empty"),
        (np.zeros((5, 5), np.uint8), "too small"),
        (np.zeros((20, 20, 2), np.uint8), "channel"),
        (np.full((20, 20), np.nan, np.float32), "NaN"),
        (np.zeros((20, 20), np.int64), "dtype"),
    ],
)
def test_bad_images_raise_clear_errors(model, image, message):
    with pytest.raises(ImageError, match=message):
        SilkExtractor(model=model, backend="torch").extract(image)


def test_untrained_weights_need_an_explicit_request(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        SilkExtractor(weights=str(tmp_path / "missing.pt"), backend="torch")
    assert SilkExtractor(weights="untrained", allow_untrained=True, backend="torch").border == 3


def test_weights_roundtrip_and_every_failure_names_the_file(tmp_path, model):
    good = save_weights(tmp_path / "mu.pt", "silk", model.config.to_dict(), model.state_dict(), {"steps": 1})
    loaded = load_silk_model(good)
    assert loaded.provenance["steps"] == 1
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated.pt.*truncated"):
        load_silk_model(truncated)

    big = SilkNet("vggnp-4")
    other = save_weights(tmp_path / "vgg4.pt", "silk", model.config.to_dict(), big.state_dict())
    with pytest.raises(WeightsError, match="vgg4.pt.*does not fit"):
        load_silk_model(other)

    raw = tmp_path / "raw.pt"
    torch.save(model.state_dict(), raw)
    with pytest.raises(WeightsError, match="raw.pt.*not a silk_ros weights file"):
        load_silk_model(raw)

    matcher = save_weights(tmp_path / "matcher.pt", "matcher", {}, {})
    with pytest.raises(WeightsError, match="matcher.pt.*'matcher' network"):
        load_weights(matcher, kind="silk")

    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty.pt.*empty"):
        load_silk_model(empty)


def test_export_onnx_command_writes_a_dynamic_model(tmp_path, model):
    weights = save_weights(tmp_path / "mu.pt", "silk", model.config.to_dict(), model.state_dict())
    out = tmp_path / "mu.onnx"
    subprocess.run(
        [sys.executable, "-m", "silk_ros.cli", "export-onnx", "--weights", str(weights), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 1, 50, 70), dtype=np.float32)
    logits, desc = session.run(None, {"image": x})
    with torch.no_grad():
        ref_logits, ref_desc = model(torch.from_numpy(x))
    assert logits.shape == (1, 1, 44, 64)
    assert np.abs(logits - ref_logits.numpy()).max() < 1e-4 and np.abs(desc - ref_desc.numpy()).max() < 1e-4


def test_extractor_config_defaults_suit_odometry():
    config = ExtractorConfig()
    assert 1000 <= config.top_k <= 3000 and not config.allow_untrained
    # the keypoint selection chosen on validation pairs; the paper's stays reachable by name
    assert config.nms_radius == 4 and config.subpixel
    assert ExtractorConfig(**PAPER_SELECTION).nms_radius == 0 and not ExtractorConfig(**PAPER_SELECTION).subpixel


def test_benches_name_the_keypoint_selection_of_each_silk_row():
    from silk_ros.bench.homography import build_methods

    methods = build_methods(["silk", "silk-paper"], 500)
    (ours_label, (ours, _)), (paper_label, (paper, _)) = methods.items()
    assert "NMS 4, sub-pixel" in ours_label and ours.config.nms_radius == 4 and ours.config.subpixel
    assert "paper selection" in paper_label and paper.config.nms_radius == 0 and not paper.config.subpixel
    assert "context x0.5" in ours_label and ours.descriptor_dim == 64 and paper.descriptor_dim == 32


def test_benches_give_the_shipped_attention_matcher_the_context_descriptors():
    from silk_ros.bench.homography import build_methods

    methods = build_methods(["silk", "silk-own+ratio", "silk+attention"], 500)
    (context_label, (context, _)), (own_label, (own, _)), (attention_label, (attention, _)) = methods.items()
    assert "context" in context_label and context.descriptor_dim == 64
    assert "context" not in own_label and own.descriptor_dim == 32
    assert attention is context and "context x0.5" in attention_label  # trained on them (session 30)


def test_benches_give_an_attention_matcher_of_own_descriptors_the_networks_own(tmp_path):
    from silk_ros.bench.homography import build_methods
    from silk_ros.matching.attention import AttentionMatcherConfig, AttentionMatcherNet

    net = AttentionMatcherNet(AttentionMatcherConfig(descriptor_dim=32, width=32))
    path = save_weights(tmp_path / "m32.pt", "matcher", net.config.architecture(), net.state_dict(), {"test": True})
    methods = build_methods(["silk-own", "silk+attention"], 500, matcher_weights=str(path))
    (_, (own, _)), (attention_label, (attention, matcher)) = methods.items()
    assert attention is own and matcher.config.descriptor_dim == 32 and "context" not in attention_label


def test_benches_give_an_attention_matcher_of_context_descriptors_the_context_extractor(tmp_path):
    from silk_ros.bench.homography import build_methods
    from silk_ros.matching.attention import AttentionMatcherConfig, AttentionMatcherNet

    net = AttentionMatcherNet(AttentionMatcherConfig(descriptor_dim=64, width=32))
    path = save_weights(tmp_path / "m64.pt", "matcher", net.config.architecture(), net.state_dict(), {"test": True})
    methods = build_methods(["silk", "silk+attention"], 500, matcher_weights=str(path))
    (_, (context, _)), (attention_label, (attention, matcher)) = methods.items()
    assert attention is context and matcher.config.descriptor_dim == 64 and "context x0.5" in attention_label


def test_benches_name_the_matcher_of_each_row_and_share_one_silk_extractor():
    from silk_ros.bench.homography import build_methods
    from silk_ros.matching.classic import DoubleSoftmax, MutualNearestNeighbour, RatioTest

    methods = build_methods(["silk", "silk+ratio", "silk+double_softmax", "sift+ratio"], 500)
    (mnn_label, (silk, mnn)), (ratio_label, (silk_again, ratio)), (ds_label, (silk_third, ds)), (sift_label, (
        _, sift_ratio)) = methods.items()
    assert mnn_label.endswith("+ MNN") and isinstance(mnn, MutualNearestNeighbour)
    assert "ratio test 0.9" in ratio_label and isinstance(ratio, RatioTest) and silk_again is silk
    assert ds_label.endswith("double-softmax (T 0.05, p > 0.05)") and isinstance(ds, DoubleSoftmax)
    assert silk_third is silk
    assert sift_label.startswith("OpenCV SIFT, RootSIFT") and isinstance(sift_ratio, RatioTest)
    with pytest.raises(ValueError, match="unknown methods"):
        build_methods(["orb+ratio"], 500)


def test_benches_have_int8_rows_on_the_8_bit_models():
    """``silk-int8`` rows run the network's 8-bit ONNX Runtime models with the ``silk`` row's selection, descriptors
    and refinement, on an extractor of their own, and say so in the label."""
    from silk_ros.bench.homography import build_methods

    methods = build_methods(["silk", "silk-int8", "silk-int8+ratio"], 500)
    (fp32_label, (fp32, _)), (int8_label, (int8, _)), (ratio_label, (int8_again, _)) = methods.items()
    assert fp32.config.precision == "fp32" and "int8" not in fp32_label
    assert int8.config.precision == "int8" and int8 is int8_again and int8 is not fp32
    assert int8_label == fp32_label.replace("matches refined", "matches refined, int8")
    assert "int8" in ratio_label and "ratio test 0.9" in ratio_label
    image = (np.random.default_rng(0).random((120, 160)) * 255).astype(np.uint8)
    assert len(int8.extract(image)) > 0


def test_subpixel_refinement_finds_the_peak_of_a_parabola():
    from silk_ros.features.extractor import _quadratic_offsets

    y, x = np.mgrid[0:20, 0:30].astype(np.float32)
    logits = -((x - 10.3) ** 2) - 0.5 * (y - 5.8) ** 2
    offsets = _quadratic_offsets(logits, np.array([6, 0]), np.array([10, 0]))
    np.testing.assert_allclose(offsets[0], [0.3, -0.2], atol=1e-4)
    np.testing.assert_array_equal(offsets[1], [0.0, 0.0])  # no neighbours outside the map: no offset


def test_subpixel_keypoints_stay_within_half_a_pixel_of_their_cell(model, textured):
    plain = {"backend": "torch", "top_k": 100, "nms_radius": 1, "context_scale": 0.0}
    whole = SilkExtractor(model=model, subpixel=False, **plain).extract(textured)
    refined = SilkExtractor(model=model, subpixel=True, **plain).extract(textured)
    shift = refined.keypoints_xy - whole.keypoints_xy
    assert np.abs(shift).max() <= 0.5 and np.abs(shift).mean() > 0.01
    np.testing.assert_array_equal(refined.descriptors, whole.descriptors)



def test_a_matchers_descriptor_size_names_the_kind_of_silk_descriptors_it_takes():
    """One rule gives a matcher its descriptors everywhere (odometry checks, benches, pose check): twice the network's
    size is its context descriptors, its own size the network's own; any other size names both it could be."""
    from silk_ros.features.extractor import uses_context_descriptors
    from silk_ros.schema import ConfigError

    own = load_weights(shipped_weights("silk-mu"), kind="silk").architecture["descriptor_dim"]
    assert uses_context_descriptors(2 * own, "silk-mu") and not uses_context_descriptors(own, "silk-mu")
    assert uses_context_descriptors(2 * own, shipped_weights("silk-mu"))  # a path as well as a shipped name
    with pytest.raises(ConfigError, match=f"{own}-d descriptors and {2 * own}-d context descriptors, never 128-d"):
        uses_context_descriptors(128, "silk-mu")

def test_context_descriptors_join_the_cells_own_to_the_shrunk_images_at_the_same_point(model, textured):
    import cv2

    own = SilkExtractor(model=model, backend="torch", top_k=200, context_scale=0.0).extract(textured)
    joined = SilkExtractor(model=model, backend="torch", top_k=200, context_scale=0.5, context_weight=0.7)
    features = joined.extract(textured)
    assert joined.descriptor_dim == 2 * model.config.descriptor_dim == features.descriptors.shape[1]
    np.testing.assert_array_equal(features.keypoints_xy, own.keypoints_xy)
    np.testing.assert_allclose(np.linalg.norm(features.descriptors, axis=1), 1.0, atol=1e-5)
    fine, coarse = np.split(features.descriptors, 2, axis=1)
    # The fine half is the cell's own descriptor, scaled so that the two halves weigh 1 : 0.7.
    np.testing.assert_allclose(fine, own.descriptors / np.hypot(1.0, 0.7), atol=1e-5)
    # The coarse half is the dense descriptor map of the half-size image, read bilinearly at the same point
    # (the dense head here, the sparse head at four cells in the extractor).
    grey = textured.astype(np.float32) / 255.0
    small = cv2.resize(grey, (80, 60), interpolation=cv2.INTER_AREA)
    _, dense = joined.dense(small)
    cell = (features.keypoints_xy + 0.5) * 0.5 - 0.5 - joined.border
    inside = (cell >= 0).all(axis=1) & (cell[:, 0] <= dense.shape[2] - 1) & (cell[:, 1] <= dense.shape[1] - 1)
    x, y = (cell[inside, 0].reshape(1, -1), cell[inside, 1].reshape(1, -1))
    expected = np.stack([cv2.remap(channel, x, y, cv2.INTER_LINEAR)[0] for channel in dense], axis=1)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert inside.sum() > 100
    np.testing.assert_allclose(coarse[inside], expected * 0.7 / np.hypot(1.0, 0.7), atol=1e-4)


def test_context_grid_position_maps_pixel_centres_and_clamps_at_the_edges():
    """The one definition the extractor and the trainer share: a coarse cell's centre in the shrunk image, mapped
    back to the full image, reads that cell; positions past the covered grid read its edge cells."""
    from silk_ros.features.extractor import context_grid_position, context_image_size

    assert context_image_size(320, 240, 0.5, 4) == (160, 120)
    assert context_image_size(10, 30, 0.5, 4) == (9, 15)  # never below one coarse cell
    image, small, border = (320, 240), (160, 120), 4
    cells = np.array([[0, 0], [5, 7], [151, 111], [70, 3]], float)  # grid 152 x 112
    pixels = (cells + border + 0.5) / 0.5 - 0.5
    np.testing.assert_allclose(context_grid_position(pixels, image, small, border), cells, atol=1e-12)
    corners = np.array([[0.0, 0.0], [319.0, 239.0], [-3.0, 500.0]])
    np.testing.assert_array_equal(context_grid_position(corners, image, small, border), [[0, 0], [151, 111], [0, 111]])


def test_context_tells_apart_a_repeated_patch_in_different_surroundings():
    """Two copies of one 9x9 patch: the network's 7x7 view gives both centres the same descriptor; the shrunk
    image's view also sees their different surroundings (the shipped weights: a random network's descriptors hardly
    vary)."""
    import cv2

    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur((rng.random((96, 128)) * 255).astype(np.uint8), (0, 0), 1.0)
    image[:, 64:] = np.clip(image[:, 64:] // 3 + 140, 0, 255)  # other surroundings on the right
    patch = (rng.random((9, 9)) * 255).astype(np.uint8)
    centres = [(30, 40), (94, 50)]  # (x, y)
    for x, y in centres:
        image[y - 4 : y + 5, x - 4 : x + 5] = patch
    every_cell = {"backend": "torch", "top_k": 0, "nms_radius": 0, "subpixel": False}
    similarity = {}
    for scale in (0.0, 0.5):
        features = SilkExtractor(weights="silk-mu", context_scale=scale, **every_cell).extract(image)
        at = [int(np.flatnonzero((features.keypoints_xy == c).all(axis=1))[0]) for c in centres]
        similarity[scale] = float(features.descriptors[at[0]] @ features.descriptors[at[1]])
    assert similarity[0.0] == pytest.approx(1.0, abs=1e-5)
    assert similarity[0.5] < 0.95


def test_context_descriptors_work_on_the_smallest_images(model):
    image = (np.random.default_rng(0).random((8, 9)) * 255).astype(np.uint8)
    features = SilkExtractor(model=model, backend="torch", top_k=10, nms_radius=0, context_scale=0.5).extract(image)
    assert len(features) > 0 and np.isfinite(features.descriptors).all()


def test_pyramid_levels_add_the_shrunk_images_keypoints_in_input_pixels(model, textured):
    """Level 1 is the image shrunk by ``pyramid_scale``: its strongest keypoints, as many as ``top_k`` times its share
    of the pixels, come back in input pixels with that level's descriptors, on top of the input size's ``top_k``."""
    import cv2

    from silk_ros.features.extractor import pyramid_sizes

    selection = dict(model=model, backend="torch", top_k=60, nms_radius=2, context_scale=0.5)
    full = SilkExtractor(**selection).extract(textured)
    (size,) = pyramid_sizes(160, 120, 2, 0.71, 3)
    assert size == (114, 85)
    grey = textured.astype(np.float32) * (1.0 / 255.0)  # the extractor shrinks its float grey image
    shrunk = SilkExtractor(**selection).extract(cv2.resize(grey, size, interpolation=cv2.INTER_AREA))
    share = round(60 * 114 * 85 / (160 * 120))
    both = SilkExtractor(**selection, pyramid_levels=2).extract(textured)
    assert share == 30 and len(both) == 60 + share
    assert both.image_size == (120, 160) and np.all(np.diff(both.scores) <= 0)
    ratio = np.array([160 / 114, 120 / 85], np.float32)
    expected = np.concatenate([full.keypoints_xy, (shrunk.keypoints_xy[:share] + 0.5) * ratio - 0.5])
    order = np.argsort(-np.concatenate([full.scores, shrunk.scores[:share]]), kind="stable")
    np.testing.assert_allclose(both.keypoints_xy, expected[order], atol=1e-5)
    descriptors = np.concatenate([full.descriptors, shrunk.descriptors[:share]])[order]
    np.testing.assert_allclose(both.descriptors, descriptors, atol=1e-6)
    one_level = SilkExtractor(**selection, pyramid_levels=1).extract(textured)
    np.testing.assert_array_equal(one_level.keypoints_xy, full.keypoints_xy)


def test_pyramid_stops_before_a_level_too_small_for_a_cell():
    from silk_ros.features.extractor import pyramid_sizes

    assert pyramid_sizes(320, 240, 1, 0.71, 3) == []
    assert pyramid_sizes(320, 240, 3, 0.71, 3) == [(227, 170), (161, 121)]
    assert pyramid_sizes(12, 10, 4, 0.5, 3) == []  # 6x5 holds no cell inside a 3-pixel border
    with pytest.raises(ValueError, match="pyramid_levels"):
        ExtractorConfig(pyramid_levels=5)
    with pytest.raises(ValueError, match="pyramid_scale"):
        ExtractorConfig(pyramid_scale=1.0)


def test_a_pyramid_matches_an_image_to_its_half_size_copy():
    """The reason for the pyramid: the network's 7x7 view sees other structure when the scene is twice as far."""
    import cv2

    from silk_ros.bench.pair_data import read_grey
    from silk_ros.datasets.paths import shared_data_root
    from silk_ros.evaluation import matching_metrics as mm
    from silk_ros.matching import build_matcher

    path = next(iter(sorted((shared_data_root() / "train" / "bsds500" / "test").glob("*.jpg"))))
    image = read_grey(path)
    half = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    h_half_full = np.diag([half.shape[1] / image.shape[1], half.shape[0] / image.shape[0], 1.0])
    h_half_full[:2, 2] = 0.5 * np.diag(h_half_full)[:2] - 0.5  # pixel centres
    correct = {}
    for levels, top_k in ((1, 880), (3, 500)):  # about 880 keypoints each: 500 + 251 + 127 with three levels
        extractor = SilkExtractor(backend="torch", top_k=top_k, pyramid_levels=levels)
        f0, f1 = extractor.extract(image), extractor.extract(half)
        p0, p1 = build_matcher("mnn")(f0, f1).points(f0, f1)
        correct[levels] = mm.mean_matching_accuracy(p0, p1, h_half_full, (3,))[3] * len(p0)
    assert correct[3] >= max(2.5 * correct[1], 50), correct  # measured: 23 and 103 correct matches
