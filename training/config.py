"""Training configuration: one dataclass, read from YAML, stored in every checkpoint and weights file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from .losses import KEYPOINT_MASKS, MIN_TEMPERATURE

__all__ = ["TrainConfig", "HomographyConfig", "PhotometricConfig"]


@dataclass
class HomographyConfig:
    """SiLK's homography sampler (ranges of uniform distributions; no translation).

    The crop is a square of half-width 1 on a plane at ``plane_distance`` from a pinhole camera of focal
    length ``plane_distance``; it is scaled, tilted out of plane about x and y, and rotated in plane.  SiLK
    scales first (a smaller crop is tilted as a smaller square, so perspective grows with the scale drawn)
    with the plane at distance 1.  ``scale_first: false, plane_distance: 2`` is the earlier, milder sampler.
    """

    scale: tuple[float, float] = (0.6, 0.9)
    out_of_plane: float = 0.78  # radians, |tilt| about x and y
    in_plane: float = 0.39  # radians
    #: Distance of the virtual plane in crop half-widths; sets how strong a tilt's perspective is.
    plane_distance: float = 1.0
    scale_first: bool = True


@dataclass
class PhotometricConfig:
    """Applied independently to both views (probabilities and ranges)."""

    brightness: float = 0.2  # additive, U(-b, b)
    contrast: tuple[float, float] = (0.7, 1.3)
    gamma: tuple[float, float] = (0.7, 1.4)
    noise_sigma: float = 0.03  # Gaussian noise sigma ~ U(0, s)
    blur_prob: float = 0.25
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    motion_blur_prob: float = 0.25
    motion_blur_length: tuple[int, int] = (3, 7)


@dataclass
class TrainConfig:
    model: str = "vggnp-mu"
    #: Folders (or glob patterns relative to the data root) of training images; any image files.
    train_images: list[str] = field(default_factory=lambda: ["train/bsds500/train", "train/bsds500/val"])
    val_images: list[str] = field(default_factory=lambda: ["train/bsds500/test"])
    #: Validation images: the first ``val_count`` (sorted) of ``val_images`` (0 = all).  Validation images are
    #: never trained on, even where ``train_images`` contains their folder.
    val_count: int = 0
    #: Paths above are relative to this folder; "" means silk_ros.datasets.paths.shared_data_root().
    data_root: str = ""
    crop: int = 152  # square crop side in pixels (grid = crop - 2 * border)
    #: Side of the validation crops (0 = ``crop``): runs at other crops then validate on the same pairs.
    val_crop: int = 0
    #: Weights the model starts from when the run has no checkpoint yet: a SiLK weights file (shipped name or
    #: path) or a training checkpoint; "" = random initialisation.  Fine-tuning, e.g. at a larger crop.
    init_weights: str = ""
    batch_size: int = 2  # image pairs per step (per process)
    steps: int = 100_000
    lr: float = 1e-4
    #: Step decay: the learning rate is multiplied by ``lr_gamma`` at each of these steps.
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.1
    #: Softmax temperature on cosine similarities (SiLK: 0.1 on descriptors scaled by sqrt(2), i.e. 0.05).
    temperature: float = 0.05
    #: Rows/columns of the similarity matrix computed at once (peak memory ~ block x N).
    block_size: int = 128
    #: 0 = every correspondence is an InfoNCE anchor; k > 0 = k random anchors per pair (same cost per step).
    anchors: int = 0
    keypoint_weight: float = 1.0
    #: Weight of the descriptor loss, whose two directions are summed (0.5 = their mean, the earlier recipe).
    descriptor_weight: float = 1.0
    #: Cells the keypoint BCE trains on: "correspondences" (SiLK) or "all" (cells outside the overlap are negatives).
    keypoint_mask: str = "correspondences"
    #: > 0: the descriptor loss (and so the keypoint labels) is on context descriptors, as the odometry and the
    #: benches extract them (``ExtractorConfig.context_scale`` / ``context_weight``): each cell's own descriptor
    #: joined by ``context_weight`` x the one at the same point of the crop shrunk by ``context_scale``, from a
    #: second pass of the network (``losses.with_context``).  0: the network's own descriptors (SiLK).
    context_scale: float = 0.0
    context_weight: float = 0.7
    #: Share of the training pairs that are two views of a 3D room papered with the training photos
    #: (training.room_pairs: depth, occlusions, parallax) instead of a homographic warp of one photo.
    room_pairs: float = 0.0
    seed: int = 0
    checkpoint_every: int = 500
    val_every: int = 500
    val_pairs: int = 32
    #: Synthetic-room pose pairs (640x480, textured with the validation photos; ``training.pose_check``) whose
    #: pose AUC@10 with MNN is logged at each validation as ``val_pose_auc10``, the best kept as
    #: checkpoint_best_pose.pt: unlike the F1 on homography crops, it follows the pose benchmarks (0 = off).
    val_pose_pairs: int = 0
    log_every: int = 10
    #: Threads for intra-op parallelism (0 = torch default).
    threads: int = 0
    device: str = "cpu"
    run_dir: str = "runs/silk_mu"
    homography: HomographyConfig = field(default_factory=HomographyConfig)
    photometric: PhotometricConfig = field(default_factory=PhotometricConfig)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return config_from_dict(cls, data, "training")

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] = ()) -> TrainConfig:
        """The config in ``path`` with ``KEY=VALUE`` overrides (YAML values; ``section.key`` for nested keys)."""
        return config_from_yaml(cls, path, "training", overrides)

    def lr_at(self, step: int) -> float:
        """Learning rate of a step: a pure function of the step, so resuming never changes it."""
        return self.lr * self.lr_gamma ** sum(1 for m in self.lr_milestones if step >= m)

    def to_dict(self) -> dict:
        def plain(value):
            if isinstance(value, tuple):
                return list(value)
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return plain(asdict(self))

    def validate(self) -> None:
        if self.crop < 16:
            raise ValueError(f"crop must be at least 16 pixels, got {self.crop}")
        if 0 < self.val_crop < 16 or self.val_crop < 0:
            raise ValueError(f"val_crop must be 0 (= crop) or at least 16 pixels, got {self.val_crop}")
        for name in ("batch_size", "steps", "block_size", "checkpoint_every", "val_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.temperature < MIN_TEMPERATURE:
            raise ValueError(f"temperature must be >= {MIN_TEMPERATURE} (float32 softmax), got {self.temperature}")
        for name in ("anchors", "val_count", "val_pairs", "val_pose_pairs", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.room_pairs <= 1.0:
            raise ValueError(f"room_pairs is a share of the pairs, in [0, 1], got {self.room_pairs}")
        if self.keypoint_mask not in KEYPOINT_MASKS:
            raise ValueError(f"keypoint_mask must be one of {KEYPOINT_MASKS}, got {self.keypoint_mask!r}")
        if not 0.0 <= self.context_scale < 1.0 or self.context_weight <= 0:
            raise ValueError(
                f"context_scale must be in [0, 1) (0: off) and context_weight positive, got {self.context_scale}, "
                f"{self.context_weight}"
            )
        if self.homography.plane_distance <= 0:
            raise ValueError(f"homography.plane_distance must be positive, got {self.homography.plane_distance}")


def config_from_dict(cls, data: dict, what: str):
    """A training config dataclass from plain data: unknown keys (top level or in the homography /
    photometric sections) are errors, YAML lists become tuples, and the result is validated."""
    data = dict(data)
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} config keys: {sorted(unknown)}")
    for key, sub in (("homography", HomographyConfig), ("photometric", PhotometricConfig)):
        if key in data:
            bad = set(data[key] or {}) - {f.name for f in fields(sub)}
            if bad:
                raise ValueError(f"unknown {key} config keys: {sorted(bad)}")
            data[key] = sub(**{k: tuple(v) if isinstance(v, list) else v for k, v in (data[key] or {}).items()})
    config = cls(**data)
    config.validate()
    return config


def _merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` applied: sections (dicts) merge key by key, any other value replaces."""
    merged = dict(base)
    for key, value in changes.items():
        both_sections = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both_sections else value
    return merged


def read_config_file(path: str | Path, what: str, _seen: tuple[Path, ...] = ()) -> dict:
    """A config file's plain data with its ``base:`` chain resolved (glue-factory style): ``base: other.yaml``
    (relative to the file) loads that config first and the file states only what it changes, so a recipe and
    its variants declare each setting once."""
    path = Path(path).resolve()
    if not path.exists():
        raise FileNotFoundError(f"{what} config {path} does not exist")
    if path in _seen:
        raise ValueError(f"{what} config {path} is its own base: {' -> '.join(str(p) for p in _seen + (path,))}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{what} config {path} is not a mapping of settings")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ValueError(f"base in {path} must be one file name, got {base!r}")
    return _merged(read_config_file(path.parent / base, what, _seen + (path,)), data)


def config_from_yaml(cls, path: str | Path, what: str, overrides: list[str] = ()):
    data = read_config_file(path, what)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not KEY=VALUE")
        *sections, name = key.split(".")
        target = data
        for section in sections:
            target = target.setdefault(section, {})
        target[name] = yaml.safe_load(value)
    return config_from_dict(cls, data, what)
