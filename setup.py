"""ament_python package set-up: works with colcon inside a ROS 2 workspace and with plain pip."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "silk_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    # training/ is run from the repository root (python -m training.silk ...); it is not installed, so it never
    # lands in site-packages as a top-level package named "training".
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={f"{PACKAGE}.weights": ["*.pt", "*.onnx"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
    ],
    install_requires=["setuptools", "numpy", "pyyaml"],
    zip_safe=False,
    maintainer="silk_ros maintainers",
    maintainer_email="maintainers@silk-ros.invalid",
    description="Visual odometry with SiLK learned keypoints for ROS 2",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "silk-vo = silk_ros.cli:main",
            "silk_vo_node = silk_ros.ros.node:main",
        ],
    },
)
