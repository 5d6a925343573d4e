"""Matchers: SiLK's (MNN, ratio, double-softmax) and the matchability-reweighted attention matcher."""

from __future__ import annotations

from typing import Any

from .base import Matcher, Matches
from .classic import DoubleSoftmax, MutualNearestNeighbour, RatioTest

__all__ = [
    "Matcher",
    "Matches",
    "MutualNearestNeighbour",
    "RatioTest",
    "DoubleSoftmax",
    "build_matcher",
    "matcher_spec",
]

_CLASSIC = {"mnn": MutualNearestNeighbour, "ratio": RatioTest, "double_softmax": DoubleSoftmax}


def matcher_spec(config: str | dict[str, Any]) -> dict[str, Any]:
    """A matcher config as a fresh dict with its ``name``: ``"mnn"`` -> ``{"name": "mnn"}``."""
    return {"name": config} if isinstance(config, str) else dict(config)


def build_matcher(config: str | dict[str, Any]) -> Matcher:
    """``"mnn"`` or ``{"name": "ratio", "ratio": 0.8}``; ``attention`` builds the learned matcher."""
    params = matcher_spec(config)
    name = params.pop("name")
    if name in _CLASSIC:
        return _CLASSIC[name](**params)
    if name == "attention":
        from .attention import build_attention_matcher  # torch-heavy: imported only when used

        return build_attention_matcher(**params)
    raise ValueError(f"unknown matcher '{name}' (known: {sorted(_CLASSIC) + ['attention']})")
