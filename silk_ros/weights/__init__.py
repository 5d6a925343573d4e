"""Versioned weights files: the shipped models live beside this module.

A weights file is a ``torch.save`` archive of one dict::

    {"format": "silk_ros-weights", "format_version": 1,
     "kind": "silk" | "matcher",          # which network family
     "architecture": {...},                 # the config that rebuilds the network
     "provenance": {...},                   # how the weights were made (data, steps, commit, time)
     "state_dict": {...}}

Every failure names the file and what is wrong with it: missing, truncated or not a weights file,
another kind of network, another architecture, or tensors that do not fit.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "WeightsError",
    "WeightsFile",
    "save_weights",
    "load_weights",
    "shipped_weights",
    "SHIPPED_DIR",
]

FORMAT = "silk_ros-weights"
FORMAT_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parent

#: Short names of the weights the package ships (file names inside ``silk_ros/weights``).
SHIPPED = {
    "silk-mu": "silk_vggnp_mu.pt",
    "silk-4": "silk_vggnp_4.pt",
    "matcher-mu": "matcher_attention_mu.pt",
}


class WeightsError(RuntimeError):
    """A weights file that cannot be used; the message names the file and the reason."""


@dataclass
class WeightsFile:
    path: Path
    kind: str
    architecture: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    provenance: dict[str, Any] = field(default_factory=dict)


def save_weights(
    path: str | os.PathLike,
    kind: str,
    architecture: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves a half-written weights file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "architecture": architecture,
        "provenance": {"saved_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(), **(provenance or {})},
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(record, tmp)
    os.replace(tmp, path)
    return path


def load_weights(path: str | os.PathLike, kind: str | None = None) -> WeightsFile:
    """Read and validate a weights file (``kind`` checks the network family when given)."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights file {path}: does not exist")
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file {path}: is empty (0 bytes)")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged archives
        raise WeightsError(
            f"weights file {path}: cannot be read ({type(exc).__name__}: {exc}); "
            "the file is truncated, corrupt or not a torch archive"
        ) from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise WeightsError(
            f"weights file {path}: not a silk_ros weights file (no '{FORMAT}' header); "
            "raw state_dicts from other projects are not accepted"
        )
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise WeightsError(f"weights file {path}: format version {version}, this silk_ros reads {FORMAT_VERSION}")
    if kind is not None and record.get("kind") != kind:
        raise WeightsError(f"weights file {path}: holds a '{record.get('kind')}' network, expected '{kind}'")
    for key in ("architecture", "state_dict"):
        if not isinstance(record.get(key), dict):
            raise WeightsError(f"weights file {path}: missing '{key}'")
    return WeightsFile(
        path=path,
        kind=record["kind"],
        architecture=record["architecture"],
        state_dict=record["state_dict"],
        provenance=record.get("provenance", {}),
    )


def load_state_into(model: torch.nn.Module, weights: WeightsFile) -> None:
    """Strict load that reports every missing, unexpected or mis-shaped tensor with the file name."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights.state_dict))
    unexpected = sorted(set(weights.state_dict) - set(own))
    shapes = [
        f"{k}: file {tuple(weights.state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in weights.state_dict and weights.state_dict[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        raise WeightsError(
            f"weights file {weights.path}: does not fit the architecture "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatches {shapes[:5]})"
        )
    model.load_state_dict(weights.state_dict, strict=True)


def shipped_weights(name: str) -> Path:
    """Path of a weights file shipped in the package, by short name (see ``SHIPPED``)."""
    if name not in SHIPPED:
        raise WeightsError(f"no shipped weights named '{name}'; known: {sorted(SHIPPED)}")
    path = SHIPPED_DIR / SHIPPED[name]
    if not path.exists():
        raise WeightsError(
            f"weights file {path}: shipped weights '{name}' are not in this install; train them with "
            "`python -m training.silk` (see MODEL_CARD.md) or pass an explicit weights path"
        )
    return path
