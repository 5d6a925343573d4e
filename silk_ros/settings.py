"""The settings table: every setting of the odometry and of the ROS node, each declared once, without ROS.

A row is a typed config field declared with ``silk_ros.schema.setting`` (name, default and so its type,
description, range or choices, read-only): :class:`OdometryConfig` with its ``extractor`` and ``matching``
sections, and :class:`NodeConfig`, the node's ROS wiring.  A setting has one name everywhere (the field's), so
nothing is renamed between a file, a command line, a ROS parameter and the typed config.  From this table

* the node declares every setting as a ROS parameter with a descriptor (``silk_ros.ros.parameters``);
* node params files, odometry YAMLs and ``--set`` overrides are read (:func:`load`, :func:`parse_overrides`);
* ``config/odometry.yaml`` and ``config/silk_vo.yaml`` are checked (``test/test_settings.py``).

ROS parameters cannot hold a mapping: a mapping setting (``matcher_options``) is a YAML string there
(:func:`ros_value`, :func:`from_ros_values`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from silk_ros.datasets.paths import REPO_ROOT
from silk_ros.geometry.pose import pose_from_xyz_quaternion
from silk_ros.odometry.config import OdometryConfig
from silk_ros.schema import ConfigError, coerce_numbers, section_fields, setting, setting_fields

__all__ = [
    "NodeConfig",
    "Setting",
    "Settings",
    "SETTINGS",
    "DEFAULT_NODE_PARAMS",
    "DEFAULT_ODOMETRY_YAML",
    "check_value",
    "from_ros_values",
    "from_values",
    "load",
    "node_parameters",
    "params_file_sections",
    "parse_overrides",
    "section_matches",
    "ros_value",
    "to_ros_values",
    "unknown_setting",
]

#: the node's parameters file (launch file, ``bag eval``); the odometry's defaults for the dataset tools
DEFAULT_NODE_PARAMS = REPO_ROOT / "config" / "silk_vo.yaml"
DEFAULT_ODOMETRY_YAML = REPO_ROOT / "config" / "odometry.yaml"


@dataclass(frozen=True)
class NodeConfig:
    """The node's ROS wiring (topics, frames, QoS, buffering): settings of the node, not of the odometry.

    Frame names, the extrinsics, TF publishing, the path length and the debug overlay can change while the node
    runs; everything else is built once at start-up."""

    image_transport: str = setting(
        "raw", "subscribe 'image' (raw) or 'image/compressed'", choices=("raw", "compressed")
    )
    odom_frame: str = setting("odom", "parent frame of ~/odometry and /tf (REP-105)", read_only=False)
    base_frame: str = setting("base_link", "child frame of ~/odometry and /tf (REP-105)", read_only=False)
    camera_frame: str = setting("", "camera optical frame; empty: the image header's frame_id", read_only=False)
    base_from_camera: list = setting(
        [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5],
        "base <- camera optical extrinsics [x y z qx qy qz qw] used when TF has none; the default is the pure "
        "optical->body rotation (z forward -> x forward, x right -> -y, y down -> -z)",
        read_only=False,
    )
    use_tf_extrinsics: bool = setting(True, "look base <- camera up in TF when tf2_ros is available")
    publish_tf: bool = setting(True, "broadcast odom_frame -> base_frame on /tf", read_only=False)
    qos_reliability: str = setting(
        "best_effort", "input QoS reliability", choices=("best_effort", "reliable")
    )
    qos_depth: int = setting(5, "input QoS history depth", range=(1, 1000))
    path_length: int = setting(1000, "poses kept in ~/path", range=(1, 1_000_000), read_only=False)
    process_every_frame: bool = setting(
        False,
        "bag replay: process every frame in order (bounded blocking queue) instead of dropping stale frames",
    )
    queue_size: int = setting(10, "capacity of the process_every_frame queue", range=(1, 1000))
    depth_sync_tolerance: float = setting(
        0.02, "RGB-D: largest colour/depth stamp difference (s)", range=(0.0, 1.0)
    )
    depth_pair_timeout: float = setting(
        5.0,
        "RGB-D: warn (and report in /diagnostics) when images arrive but none has paired with a depth frame for "
        "this long (s); repeated every such period while it lasts",
        range=(0.1, 3600.0),
    )
    input_timeout: float = setting(
        5.0,
        "warn (and report in /diagnostics) when no image has arrived for this long (s) since start-up or the last "
        "image, or images have waited this long for camera_info, saying why where the graph shows it (nothing "
        "publishes the topic, a QoS mismatch); 0: never",
        range=(0.0, 3600.0),
    )
    diagnostics_period: float = setting(1.0, "seconds between /diagnostics messages", range=(0.05, 60.0))
    max_debug_tracks: int = setting(
        300, "matches drawn in ~/debug_image", range=(0, 100000), read_only=False
    )

    def __post_init__(self) -> None:
        coerce_numbers(self)
        if len(self.base_from_camera) != 7:
            raise ConfigError(f"base_from_camera needs 7 numbers [x y z qx qy qz qw], got {self.base_from_camera}")
        for name in ("odom_frame", "base_frame"):
            frame = getattr(self, name)
            if not frame.strip():
                raise ConfigError(f"{name} must name a frame (REP-105: e.g. 'odom', 'base_link'), got {frame!r}")
        for name in ("odom_frame", "base_frame", "camera_frame"):
            frame = getattr(self, name)
            if frame != frame.strip() or frame.startswith("/"):
                raise ConfigError(f"{name} {frame!r}: tf2 frame names have no leading '/' and no spaces")
        if self.odom_frame == self.base_frame:
            raise ConfigError(f"odom_frame and base_frame must differ, both are {self.odom_frame!r}")

    def base_from_camera_matrix(self) -> np.ndarray:
        """``T_base_cam`` of the ``base_from_camera`` parameter."""
        return pose_from_xyz_quaternion(self.base_from_camera)


@dataclass(frozen=True)
class Setting:
    """One row of the table."""

    name: str
    section: str  # "extractor", "matching", "odometry" (OdometryConfig's own) or "node"
    default: Any
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = True

    @property
    def ros_default(self) -> Any:
        """The default as the node declares it (a mapping as a YAML string)."""
        return ros_value(self.default)


def _rows(config_type: type, section: str, defaults: Any) -> list[Setting]:
    return [
        Setting(f.name, section, getattr(defaults, f.name), **f.metadata["silk_ros.setting"])
        for f in setting_fields(config_type)
    ]


def _table() -> tuple[Setting, ...]:
    odometry = OdometryConfig()
    rows = []
    for section in section_fields(OdometryConfig):
        nested = getattr(odometry, section.name)
        rows += _rows(type(nested), section.name, nested)
    rows += _rows(OdometryConfig, "odometry", odometry)
    rows += _rows(NodeConfig, "node", NodeConfig())
    return tuple(rows)


#: every setting, the odometry's first (in the order of the configs' fields)
SETTINGS: tuple[Setting, ...] = _table()
_BY_NAME = {row.name: row for row in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The odometry's settings and the node's wiring."""

    odometry: OdometryConfig = field(default_factory=OdometryConfig)
    node: NodeConfig = field(default_factory=NodeConfig)


