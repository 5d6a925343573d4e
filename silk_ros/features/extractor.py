"""Dense-to-sparse SiLK inference: ``SilkExtractor.extract(image) -> Features``.

The dense network runs on one of two backends that share every other step:

* ``torch``: PyTorch eager on CPU or CUDA (fp16 on CUDA when asked);
* ``onnxruntime``: ONNX Runtime (CPU here; CUDA / TensorRT providers when installed).

Both run the *inference-fused* network of :mod:`silk_ros.features.fusion` (BatchNorms folded into the
next unpadded convolution, which is exact) up to the keypoint logits and the trunk features, then the
same sparse step: optional NMS, threshold, top-k, mapping grid cells back to input pixels, and the
descriptor head evaluated at the keypoints only (never the whole dense map), L2-normalised.  With context
descriptors (``context_scale``) the network runs a second time on the shrunk image and each keypoint's descriptor is
joined by the one at the same point there.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from ..geometry.camera import resized_pixels
from ..schema import ConfigError
from ..weights import WeightsError, load_state_into, load_weights, shipped_weights
from .config import ExtractorConfig
from .fusion import FusedSilk, KeypointsAndFeatures, SparseDescriptorHead
from .model import SilkConfig, SilkNet
from .onnx_export import export_keypoints_and_features, export_onnx
from .quantize import load_int8_models
from .sampling import bilinear_corners, parabola_offset, unit_rows
from .types import WINDOW_RADIUS, DescriptorWindows, Features

__all__ = [
    "ExtractorConfig",
    "SilkExtractor",
    "to_grey_float",
    "load_silk_model",
    "ImageError",
    "context_image_size",
    "context_grid_position",
    "pyramid_sizes",
    "uses_context_descriptors",
]


def context_image_size(width: int, height: int, scale: float, border: int) -> tuple[int, int]:
    """(width, height) of the image shrunk by ``scale`` for the context pass: at least one coarse cell inside the
    network's ``border``.  One definition for the extractor and the trainer (``training.losses``), so that what is
    trained is what is matched."""
    return max(round(width * scale), 2 * border + 1), max(round(height * scale), 2 * border + 1)


def pyramid_sizes(width: int, height: int, levels: int, scale: float, border: int) -> list[tuple[int, int]]:
    """(width, height) of each pyramid level below the input size: ``scale`` times the one above, stopping before a
    level too small to hold a keypoint cell inside the network's ``border``."""
    sizes = []
    for level in range(1, levels):
        size = round(width * scale**level), round(height * scale**level)
        if min(size) <= 2 * border:
            break
        sizes.append(size)
    return sizes


def _by_score(found: list[Features]) -> Features:
    """One image's pyramid levels as one set of features, strongest first (as a single level gives them)."""
    windows = None if found[0].windows is None else DescriptorWindows.concatenate([f.windows for f in found])
    joined = Features(np.concatenate([f.keypoints_xy for f in found]).astype(np.float32),
                      np.concatenate([f.scores for f in found]), np.concatenate([f.descriptors for f in found]),
                      found[0].image_size, windows)
    return joined.subset(np.argsort(-joined.scores, kind="stable"))


def context_grid_position(
    xy: np.ndarray, image_size: tuple[int, int], small_size: tuple[int, int], border: int
) -> np.ndarray:
    """Pixel positions (N, 2) of the full image -> (x, y) positions on the shrunk image's coarse grid (cell
    centres are integers), clamped to the grid, which stops ``border`` cells short of each edge."""
    ratio = np.array([small_size[0] / image_size[0], small_size[1] / image_size[1]])
    grid_max = np.array([small_size[0] - 2 * border - 1, small_size[1] - 2 * border - 1])
    return np.clip(resized_pixels(np.asarray(xy, np.float64), ratio) - border, 0.0, grid_max)


class ImageError(ValueError):
    """An input image the extractor cannot use (empty, wrong type, too small...)."""


