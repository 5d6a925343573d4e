"""Settings of the odometry and the node, and how they are written on a command line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from silk_ros.odometry.config import ConfigError

__all__ = ["parse_overrides"]


def parse_overrides(pairs: Iterable[str], flag: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` strings -> ``{key: YAML value}``; ``flag`` names the option in the error."""
    overrides = {}
    for item in pairs:
        if "=" not in item:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides
