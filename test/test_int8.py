"""SiLK in 8-bit integers (``precision: int8``, ``silk_ros.features.quantize``): the shipped 8-bit models belong to the
shipped weights, find the float32 network's keypoints and descriptors on real frames, never saturate AVX2's int16
pair sums, run the odometry, and every misuse is refused by name."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from silk_ros.features import ExtractorConfig, SilkExtractor, load_silk_model
from silk_ros.features.extractor import weights_path
from silk_ros.features.quantize import avx2_pair_saturation, int8_model_paths, load_int8_models
from silk_ros.schema import ConfigError
from silk_ros.weights import WeightsError


@pytest.fixture(scope="module")
def frames(redkitchen_frames):
    return [frame.image for frame in redkitchen_frames[:4]]


def _copy_weights(tmp_path, name="copy"):
    """The shipped weights and their 8-bit models, copied under another name."""
    source = weights_path("silk-mu")
    target = tmp_path / f"{name}.pt"
    shutil.copy(source, target)
    for role, path in int8_model_paths(source).items():
        shutil.copy(path, int8_model_paths(target)[role])
    return target


def test_shipped_int8_models_were_made_from_the_shipped_weights():
    models = load_int8_models(weights_path("silk-mu"))
    assert set(models) == {"keypoints", "dense"} and all(len(data) > 10_000 for data in models.values())


def test_int8_extractor_finds_the_float32_keypoints_and_descriptors(frames):
    """Real Kinect frames at the odometry's size: the strongest keypoints of the 8-bit network are the float32
    network's (the weakest of a top-k trade places with their neighbours: the two rankings differ in the last
    digits), their descriptors nearly the same."""
    options = dict(top_k=1000, nms_radius=2, refine_matches=False, threads=1)
    fp32, int8 = SilkExtractor(**options), SilkExtractor(**options, precision="int8")
    assert int8.backend == "onnxruntime-cpu-int8" and fp32.backend == "onnxruntime-cpu"
    for image in frames:
        a, b = fp32.extract(image), int8.extract(image)
        distance = np.linalg.norm(a.keypoints_xy[:, None] - b.keypoints_xy[None], axis=2)
        nearest = distance.argmin(axis=0)
        same = distance[nearest, np.arange(len(b))] < 1.0
        assert same[:250].mean() > 0.8, f"only {same[:250].mean():.2f} of the strongest keypoints are float32 ones"
        assert same.mean() > 0.65, f"only {same.mean():.2f} of the 8-bit keypoints are float32 keypoints"
        cosine = np.sum(a.descriptors[nearest[same]] * b.descriptors[same], axis=1)
        assert np.median(cosine) > 0.98 and np.percentile(cosine, 5) > 0.8


def test_int8_dense_descriptors_and_refined_matches(frames):
    """The dense 8-bit model serves the descriptor windows of refined matches."""
    fp32, int8 = SilkExtractor(threads=1), SilkExtractor(threads=1, precision="int8")
    logits_a, desc_a = fp32.dense(frames[0])
    logits_b, desc_b = int8.dense(frames[0])
    assert np.median(np.abs(logits_a - logits_b)) < 0.1 * np.median(np.abs(logits_a))
    unit = [d / np.linalg.norm(d, axis=0, keepdims=True) for d in (desc_a, desc_b)]
    assert np.median(np.sum(unit[0] * unit[1], axis=0)) > 0.98
    features = int8.extract(frames[0])
    assert features.windows is not None and len(features.windows) == len(features.keypoints_xy)


def test_int8_convolutions_never_saturate_avx2_pair_sums(frames):
    """AVX2 without VNNI (AMD Zen 3) sums u8 x s8 products two by two into a saturating int16: the shipped models
    must stay below it on real frames, or Zen 3 and Zen 4 would give different keypoints."""
    data = load_int8_models(weights_path("silk-mu"))["dense"]
    grey = frames[1].mean(axis=2).astype(np.float32)[60:180, 80:240] / 255.0  # a 160x120 crop: ~10 s of numpy
    found = avx2_pair_saturation(data, grey)
    assert len(found) == 3  # the first and the output convolutions stay float32
    for name, (saturated, largest) in found.items():
        assert saturated == 0, f"{name}: {saturated} pair sums beyond int16 (largest {largest})"


def test_int8_refuses_missing_or_stale_models_by_name(tmp_path):
    copied = _copy_weights(tmp_path)
    assert SilkExtractor(weights=str(copied), precision="int8").backend.endswith("-int8")
    record = torch.load(copied, weights_only=True)
    record["provenance"] = {**record.get("provenance", {}), "note": "fine-tuned again"}
    torch.save(record, copied)
    with pytest.raises(WeightsError, match="made from other weights.*python -m training.quantize"):
        SilkExtractor(weights=str(copied), precision="int8")
    incomplete = _copy_weights(tmp_path, "incomplete")
    int8_model_paths(incomplete)["dense"].unlink()
    with pytest.raises(WeightsError, match="no 8-bit model .*int8-dense.onnx.*python -m training.quantize"):
        SilkExtractor(weights=str(incomplete), precision="int8")


def test_int8_misconfiguration_is_loud():
    with pytest.raises(ConfigError, match="precision must be one of"):
        ExtractorConfig(precision="int16")
    with pytest.raises(ConfigError, match="ONNX Runtime on the CPU only"):
        ExtractorConfig(precision="int8", backend="torch")
    with pytest.raises(ConfigError, match="ONNX Runtime on the CPU only"):
        ExtractorConfig(precision="int8", device="cuda")
    with pytest.raises(ConfigError, match="needs a weights file"):
        SilkExtractor(model=load_silk_model("silk-mu"), precision="int8")


def test_quantize_command_makes_models_the_extractor_accepts(tmp_path, data_root):
    from training.quantize import main

    copied = _copy_weights(tmp_path, "mine")
    for path in int8_model_paths(copied).values():
        path.unlink()
    assert main(["--weights", str(copied), "--images", "2", "--data", str(data_root)]) == 0
    assert set(load_int8_models(copied)) == {"keypoints", "dense"}
    assert len(SilkExtractor(weights=str(copied), precision="int8", top_k=200).extract(
        np.random.default_rng(0).integers(0, 255, (120, 160), np.uint8))) > 0


def test_int8_odometry_tracks_real_frames(redkitchen_frames):
    """The odometry with ``precision: int8`` on real RGB-D frames: every frame posed, the path close to the float32
    run's (never the exact floats: the two arithmetics differ)."""
    from silk_ros.odometry import OdometryConfig, VisualOdometry

    paths = {}
    for precision in ("fp32", "int8"):
        vo = VisualOdometry(OdometryConfig.from_dict({"precision": precision, "threads": 1}))
        for frame in redkitchen_frames:
            result = vo.process(frame.image, frame.timestamp, frame.camera, frame.depth)
            assert result.state.name != "LOST"
        paths[precision] = np.array([pose[:3, 3] for pose in vo.trajectory.poses])
    travelled = np.linalg.norm(np.diff(paths["fp32"], axis=0), axis=1).sum()
    assert travelled > 0.02
    assert np.max(np.linalg.norm(paths["int8"] - paths["fp32"], axis=1)) < 0.25 * travelled