def to_grey_float(image: np.ndarray, color_order: str = "bgr") -> np.ndarray:
    """Any supported image -> float32 grey in [0, 1], shape (H, W).

    Accepts uint8 / uint16 / float arrays of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4).
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise ImageError(f"empty image of shape {image.shape}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        if image.shape[2] not in (3, 4):
            raise ImageError(f"unsupported channel count {image.shape[2]} (expected 1, 3 or 4)")
        code = {
            ("bgr", 3): cv2.COLOR_BGR2GRAY,
            ("rgb", 3): cv2.COLOR_RGB2GRAY,
            ("bgr", 4): cv2.COLOR_BGRA2GRAY,
            ("rgb", 4): cv2.COLOR_RGBA2GRAY,
        }[(color_order, image.shape[2])]
        if image.dtype not in (np.uint8, np.uint16, np.float32):
            image = image.astype(np.float32)
        image = cv2.cvtColor(np.ascontiguousarray(image), code)
    elif image.ndim != 2:
        raise ImageError(f"unsupported image shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) * (1.0 / 255.0)
    if image.dtype == np.uint16:
        return image.astype(np.float32) * (1.0 / 65535.0)
    if np.issubdtype(image.dtype, np.floating):
        out = image.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise ImageError("image contains NaN or infinite values")
        return np.clip(out, 0.0, 1.0)
    raise ImageError(f"unsupported image dtype {image.dtype}")


def weights_path(weights: str | os.PathLike) -> Path:
    """The file of a weights setting: a path, or a shipped name (``silk-mu``)."""
    path = Path(weights)
    return shipped_weights(str(weights)) if not path.suffix and not path.exists() else path


def uses_context_descriptors(descriptor_dim: int, weights: str | os.PathLike) -> bool:
    """Whether descriptors of ``descriptor_dim`` (the size a matcher was trained on) are the context descriptors of the
    SiLK network in ``weights`` (twice its own size: ``context_scale`` on) or its own (``context_scale: 0``): the one
    rule by which the odometry's checks, the benches and the pose check give a matcher the descriptors it takes."""
    network_dim = load_weights(weights_path(weights), kind="silk").architecture["descriptor_dim"]
    if descriptor_dim not in (network_dim, 2 * network_dim):
        raise ConfigError(f"the SiLK network {weights} gives {network_dim}-d descriptors and {2 * network_dim}-d "
                          f"context descriptors, never {descriptor_dim}-d")
    return descriptor_dim == 2 * network_dim


def load_silk_model(weights: str | os.PathLike, allow_untrained: bool = False, name: str = "vggnp-mu") -> SilkNet:
    """Build a SilkNet from a weights file (or shipped name); random weights only when asked."""
    if allow_untrained and (weights is None or weights == "untrained"):
        torch.manual_seed(0)
        return SilkNet(name).eval()
    path = weights_path(weights)
    record = load_weights(path, kind="silk")
    try:
        config = SilkConfig.from_dict(record.architecture)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"weights file {path}: bad architecture record ({exc})") from exc
    model = SilkNet(config)
    load_state_into(model, record)
    model.provenance = record.provenance  # type: ignore[attr-defined]
    return model.eval()


