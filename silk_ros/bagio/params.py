"""Odometry settings for `silk-vo bag eval` from either file the project uses, without ROS.

* an OdometryConfig YAML (settings at top level or under ``odometry:``), or
* the node's ROS parameters file (``/**/silk_vo_node: ros__parameters: ...``, config/silk_vo.yaml): the deterministic
  replay then runs the very settings the node runs. The mapping mirrors ``silk_ros.ros.parameters.odometry_config``
  (which needs rcl_interfaces); test_bag_eval checks the two agree on config/silk_vo.yaml.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from silk_ros.bagio.errors import BagError
from silk_ros.datasets.paths import REPO_ROOT
from silk_ros.odometry.config import ConfigError, OdometryConfig

#: node parameter name -> OdometryConfig field, where they differ (as in silk_ros/ros/parameters.py).
NODE_TO_CONFIG = {"top_k": "max_keypoints", "allow_untrained_weights": "allow_untrained"}
#: the node's default parameters file (also what --realtime starts the node with unless --params says otherwise).
DEFAULT_NODE_PARAMS = REPO_ROOT / "config" / "silk_vo.yaml"


def node_parameters(data: dict) -> dict[str, Any] | None:
    """``{node: {ros__parameters: {...}}}`` (or ``/**``) -> the parameter dict; None when not a ROS params file."""
    if not isinstance(data, dict):
        return None
    for value in data.values():
        if isinstance(value, dict) and isinstance(value.get("ros__parameters"), dict):
            return dict(value["ros__parameters"])
    return None


def load_odometry_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> OdometryConfig:
    """OdometryConfig from an odometry YAML or a node params file (None: OdometryConfig defaults)."""
    changes = _odometry_overrides(overrides or {})
    try:
        if path is None:
            return OdometryConfig.from_dict(changes)
        path = Path(path)
        if not path.is_file():
            raise BagError(f"odometry settings file not found: {path}")
        params = node_parameters(yaml.safe_load(path.read_text()) or {})
        if params is None:  # an OdometryConfig YAML
            return OdometryConfig.from_yaml(path).replace(**changes)
        return OdometryConfig.from_dict({**_from_node_parameters(params, path), **changes})
    except (ConfigError, TypeError, AttributeError, yaml.YAMLError) as err:
        raise BagError(f"odometry settings{f' in {path}' if path else ''}: {err}") from None


def _odometry_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """--set values for the odometry: node names renamed; the node's ROS wiring (qos, frames, ...) left to the
    node (it matters only to --realtime); anything else goes through, so a typo is still an error."""
    wiring = (
        set(node_parameters(yaml.safe_load(DEFAULT_NODE_PARAMS.read_text())) or {})
        if DEFAULT_NODE_PARAMS.is_file()
        else set()
    )
    known = {f.name for f in fields(OdometryConfig)}
    out = {}
    for key, value in overrides.items():
        name = NODE_TO_CONFIG.get(key, key)
        if name in known or key not in wiring:
            out[name] = value
    return out


def _from_node_parameters(params: dict[str, Any], path: Path) -> dict[str, Any]:
    known = {f.name for f in fields(OdometryConfig)}
    settings = {NODE_TO_CONFIG.get(k, k): v for k, v in params.items() if NODE_TO_CONFIG.get(k, k) in known}
    options = yaml.safe_load(params.get("matcher_options") or "{}") or {}
    if not isinstance(options, dict):
        raise BagError(f"{path}: matcher_options must be a YAML mapping, got {params.get('matcher_options')!r}")
    if options:
        settings["matcher"] = {"name": settings.get("matcher", "mnn"), **options}
    return settings
