"""SiLK keypoints: the network, its weights and the one ``extract(image) -> Features`` entry point."""

from .extractor import ExtractorConfig, ImageError, SilkExtractor, load_silk_model, to_grey_float
from .model import SILK_CONFIGS, SilkConfig, SilkNet, count_parameters, multiply_accumulates
from .types import Features

__all__ = [
    "ExtractorConfig",
    "Features",
    "ImageError",
    "SILK_CONFIGS",
    "SilkConfig",
    "SilkExtractor",
    "SilkNet",
    "count_parameters",
    "load_silk_model",
    "multiply_accumulates",
    "to_grey_float",
]