def from_values(values: Mapping[str, Any]) -> Settings:
    """Settings by name (any mix of odometry and node settings; the rest keep their defaults)."""
    unknown = sorted(set(values) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown settings {unknown}; known: {sorted(_BY_NAME)}")
    for name, value in values.items():
        problem = check_value(_BY_NAME[name], value)
        if problem:
            raise ConfigError(problem)
    node = {name: value for name, value in values.items() if _BY_NAME[name].section == "node"}
    odometry = {name: value for name, value in values.items() if name not in node}
    try:
        return Settings(OdometryConfig.from_dict(odometry), NodeConfig(**node))
    except TypeError as error:
        raise ConfigError(str(error)) from None


def to_values(settings: Settings) -> dict[str, Any]:
    """Every setting by name."""
    return {**settings.odometry.to_dict(), **dataclasses.asdict(settings.node)}


def ros_value(value: Any) -> Any:
    """A setting's value as a ROS parameter holds it: a mapping becomes a YAML flow string."""
    return yaml.safe_dump(value, default_flow_style=True).strip() if isinstance(value, dict) else value


def from_ros_values(values: Mapping[str, Any]) -> Settings:
    """The node's parameter values (table names; a mapping setting as its YAML string) -> Settings."""
    return from_values({name: _from_ros(name, value) for name, value in values.items()})


def to_ros_values(settings: Settings) -> dict[str, Any]:
    """Every setting as the node's parameter value."""
    return {name: ros_value(value) for name, value in to_values(settings).items()}


def _from_ros(name: str, value: Any) -> Any:
    row = _BY_NAME.get(name)
    if row is None or not isinstance(row.default, dict) or not isinstance(value, str):
        return value
    parsed = yaml.safe_load(value or "{}") or {}
    if not isinstance(parsed, dict):
        raise ConfigError(f"{name} must be a YAML mapping, got {value!r}")
    return parsed


def check_value(row: Setting, value: Any) -> str | None:
    """Why a value of this setting is refused (not one of its choices, or out of its range), or None.

    The table's choices and ranges are what a user may set: the node enforces them at start-up and on every
    parameter change (ROS descriptors alone do not refuse a choice), and so do params files and ``--set``."""
    if row.choices and value not in row.choices:
        return f"{row.name}: {value!r} is not one of {list(row.choices)} ({row.description})"
    numeric = isinstance(row.default, (int, float)) and not isinstance(row.default, bool)
    if row.range is not None and numeric and not isinstance(value, bool):
        low, high = row.range
        try:
            number = float(value)
        except (TypeError, ValueError):
            return f"{row.name}: {value!r} is not a number in [{low:g}, {high:g}] ({row.description})"
        if not (math.isfinite(number) and low <= number <= high):
            return f"{row.name}: {value!r} is out of range, allowed [{low:g}, {high:g}] ({row.description})"
    return None


def unknown_setting(name: str) -> str:
    """A line for a name that is no setting, with the nearest settings' names (a misspelt key)."""
    close = difflib.get_close_matches(name, list(_BY_NAME), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"'{name}' is no setting (config/silk_vo.yaml lists every one): ignored{hint}"


def node_parameters(data: Any) -> dict[str, Any] | None:
    """``{node: {ros__parameters: {...}}}`` (or ``/**``) -> the parameter dict; None when not a ROS params file."""
    if not isinstance(data, dict):
        return None
    for value in data.values():
        if isinstance(value, dict) and isinstance(value.get("ros__parameters"), dict):
            return dict(value["ros__parameters"])
    return None


def params_file_sections(path: str | Path) -> list[str]:
    """The node sections of a ROS params file as fully qualified patterns (``/**``, ``/**/silk_vo_node``,
    ``/ns/silk_vo_node``; nested namespace mappings are joined); [] when the file is unreadable or not a params file
    (rcl itself reports those)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return []
    sections: list[str] = []

    def walk(mapping: Any, prefix: str) -> None:
        if not isinstance(mapping, dict):
            return
        for key, value in mapping.items():
            name = f"{prefix}/{str(key).strip('/')}"
            if isinstance(value, dict) and isinstance(value.get("ros__parameters"), dict):
                sections.append(name)
            else:
                walk(value, name)

    walk(data, "")
    return sections


def section_matches(section: str, node_name: str) -> bool:
    """Whether a params file section applies to the node of this fully qualified name, with rcl's wildcards:
    ``**`` any number of namespace tokens, ``*`` one token (or part of one)."""
    pattern = ""
    for token in section.strip("/").split("/"):
        if token == "**":
            pattern += "(/[^/]+)*"
        else:
            pattern += "/" + "[^/]*".join(re.escape(part) for part in token.split("*"))
    return re.fullmatch(pattern, node_name) is not None


def load(path: str | Path | None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Settings from a node params file (``config/silk_vo.yaml``) or an odometry YAML (``config/odometry.yaml``:
    settings at top level or under ``odometry:``), with ``overrides`` applied; None: the defaults.

    A params file may also hold parameters of ROS itself (``use_sim_time``, ...): only the table's are read, as
    the node does.  An odometry YAML holds odometry settings only; an unknown name there is an error."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"settings file not found: {path}")
        try:
            params = node_parameters(yaml.safe_load(path.read_text()) or {})
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not YAML: {error}") from None
        if params is None:
            values = OdometryConfig.from_yaml(path).to_dict()
        else:
            values = {name: _from_ros(name, value) for name, value in params.items() if name in _BY_NAME}
    return from_values({**values, **(overrides or {})})


def parse_overrides(pairs: Iterable[str], flag: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` strings -> ``{key: YAML value}``; ``flag`` names the option in the error."""
    overrides = {}
    for item in pairs:
        if "=" not in item:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides
