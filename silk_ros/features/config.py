"""The feature extractor's settings: SiLK (learned) or an OpenCV baseline, with one keypoint budget for all."""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import ConfigError, coerce_numbers, setting

__all__ = ["ExtractorConfig", "FEATURE_KINDS", "BACKENDS", "PRECISIONS", "PAPER_SELECTION"]

FEATURE_KINDS = ("silk", "orb", "sift")
BACKENDS = ("auto", "onnxruntime", "torch")
PRECISIONS = ("fp32", "int8")
#: The SiLK paper's keypoint selection (every cell competes, integer positions, the network's own descriptors, matched
#: where detected): the benches' "paper selection" row (the shipped attention matcher takes the default selection's
#: context descriptors).
PAPER_SELECTION = {
    "nms_radius": 0, "subpixel": False, "context_scale": 0.0, "pyramid_levels": 1, "refine_matches": False,
}


@dataclass(frozen=True)
class ExtractorConfig:
    """Settings of ``silk_ros.features.build_extractor``.  The SiLK-only fields are ignored by ORB and SIFT, the
    ORB/SIFT-only fields by SiLK.

    SiLK's keypoint selection (NMS radius 4, sub-pixel on) was chosen on held-out validation pose pairs
    (``training.pose_check`` rooms papered with the trainer's validation photos, 320x240 and 640x480, two
    checkpoints), never on benchmark pairs: without NMS the top-k cells cluster on a few textured blobs (pose AUC@10
    36 / 48 at the two sizes against 52 / 65 with radius 4).  The paper's selection is ``PAPER_SELECTION``; the
    odometry sets its own radius for its working resolution in ``OdometryConfig``."""

    features: str = setting(
        "silk", "feature extractor: silk (learned), orb or sift (OpenCV baselines through the same pipeline)",
        choices=FEATURE_KINDS,
    )
    #: SiLK weights: shipped name, a path, or ``untrained`` (with ``allow_untrained``).
    weights: str = setting("silk-mu", "SiLK weights: shipped name (silk-mu) or a .pt path")
    allow_untrained: bool = setting(False, "accept weights='untrained' (random network): plumbing tests only")
    backend: str = setting(
        "auto", "SiLK inference backend (auto: ONNX Runtime when importable, else torch)", choices=BACKENDS
    )
    #: ``int8``: ONNX Runtime on the CPU runs 8-bit models of the weights (``features.quantize``: about half the
    #: network's time; the models are files beside the weights, made by ``python -m training.quantize``).
    precision: str = setting(
        "fp32", "SiLK network arithmetic: fp32, or int8 (ONNX Runtime on the CPU; 8-bit models beside the weights)",
        choices=PRECISIONS,
    )
    #: ``cuda``: ONNX Runtime uses its CUDA/TensorRT providers.
    device: str = setting("cpu", "inference device (cpu, cuda, cuda:N)")
    threads: int = setting(0, "inference threads (0: library default)", range=(0, 64))
    #: The keypoint budget: SiLK's top-k (0 keeps every cell above ``threshold``), ORB's/SIFT's nfeatures.
    top_k: int = setting(
        1000, "keypoints kept per frame (highest score first; each pyramid level adds its share)", range=(10, 10000)
    )
    nms_radius: int = setting(4, "keypoint non-maximum suppression radius (px; 0: none)", range=(0, 16))
    #: A 1-D quadratic fit of the logits in x and y (offsets clipped to +-0.5 px; descriptors stay those of the
    #: cell).  Off in the SiLK paper; helps relative pose and metric VO.
    subpixel: bool = setting(True, "SiLK sub-pixel keypoint refinement (quadratic fit of the logits)")
    #: SiLK-µ sees a 7x7 patch: too little to tell repeated texture apart.  With a context scale, each keypoint's
    #: descriptor is joined by the descriptor of the same point in the image shrunk by this factor (a 14x14 view at
    #: 0.5), weighted by ``context_weight``, the whole L2-normalised: cosine similarity becomes the weighted sum of
    #: the fine and the coarse one.  Descriptors get twice the network's size.  Chosen on the validation pose pairs
    #: of ``training.pose_check`` (MODEL_CARD.md, "Context descriptors"), never on benchmark pairs.
    context_scale: float = setting(
        0.5, "SiLK: also describe each keypoint in the image shrunk by this factor (0: off)", range=(0.0, 0.9)
    )
    context_weight: float = setting(
        0.7, "SiLK: weight of the context descriptor against the full-resolution one", range=(0.01, 10.0)
    )
    #: SiLK-µ's 7x7 view sees one size of structure: a point that comes closer or recedes (forward motion) changes
    #: what the network sees there.  With more than one level the network also runs on the image shrunk by
    #: ``pyramid_scale``, its square, ...; each level adds its strongest keypoints, ``top_k`` times its share of the
    #: pixels (ORB's allocation), on top of the input size's ``top_k``, in input pixels, each with its own level's
    #: descriptor and context.  ORB's ``nlevels`` / ``scaleFactor``.  Off in the extractor (the benches): validation
    #: pairs did not pick it (MODEL_CARD.md, "Session 25").  Off in the odometry too (BENCHMARKS.md ``vo``,
    #: "Session 25").
    pyramid_levels: int = setting(
        1, "SiLK: keypoints from this many image sizes (1: the input size only)", range=(1, 4)
    )
    pyramid_scale: float = setting(
        0.71, "SiLK: size of each pyramid level relative to the one above it", range=(0.3, 0.9)
    )
    #: SiLK's descriptors are trained to tell a pixel from its neighbours: a match's point in the second image is moved
    #: to where the first point's descriptor correlates best (3x3 cells, a parabola through the peak), which halved the
    #: matched points' median error on validation homographies (0.48 -> 0.26 px) and raised validation pose AUC
    #: (MODEL_CARD.md, "Session 26").  The extractor keeps each keypoint's 5x5 window of descriptors for it
    #: (``Features.windows``); ``Matches.points`` uses them.
    refine_matches: bool = setting(
        True, "SiLK: keep each keypoint's 5x5 descriptor window and refine matched points to sub-pixel with it"
    )
    # --- library options (not settings of the odometry) ---------------------------------------------------
    #: Half precision on CUDA (torch backend).
    fp16: bool = False
    #: SiLK: minimum keypoint probability (0 disables).
    threshold: float = 0.0
    #: SiLK: extra margin (pixels) beyond the network's own border in which no keypoint is kept.
    border_margin: int = 0
    #: SIFT: RootSIFT (True) or plain L2-normalised SIFT (False).
    root_sift: bool = True
    #: ORB: FAST threshold and pyramid levels (OpenCV defaults are 20 and 8).
    orb_fast_threshold: int = 20
    orb_levels: int = 8

    def __post_init__(self) -> None:
        coerce_numbers(self)
        if self.features not in FEATURE_KINDS:
            raise ConfigError(f"features must be one of {FEATURE_KINDS}, got '{self.features}'")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0: every keypoint), got {self.top_k}")
        if not (self.context_scale == 0 or 0.1 <= self.context_scale <= 0.9):
            raise ConfigError(f"context_scale must be 0 (off) or in [0.1, 0.9], got {self.context_scale}")
        if self.context_weight <= 0:
            raise ConfigError(f"context_weight must be positive, got {self.context_weight}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got '{self.precision}'")
        if self.precision == "int8" and (self.backend == "torch" or self.device != "cpu"):
            raise ConfigError(
                f"precision int8 runs on ONNX Runtime on the CPU only, not backend '{self.backend}' on device "
                f"'{self.device}': use precision fp32 there"
            )
        if not 1 <= self.pyramid_levels <= 4:
            raise ConfigError(f"pyramid_levels must be in [1, 4], got {self.pyramid_levels}")
        if not 0.3 <= self.pyramid_scale <= 0.9:
            raise ConfigError(f"pyramid_scale must be in [0.3, 0.9], got {self.pyramid_scale}")
