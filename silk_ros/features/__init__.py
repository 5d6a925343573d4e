"""SiLK keypoints: the network, its weights and the one ``extract(image) -> Features`` entry point."""

from .config import BACKENDS, FEATURE_KINDS, PAPER_SELECTION, ExtractorConfig
from .extractor import ImageError, SilkExtractor, load_silk_model, to_grey_float
from .model import SILK_CONFIGS, SilkConfig, SilkNet, count_parameters, multiply_accumulates
from .types import Features

__all__ = [
    "BACKENDS",
    "ExtractorConfig",
    "FEATURE_KINDS",
    "Features",
    "ImageError",
    "PAPER_SELECTION",
    "SILK_CONFIGS",
    "SilkConfig",
    "SilkExtractor",
    "SilkNet",
    "build_extractor",
    "count_parameters",
    "load_silk_model",
    "multiply_accumulates",
    "to_grey_float",
]


def build_extractor(config: ExtractorConfig):
    """SiLK (ONNX Runtime / torch) or an OpenCV baseline, as ``config.features`` says, with its keypoint budget."""
    if config.features == "silk":
        return SilkExtractor(config)
    from .classic import ClassicExtractor

    return ClassicExtractor(config)
