"""ROS camera_calibration YAML (what camera_calibration and camera_info_manager write) <-> Camera.

For bags recorded without CameraInfo: `silk-vo bag eval --camera-yaml FILE`. Read through the node's own
CameraInfo interpretation (image_codec.camera_info_to_dict), so a YAML and a CameraInfo with the same numbers
give the same Camera.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml

from silk_ros.bagio.errors import BagError
from silk_ros.bagio.image_codec import InputError, camera_info_to_dict
from silk_ros.geometry.camera import Camera, CameraError, calibration_yaml_to_info


def read_camera_yaml(path: str | Path) -> Camera:
    """ROS camera_calibration YAML (image_width, camera_matrix, distortion_model, ...) -> Camera."""
    path = Path(path)
    if not path.is_file():
        raise BagError(f"camera YAML not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise BagError(f"camera YAML {path} is not valid YAML: {err}") from None
    try:
        info = SimpleNamespace(**calibration_yaml_to_info(data, f"camera YAML {path}"))
    except CameraError as err:
        raise BagError(str(err)) from None
    try:
        return Camera.from_camera_info(camera_info_to_dict(info))
    except (InputError, CameraError, TypeError) as err:
        raise BagError(f"camera YAML {path}: {err}") from None


def write_camera_yaml(camera: Camera, path: str | Path, name: str = "camera") -> Path:
    """Camera -> ROS camera_calibration YAML (no rectification: R = I, P = [K | 0])."""
    info = camera.to_camera_info()

    def matrix(rows: int, cols: int, values) -> dict:
        return {"rows": rows, "cols": cols, "data": [float(v) for v in np.asarray(values).ravel()]}

    data = {
        "image_width": info["width"],
        "image_height": info["height"],
        "camera_name": name,
        "camera_matrix": matrix(3, 3, info["k"]),
        "distortion_model": info["distortion_model"],
        "distortion_coefficients": matrix(1, len(info["d"]), info["d"]),
        "rectification_matrix": matrix(3, 3, info["r"]),
        "projection_matrix": matrix(3, 4, info["p"]),
    }
    path = Path(path)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