def _quadratic_offsets(logits: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N, 2) sub-pixel (dx, dy) of the peak of a parabola through each cell and its two neighbours."""
    h, w = logits.shape
    offsets = np.zeros((len(rows), 2), np.float32)
    for axis, (index, size) in enumerate(((cols, w), (rows, h))):
        inside = (index > 0) & (index < size - 1)
        r, c = rows[inside], cols[inside]
        dr, dc = (0, 1) if axis == 0 else (1, 0)
        centre = logits[r, c]
        offsets[inside, axis] = parabola_offset(logits[r - dr, c - dc], centre, logits[r + dr, c + dc])
    return offsets


class _TorchBackend:
    def __init__(self, fused: FusedSilk, device: str, fp16: bool, threads: int):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device '{device}' requested but CUDA is not available")
        if fp16 and not device.startswith("cuda"):
            raise ValueError("fp16 is supported on CUDA only")
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.dtype = torch.float16 if fp16 else torch.float32
        self.dense_model = fused.to(self.device, self.dtype).eval()
        self.model = KeypointsAndFeatures(self.dense_model).eval()
        self.name = f"torch-{device}{'-fp16' if fp16 else ''}"

    @torch.inference_mode()
    def _run(self, model: torch.nn.Module, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(batch).to(self.device, self.dtype)
        first, second = model(x)
        return first.float().cpu().numpy(), second.float().cpu().numpy()

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits (B, 1, h, w) and channels-last trunk features (B, h + 2, w + 2, C)."""
        return self._run(self.model, batch)

    def dense(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits and dense raw descriptors (B, D, h, w)."""
        return self._run(self.dense_model, batch)


class _OnnxBackend:
    """ONNX Runtime sessions of the fused network: exported from it (float32), or its 8-bit models (``int8``, by role:
    ``features.quantize``)."""

    def __init__(self, fused: FusedSilk, device: str, threads: int, int8: dict[str, bytes] | None = None):
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            available = ort.get_available_providers()
            wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
            providers = [p for p in wanted if p in available] + providers
            if len(providers) == 1:
                raise RuntimeError(f"device '{device}' requested but ONNX Runtime has no CUDA provider ({available})")
        self.fused = fused
        self.threads = threads
        self.providers = providers
        self.int8 = int8
        self.session = self._session("keypoints", export_keypoints_and_features)
        self._dense_session = None
        provider = self.session.get_providers()[0].replace("ExecutionProvider", "").lower()
        self.name = f"onnxruntime-{provider}{'-int8' if int8 else ''}"

    def _session(self, role: str, export: Callable[[FusedSilk, io.BytesIO], None]):
        import onnxruntime as ort

        from .runtime import cpu_session_options

        if self.int8:
            model = self.int8[role]
        else:
            buffer = io.BytesIO()
            export(self.fused, buffer)
            model = buffer.getvalue()
        return ort.InferenceSession(model, cpu_session_options(self.threads), providers=self.providers)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, features = self.session.run(None, {"image": batch})
        return logits, features

    def dense(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._dense_session is None:  # descriptor windows, inspection, the features bench
            self._dense_session = self._session("dense", export_onnx)
        logits, desc = self._dense_session.run(None, {"image": batch})
        return logits, desc


def _resolve_backend(name: str) -> str:
    if name == "auto":
        try:
            import onnxruntime  # noqa: F401

            return "onnxruntime"
        except ImportError:
            return "torch"
    if name not in ("torch", "onnxruntime"):
        raise ValueError(f"unknown backend '{name}' (torch | onnxruntime | auto)")
    return name


class SilkExtractor:
    """SiLK keypoints and descriptors for any image: ``extract(image) -> Features``."""

    def __init__(self, config: ExtractorConfig | None = None, model: SilkNet | None = None, **overrides):
        config = replace(config or ExtractorConfig(), **overrides)
        self.config = config
        model_given = model is not None
        if model is None:
            model = load_silk_model(config.weights, allow_untrained=config.allow_untrained)
        self.model = model.eval()
        self.border = model.border
        self.descriptor_dim = model.config.descriptor_dim * (2 if config.context_scale else 1)
        fused = FusedSilk.from_model(model)
        self._describe = SparseDescriptorHead(fused)
        self.backend_name = _resolve_backend(config.backend)
        int8 = None
        if config.precision == "int8":
            if self.backend_name != "onnxruntime":
                raise ConfigError("precision int8 runs on ONNX Runtime, which is not installed: use precision fp32")
            if model_given or config.weights == "untrained":
                raise ConfigError("precision int8 needs a weights file (its 8-bit models are made from the file)")
            int8 = load_int8_models(weights_path(config.weights))
        if self.backend_name == "onnxruntime":
            self._backend = _OnnxBackend(fused, config.device, config.threads, int8)
        else:
            self._backend = _TorchBackend(fused, config.device, config.fp16, config.threads)

    @property
    def backend(self) -> str:
        """Backend and device actually used, e.g. ``onnxruntime-cpu`` or ``torch-cuda-fp16``."""
        return self._backend.name

    def _prepare(self, image: np.ndarray, color_order: str) -> np.ndarray:
        grey = to_grey_float(image, color_order)
        if min(grey.shape) <= 2 * self.border:
            raise ImageError(f"image {grey.shape} is too small for a network border of {self.border} px")
        return grey

    def dense(self, image: np.ndarray, color_order: str = "bgr") -> tuple[np.ndarray, np.ndarray]:
        """Dense logits (h, w) and raw descriptors (D, h, w) of one image."""
        grey = self._prepare(image, color_order)
        logits, desc = self._backend.dense(grey[None, None])
        return logits[0, 0], desc[0]

    def extract(self, image: np.ndarray, color_order: str = "bgr") -> Features:
        return self.extract_batch([image], color_order)[0]

    def extract_batch(self, images: list[np.ndarray], color_order: str = "bgr") -> list[Features]:
        """One backend call for a list of equally sized images (two with context descriptors), per pyramid level."""
        greys = [self._prepare(im, color_order) for im in images]
        if len({g.shape for g in greys}) != 1:
            raise ImageError("extract_batch needs images of one size; call extract() per image otherwise")
        height, width = greys[0].shape
        found = self._extract_level(greys, self.config.top_k)
        levels = pyramid_sizes(width, height, self.config.pyramid_levels, self.config.pyramid_scale, self.border)
        if not levels:
            return found
        per_level = [found]
        for size in levels:
            shrunk = [cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in greys]
            ratio = np.array([width / size[0], height / size[1]], np.float32)
            # ORB's share by area: a level keeps top_k x its pixel fraction, on top of the input size's top_k.
            share = size[0] * size[1] / (width * height)
            top_k = max(1, round(self.config.top_k * share)) if self.config.top_k else 0
            per_level.append([
                Features(resized_pixels(f.keypoints_xy, ratio), f.scores, f.descriptors, (height, width),
                         None if f.windows is None else f.windows.scaled(ratio))
                for f in self._extract_level(shrunk, top_k)
            ])
        return [_by_score(list(of_image)) for of_image in zip(*per_level, strict=True)]

    def _extract_level(self, greys: list[np.ndarray], top_k: int) -> list[Features]:
        """Keypoints of one image size: only the ``top_k`` kept are described (0: every candidate)."""
        logits, describers = self._run(np.stack(greys)[:, None])
        found = [self._sparse(logits[i, 0], describers[i], greys[0].shape, top_k) for i in range(len(greys))]
        if self.config.context_scale:
            found = self._with_context(greys, found)
        return found

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, list[Callable[[np.ndarray, np.ndarray], np.ndarray]]]:
        """Logits (B, 1, h, w) and, per image, ``describe(rows, cols) -> (N, D)`` raw descriptors of grid cells.

        Descriptor windows need 25 cells a keypoint, for which the backend's dense descriptor head is cheaper than
        describing cells one by one; every pass then runs on that one session (two ONNX Runtime sessions take
        turns badly: the idle one's spinning workers hold the cores, 37 -> 71 ms a frame at 320x240)."""
        if self.config.refine_matches:
            logits, dense = self._backend.dense(batch)
            return logits, [lambda rows, cols, d=d: d[:, rows, cols].T for d in dense]
        logits, features = self._backend(batch)
        return logits, [lambda rows, cols, f=f: self._describe(f, rows, cols) for f in features]

    def _with_context(self, greys: list[np.ndarray], found: list[Features]) -> list[Features]:
        """Each descriptor joined by the one at the same point of the image shrunk by ``context_scale`` (bilinear
        between the four nearest cells of the coarse grid), weighted, the whole re-normalised.

        The coarse grid stops ``border`` cells short of each edge; keypoints in that band read the nearest covered
        cell.  Reflect-padding the shrunk image instead was measured mixed (better on fast rotation, worse on TUM
        desk, KITTI 07 and low texture: MODEL_CARD.md, session 21)."""
        height, width = greys[0].shape
        size = context_image_size(width, height, self.config.context_scale, self.border)
        small = np.stack([cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in greys])
        logits, describers = self._run(small[:, None])
        grid_h, grid_w = logits.shape[2:]
        out = []
        for f, describe in zip(found, describers, strict=True):
            cell = context_grid_position(f.keypoints_xy, (width, height), size, self.border).astype(np.float32)
            corner = np.minimum(np.floor(cell).astype(np.int64), [max(grid_w - 2, 0), max(grid_h - 2, 0)])
            frac = np.clip(cell - corner, 0.0, 1.0)
            context = np.zeros((len(f), f.descriptors.shape[1]), np.float32)
            for dx, dy, weight in bilinear_corners(frac):
                cols = np.minimum(corner[:, 0] + dx, grid_w - 1)
                rows = np.minimum(corner[:, 1] + dy, grid_h - 1)
                context += weight[:, None] * describe(rows, cols)
            joined = np.concatenate([f.descriptors, self.config.context_weight * unit_rows(context)], axis=1)
            joined /= np.linalg.norm(joined, axis=1, keepdims=True)
            out.append(Features(f.keypoints_xy, f.scores, np.ascontiguousarray(joined, np.float32), f.image_size,
                                f.windows))
        return out

    def _sparse(self, logits: np.ndarray, describe: Callable[[np.ndarray, np.ndarray], np.ndarray],
                image_size: tuple[int, int], k: int) -> Features:
        """The ``k`` strongest cells of ``logits`` as keypoints; ``describe(rows, cols)`` gives raw descriptors."""
        cfg = self.config
        h, w = logits.shape
        scores = logits
        if cfg.nms_radius > 0:
            size = 2 * cfg.nms_radius + 1
            peak = cv2.dilate(logits, np.ones((size, size), np.uint8))
            scores = np.where(logits >= peak, logits, -np.inf)
        if cfg.border_margin > 0:
            m = cfg.border_margin
            scores = scores.copy() if scores is logits else scores
            scores[:m], scores[h - m :], scores[:, :m], scores[:, w - m :] = -np.inf, -np.inf, -np.inf, -np.inf
        flat = scores.reshape(-1)
        if cfg.threshold > 0:
            logit_threshold = np.log(cfg.threshold / (1.0 - cfg.threshold)) if cfg.threshold < 1 else np.inf
            candidates = np.flatnonzero(flat >= logit_threshold)
        else:
            candidates = np.flatnonzero(np.isfinite(flat)) if scores is not logits else None
        if candidates is None:
            if 0 < k < flat.size:
                index = np.argpartition(-flat, k - 1)[:k]
            else:
                index = np.arange(flat.size)
        else:
            index = candidates
            if 0 < k < index.size:
                index = index[np.argpartition(-flat[index], k - 1)[:k]]
        index = index[np.argsort(-flat[index], kind="stable")]
        rows, cols = np.divmod(index, w)
        keypoints = np.stack([cols, rows], axis=1).astype(np.float32) + self.border
        if cfg.subpixel:
            keypoints += _quadratic_offsets(logits, rows, cols)
        probs = (1.0 / (1.0 + np.exp(-flat[index].astype(np.float64)))).astype(np.float32)
        if cfg.refine_matches:
            windows = self._windows(describe, rows, cols, (h, w))
            descriptors = windows.descriptors[:, WINDOW_RADIUS, WINDOW_RADIUS]
        else:
            windows, descriptors = None, unit_rows(describe(rows, cols))
        return Features(keypoints, probs, np.ascontiguousarray(descriptors), tuple(image_size), windows)

    def _windows(self, describe: Callable[[np.ndarray, np.ndarray], np.ndarray], rows: np.ndarray,
                 cols: np.ndarray, grid: tuple[int, int]) -> DescriptorWindows:
        """The descriptors of the 5x5 cells around each keypoint's cell (edge cells repeated past the grid)."""
        steps = np.arange(-WINDOW_RADIUS, WINDOW_RADIUS + 1)
        window_rows = np.clip(rows[:, None, None] + steps[None, :, None], 0, grid[0] - 1)
        window_cols = np.clip(cols[:, None, None] + steps[None, None, :], 0, grid[1] - 1)
        window_rows, window_cols = np.broadcast_arrays(window_rows, window_cols)
        size = 2 * WINDOW_RADIUS + 1
        descriptors = unit_rows(describe(window_rows.ravel(), window_cols.ravel()))
        return DescriptorWindows(
            descriptors.reshape(len(rows), size, size, -1),
            (np.stack([cols, rows], axis=1) + self.border).astype(np.float32),
            np.ones((len(rows), 2), np.float32),
        )
