"""Every dependency key of package.xml resolves the way `rosdep install` resolves it on a robot (issue 15): a ROS
package released in each supported distribution, or a rosdep rule with an Ubuntu entry.  Checked offline against
the public rosdistro files in ../shared/rosdep."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from silk_ros.datasets.paths import REPO_ROOT, shared_data_root

DISTRIBUTIONS = ("humble", "jazzy", "kilted")
DEPEND_TAGS = ("depend", "build_depend", "exec_depend", "test_depend", "buildtool_depend", "build_export_depend")


@pytest.fixture(scope="module")
def rosdep_dir() -> Path:
    folder = shared_data_root().parent / "rosdep"
    if not (folder / "base.yaml").exists():
        pytest.skip(f"rosdep rules not found at {folder}")
    return folder


def package_keys() -> dict[str, str]:
    root = ET.parse(REPO_ROOT / "package.xml").getroot()
    return {element.text.strip(): element.tag for tag in DEPEND_TAGS for element in root.iter(tag)}


def _load(path: Path):
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@lru_cache
def released_packages(path: Path) -> set[str]:
    released = set()
    for name, repository in (_load(path)["repositories"] or {}).items():
        release = repository.get("release") or {}
        if "version" not in release:
            continue  # listed but not released
        released.update(release.get("packages") or [name])
    return released


@lru_cache
def rule_keys(rosdep_dir: Path) -> set[str]:
    keys = set()
    for name in ("base.yaml", "python.yaml"):
        for key, rule in _load(rosdep_dir / name).items():
            if isinstance(rule, dict) and "ubuntu" in rule:
                keys.add(key)
    return keys


def test_package_xml_declares_its_dependencies():
    keys = package_keys()
    assert {"rclpy", "sensor_msgs", "nav_msgs", "tf2_ros", "python3-numpy", "python3-opencv"} <= set(keys)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_every_package_xml_key_resolves(rosdep_dir, distribution):
    released = released_packages(rosdep_dir / f"{distribution}-distribution.yaml")
    rules = rule_keys(rosdep_dir)
    unresolved = sorted(key for key in package_keys() if key not in released and key not in rules)
    assert not unresolved, f"package.xml keys rosdep cannot resolve on {distribution}: {unresolved}"


def test_the_checker_rejects_keys_that_do_not_exist(rosdep_dir):
    released = released_packages(rosdep_dir / "kilted-distribution.yaml")
    rules = rule_keys(rosdep_dir)
    for fake in ("python3-onnx-runtime-gpu-nonexistent", "silk_ros_nonexistent_msgs"):
        assert fake not in released and fake not in rules
    assert "rclpy" in released and "python3-numpy" in rules
