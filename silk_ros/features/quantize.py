"""SiLK in 8-bit integers for ONNX Runtime (``ExtractorConfig.precision: int8``): the network's cost halves on x86.

SiLK-µ runs at the CPU's float32 peak already (BENCHMARKS.md ``features``: 1.1x the roofline at 320x240), so only
fewer or cheaper multiply-adds make it faster.  8-bit convolutions are the cheaper kind, on every x86 CPU ONNX Runtime
supports.  Quantisation is static, in ONNX's QDQ form (ONNX Runtime fuses each DequantizeLinear -> Conv ->
QuantizeLinear into one integer convolution):

- weights: signed 8 bits per output channel.  Activations (ReLU outputs, zero point 0): one unsigned scale per
  tensor, calibrated (99.99th percentile) on photos the network was trained on (``python -m training.quantize``), never
  on evaluation data, then doubled: the calibrated range fills [0, 127], 7 bits.  CPUs without VNNI (AVX2 only: AMD Zen
  3) sum pairs of u8 x s8 products into a saturating int16 (``vpmaddubsw``); two 7-bit activations times 8-bit
  weights stay under it (2 x 127 x 127 = 32,258 < 32,767) but for activations beyond the calibrated range (one pair in
  ~5e9 on validation photos; with 8-bit activations ~1,000 per frame would saturate and Zen 3 would see other
  keypoints than Zen 4).  ``avx2_pair_saturation`` counts them; a test checks real frames;
- the first convolution stays float32: its input is the image, whose neighbouring pixels near 255 times weights near
  +-127 saturate those pair sums (1.5 % of its pairs).  It is 1 % of the network's multiply-adds;
- the 1x1 output convolutions (logits, descriptors) stay float32: a per-tensor 8-bit logit loses the ranking of the
  keypoints (median logit error 1.3 against 0.05);
- the first ReLU's channels are equalised before quantising (cross-layer equalisation, Nagel et al., ICCV 2019): one
  scale serves all 64 channels of that activation, whose calibrated ranges span 0.28 (median) to 1.18, so the quiet
  channels had a few levels each.  Each channel c of the first convolution is multiplied by s_c = range_max / range_c
  (at most ``MAX_EQUALISATION``) and the second convolution's input channel c divided by it: exact in float32, as
  ReLU(s x) = s ReLU(x).

Measured on validation photos at 320x240 (the odometry's keypoints; MODEL_CARD.md, "Session 27"): the median shift of
a keypoint from the float32 network's is 0.070 px with plain 8-bit quantisation, 0.023 px equalised and 0.030 px
equalised with 7-bit activations (shipped); the odometry lost accuracy without the equalisation.

The integer models are files next to the weights (``<weights>.int8.onnx`` for the extractor's pass,
``<weights>.int8-dense.onnx`` for dense descriptors), each recording the SHA-256 of the weights file it was made
from: a stale or missing file is an error that names the command making it, never a silent float32 fallback.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..weights import WeightsError
from .fusion import FusedSilk
from .onnx_export import export_keypoints_and_features, export_onnx

__all__ = [
    "INT8_MODELS", "avx2_pair_saturation", "equalised_first_relu", "int8_model_paths", "load_int8_models",
    "quantize_silk", "weights_sha256",
]

#: The extractor's two ONNX models and the file suffix of each one's 8-bit version.
INT8_MODELS: dict[str, tuple[str, Callable]] = {
    "keypoints": (".int8.onnx", export_keypoints_and_features),
    "dense": (".int8-dense.onnx", export_onnx),
}
#: Calibration size: the odometry's working resolution.
CALIBRATION_SIZE = (320, 240)
#: Largest factor a quiet channel of the first ReLU is scaled up by (dead channels must not blow up their weights).
MAX_EQUALISATION = 16.0
#: Calibrated range of an activation channel: this quantile of its values (the quantiser's percentile too).
RANGE_QUANTILE = 0.9999
_DIGEST_KEY = "silk_ros.weights_sha256"
_MAKE = "python -m training.quantize --weights {weights}"


def weights_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def int8_model_paths(weights_path: str | os.PathLike) -> dict[str, Path]:
    """Where the 8-bit models of a weights file live: beside it, named after it."""
    path = Path(weights_path)
    return {role: path.with_suffix(suffix) for role, (suffix, _) in INT8_MODELS.items()}


def load_int8_models(weights_path: str | os.PathLike) -> dict[str, bytes]:
    """The 8-bit models made from ``weights_path`` (bytes for ``onnxruntime.InferenceSession``); a missing file or one
    made from other weights raises ``WeightsError`` naming the command that makes them."""
    import onnx

    digest = weights_sha256(weights_path)
    make = _MAKE.format(weights=weights_path)
    models = {}
    for role, path in int8_model_paths(weights_path).items():
        if not path.exists():
            raise WeightsError(
                f"precision int8: no 8-bit model {path} for weights {weights_path}; make it with `{make}`"
            )
        data = path.read_bytes()
        try:
            recorded = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}.get(_DIGEST_KEY)
        except Exception as exc:  # onnx raises several types for damaged files
            raise WeightsError(f"precision int8: {path} cannot be read ({type(exc).__name__}: {exc})") from exc
        if recorded != digest:
            raise WeightsError(
                f"precision int8: {path} was made from other weights than {weights_path} (SHA-256 {recorded} in the "
                f"model, {digest} of the weights); make it again with `{make}`"
            )
        models[role] = data
    return models


def quantize_silk(fused: FusedSilk, weights_path: str | os.PathLike, images: Sequence[np.ndarray],
                  out_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write the 8-bit models of ``fused`` (the network of ``weights_path``), calibrated on ``images`` (grey float32 in
    [0, 1], any size: resized to the calibration size).  Returns the written paths."""
    import cv2
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not images:
        raise ValueError("quantize_silk needs calibration images")
    batches = [cv2.resize(np.asarray(im, np.float32), CALIBRATION_SIZE, interpolation=cv2.INTER_AREA)[None, None]
               for im in images]

    class Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {"image": batch}

    fused = equalised_first_relu(fused, np.concatenate(batches))
    paths = int8_model_paths(weights_path)
    if out_dir is not None:
        paths = {role: Path(out_dir) / path.name for role, path in paths.items()}
    digest = weights_sha256(weights_path)
    with tempfile.TemporaryDirectory() as scratch:
        for role, (_, export) in INT8_MODELS.items():
            buffer = io.BytesIO()
            export(fused, buffer)
            exported, prepared, quantized = (Path(scratch) / f"{role}.{n}.onnx" for n in ("fp32", "pre", "int8"))
            exported.write_bytes(buffer.getvalue())
            quant_pre_process(str(exported), str(prepared), skip_symbolic_shape=True)
            graph = onnx.load(str(prepared)).graph
            outputs = {o.name for o in graph.output}
            float32 = [node.name for node in graph.node
                       if node.op_type == "Conv" and ("image" in node.input or set(node.output) & outputs)]
            options = dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                           weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Percentile,
                           nodes_to_exclude=float32)
            percentile = {"CalibPercentile": 100 * RANGE_QUANTILE}
            quantize_static(str(prepared), str(quantized), Calibration(), **options, extra_options=percentile)
            # again with every activation on 7 bits ([0, 127], twice the calibrated scale): a pair of them times
            # 8-bit weights stays under int16 (2 x 127 x 127 = 32,258), so AVX2's pair sums cannot saturate
            first = onnx.load(str(quantized)).graph
            constants = {t.name: onnx.numpy_helper.to_array(t) for t in first.initializer}
            seven_bit = {
                node.input[0]: [{"scale": np.array(2.0 * constants[node.input[1]], np.float32),
                                 "zero_point": np.array(0, np.uint8)}]
                for node in first.node if node.op_type == "QuantizeLinear" and node.input[0] not in constants
            }
            quantize_static(str(prepared), str(quantized), Calibration(), **options,
                            extra_options={**percentile, "TensorQuantOverrides": seven_bit})
            model = onnx.load(str(quantized))
            onnx.helper.set_model_props(model, {
                _DIGEST_KEY: digest, "silk_ros.weights_file": Path(weights_path).name,
                "silk_ros.calibration": f"{len(batches)} images at {CALIBRATION_SIZE[0]}x{CALIBRATION_SIZE[1]}",
            })
            paths[role].parent.mkdir(parents=True, exist_ok=True)
            onnx.save(model, str(paths[role]))
    return paths


