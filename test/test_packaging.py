"""What ``pip install`` puts into site-packages: silk_ros only (training/ runs from the repository root)."""

from __future__ import annotations

import runpy
from pathlib import Path
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_only_silk_ros_is_installed(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # find_packages looks from the working directory, like pip does
    captured: dict = {}
    with mock.patch("setuptools.setup", lambda **options: captured.update(options)):
        runpy.run_path(str(REPO_ROOT / "setup.py"))
    packages = captured["packages"]
    assert {"silk_ros", "silk_ros.ros", "silk_ros.cli", "silk_ros.odometry"} <= set(packages)
    assert [p for p in packages if p.split(".")[0] != "silk_ros"] == [], "a top-level package besides silk_ros"
    assert set(captured["package_data"]) == {"silk_ros.weights"}
    assert {"*.pt", "*.onnx"} <= set(captured["package_data"]["silk_ros.weights"])  # weights and their 8-bit models
