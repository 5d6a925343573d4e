"""Training configuration: one dataclass, read from YAML, stored in every checkpoint and weights file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

__all__ = ["TrainConfig", "HomographyConfig", "PhotometricConfig"]


@dataclass
class HomographyConfig:
    """SiLK's homography sampler (ranges of uniform distributions; no translation)."""

    scale: tuple[float, float] = (0.6, 0.9)
    out_of_plane: float = 0.78  # radians, |tilt| about x and y
    in_plane: float = 0.39  # radians
    #: Distance of the virtual plane in crop half-widths; sets how strong a tilt's perspective is.
    plane_distance: float = 2.0


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
    #: Paths above are relative to this folder; "" means silk_ros.datasets.paths.shared_data_root().
    data_root: str = ""
    crop: int = 152  # square crop side in pixels (grid = crop - 2 * border)
    batch_size: int = 2  # image pairs per step (per process)
    steps: int = 100_000
    lr: float = 1e-4
    #: Step decay: the learning rate is multiplied by ``lr_gamma`` at each of these steps.
    lr_milestones: list[int] = field(default_factory=list)
    lr_gamma: float = 0.1
    temperature: float = 0.1
    #: Rows/columns of the similarity matrix computed at once (peak memory ~ block x N).
    block_size: int = 1024
    #: 0 = all positions are InfoNCE anchors (full recipe); k > 0 = k random anchors per pair (CPU recipe).
    anchors: int = 0
    keypoint_weight: float = 1.0
    descriptor_weight: float = 1.0
    seed: int = 0
    checkpoint_every: int = 500
    val_every: int = 500
    val_pairs: int = 32
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
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        return config_from_yaml(cls, path, "training")

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
        for name in ("batch_size", "steps", "block_size", "checkpoint_every", "val_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.temperature <= 0 or self.lr <= 0:
            raise ValueError("temperature and lr must be positive")
        if self.anchors < 0:
            raise ValueError(f"anchors must be >= 0, got {self.anchors}")


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


def config_from_yaml(cls, path: str | Path, what: str):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} config {path} does not exist")
    return config_from_dict(cls, yaml.safe_load(path.read_text()) or {}, what)
