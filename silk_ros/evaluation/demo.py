"""What ``silk-vo demo`` runs: the odometry on a real sequence when the shared data is there, else on one the
package renders itself.

The 7-Scenes RGB-D excerpt from the shared data folder is real Kinect data with metric ground truth and runs well
under two minutes on a laptop CPU; without it, the synthetic room sequence stands in.
"""

from __future__ import annotations

from pathlib import Path

from silk_ros.evaluation.run_dataset import DEFAULT_CONFIG, load_config
from silk_ros.odometry import OdometryConfig

__all__ = ["choose_sequence", "demo_config", "DEMO_FRAMES"]

SEVEN_SCENES = Path("sequences") / "7scenes_redkitchen"
DEMO_FRAMES = 120


def choose_sequence(data: Path) -> tuple[str, Path | None, str]:
    """(format, path, mode): the real 7-Scenes RGB-D excerpt when present, else the synthetic room."""
    seven = data / SEVEN_SCENES
    if (seven / "seq-01").is_dir():
        return "7scenes", seven, "rgbd"
    return "synthetic", None, "rgbd"


def demo_config(features: str | None) -> tuple[OdometryConfig, str | None]:
    """The default settings (``features`` if given), and why they fell back to ORB when SiLK's weights are
    missing from this checkout (None when they did not): the demo then shows the ORB pipeline."""
    config = load_config(DEFAULT_CONFIG, features=features)
    if config.extractor.features != "silk":
        return config, None
    from silk_ros.weights import WeightsError, shipped_weights

    try:
        if not Path(config.extractor.weights).is_file():
            shipped_weights(config.extractor.weights)
    except WeightsError as exc:
        return config.replace(features="orb"), f"SiLK weights unavailable ({exc}); running the ORB baseline instead"
    return config, None