def equalised_first_relu(fused: FusedSilk, images: np.ndarray) -> FusedSilk:
    """A copy of ``fused`` whose first ReLU's channels all reach the largest one's range on ``images`` (B, 1, H, W),
    the same function in float32 (the second convolution divides each input channel by the factor its channel got)."""
    import torch

    equalised = copy.deepcopy(fused)
    first, second = equalised.trunk[0], equalised.trunk[2]
    with torch.no_grad():
        activations = torch.relu(first(torch.from_numpy(images)))
        channels = activations.transpose(0, 1).reshape(activations.shape[1], -1)
        stride = max(1, channels.shape[1] // 1_000_000)  # torch.quantile takes at most 16M values
        ranges = torch.quantile(channels[:, ::stride], RANGE_QUANTILE, dim=1).clamp_min(1e-12)
        factor = (ranges.max() / ranges).clamp(max=MAX_EQUALISATION)
        first.weight.mul_(factor[:, None, None, None])
        first.bias.mul_(factor)
        second.weight.div_(factor[None, :, None, None])
    return equalised


def avx2_pair_saturation(model_bytes: bytes, image: np.ndarray) -> dict[str, tuple[int, int]]:
    """Per integer convolution of an 8-bit model: (pair sums beyond int16, largest |pair sum|) on ``image`` (grey
    float32 in [0, 1]), as AVX2 without VNNI computes them: unsigned activations times signed weights, summed two by
    two over adjacent input channels of one tap into a saturating int16 (``vpmaddubsw``; with the channels-first
    order, adjacent taps of one channel, one pair of ~5e9 on 4 training photos would exceed it).  VNNI CPUs
    accumulate in int32 and never saturate; a model that saturates here would give other keypoints on AMD Zen 3 than
    on Zen 4."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    model = onnx.load_from_string(model_bytes)
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    convs = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        x_dq, w_dq = producer.get(node.input[0]), producer.get(node.input[1])
        if x_dq is not None and w_dq is not None and w_dq.op_type == "DequantizeLinear":
            convs.append((node.name, x_dq, producer[x_dq.input[0]], constants[w_dq.input[0]].astype(np.int32)))
            model.graph.output.append(onnx.helper.make_tensor_value_info(x_dq.output[0], onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    values = dict(zip(names, session.run(None, {"image": image[None, None]}), strict=True))
    found = {}
    for name, x_dq, x_q, weights in convs:
        scale, zero = constants[x_q.input[1]], constants[x_q.input[2]].astype(np.int32)
        activations = np.clip(np.round(values[x_dq.output[0]][0] / scale) + zero, 0, 255).astype(np.int32)
        cout, cin, kh, kw = weights.shape
        h, w = activations.shape[1] - kh + 1, activations.shape[2] - kw + 1
        taps = np.stack([activations[:, i:i + h, j:j + w] for i in range(kh) for j in range(kw)])  # (taps, cin, h, w)
        # taps outside, input channels inside: ONNX Runtime runs integer convolutions channels-last (its NHWC
        # transformer), so its im2col pairs adjacent input channels of one tap
        columns = taps.transpose(2, 3, 0, 1).reshape(h * w, -1)
        kernel = weights.transpose(0, 2, 3, 1).reshape(cout, -1)
        if columns.shape[1] % 2:
            columns, kernel = np.pad(columns, ((0, 0), (0, 1))), np.pad(kernel, ((0, 0), (0, 1)))
        kernel = kernel.reshape(1, cout, -1, 2)
        saturated = largest = 0
        for start in range(0, len(columns), 2048):
            pairs = (columns[start:start + 2048].reshape(-1, 1, kernel.shape[2], 2) * kernel).sum(-1)
            saturated += int((np.abs(pairs) > np.iinfo(np.int16).max).sum())
            largest = max(largest, int(np.abs(pairs).max()))
        found[name] = (saturated, largest)
    return found
