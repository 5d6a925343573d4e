"""The launch file, the RViz config and config/silk_vo.yaml name things that exist.

launch_ros is not importable here, so the launch file is read with ``ast``: its executables must be
console scripts of setup.py (or rviz2), its remappings must be topics the node subscribes, every
LaunchConfiguration must be declared, and the files it installs must exist.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy")

from silk_ros.datasets.paths import REPO_ROOT  # noqa: E402
from silk_ros.ros import conversions as conv  # noqa: E402
from silk_ros.ros.conversions import KEYPOINT_FIELDS, KEYPOINT_RAY_FIELDS  # noqa: E402
from silk_ros.ros.parameters import NODE_PARAMETERS  # noqa: E402
from silk_ros.ros.topics import INPUTS, NODE_NAME, OUTPUTS  # noqa: E402

LAUNCH = REPO_ROOT / "launch" / "silk_vo.launch.py"
RVIZ = REPO_ROOT / "rviz" / "silk_vo.rviz"
PARAMS = REPO_ROOT / "config" / "silk_vo.yaml"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == name
    ]


def _keyword(call: ast.Call, name: str):
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _console_scripts() -> set[str]:
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    scripts = set()
    for const in ast.walk(tree):
        if isinstance(const, ast.Constant) and isinstance(const.value, str) and " = " in const.value:
            scripts.add(const.value.split(" = ")[0].strip())
    return scripts


@pytest.fixture(scope="module")
def launch_tree() -> ast.AST:
    return ast.parse(LAUNCH.read_text())


def test_launch_declares_the_documented_arguments(launch_tree):
    declared = {ast.literal_eval(call.args[0]) for call in _calls(launch_tree, "DeclareLaunchArgument")}
    assert {
        "camera_namespace",
        "image_topic",
        "camera_info_topic",
        "depth_topic",
        "params_file",
        "use_sim_time",
        "rviz",
    } <= declared
    used = {ast.literal_eval(call.args[0]) for call in _calls(launch_tree, "LaunchConfiguration")}
    assert {"base_frame", "camera_frame", "publish_camera_tf"} <= used
    assert used <= declared, f"LaunchConfiguration without DeclareLaunchArgument: {used - declared}"
    assert "generate_launch_description" in {f.name for f in ast.walk(launch_tree) if isinstance(f, ast.FunctionDef)}


def test_launch_starts_existing_executables_with_real_topics(launch_tree):
    nodes = _calls(launch_tree, "Node")
    executables = {ast.literal_eval(_keyword(n, "executable")): n for n in nodes}
    assert set(executables) == {"silk_vo_node", "rviz2", "static_transform_publisher"}
    packages = {ast.literal_eval(_keyword(n, "package")) for n in nodes}
    assert packages == {"silk_ros", "rviz2", "tf2_ros"}
    vo = executables["silk_vo_node"]
    assert ast.literal_eval(_keyword(vo, "package")) == "silk_ros"
    assert ast.literal_eval(_keyword(vo, "name")) == NODE_NAME
    assert "silk_vo_node" in _console_scripts()
    remapped = {ast.literal_eval(pair.elts[0]) for pair in _keyword(vo, "remappings").elts}
    assert remapped == set(INPUTS), "remappings must cover exactly the node's subscribed topics"
    source = LAUNCH.read_text()
    assert '"config", "silk_vo.yaml"' in source and PARAMS.is_file()
    assert '"rviz", "silk_vo.rviz"' in source and RVIZ.is_file()
    # setup.py installs both folders into the package share directory the launch file reads from.
    setup = (REPO_ROOT / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in setup and 'glob("config/*.yaml")' in setup and 'glob("rviz/*.rviz")' in setup


def test_params_file_matches_declared_parameters():
    data = yaml.safe_load(PARAMS.read_text())
    # The launch file namespaces the node (camera_namespace): only a wildcard-namespace key reaches it.
    params = data[f"/**/{NODE_NAME}"]["ros__parameters"]
    specs = {spec.name: spec for spec in NODE_PARAMETERS}
    assert set(params) == set(specs), (
        f"only in yaml: {set(params) - set(specs)}, undocumented: {set(specs) - set(params)}"
    )
    for name, value in params.items():
        default = specs[name].ros_default
        # ROS parameter types are strict: an int written for a double parameter would be refused at start-up.
        assert type(value) is type(default), f"{name}: yaml {value!r} vs declared {default!r}"
        if specs[name].choices:
            assert value in specs[name].choices
        if specs[name].range and not isinstance(value, bool):
            lo, hi = specs[name].range
            assert lo <= value <= hi, name


def test_rviz_config_shows_the_node_outputs():
    config = yaml.safe_load(RVIZ.read_text())
    manager = config["Visualization Manager"]
    displays = {d["Class"].split("/")[-1]: d for d in manager["Displays"]}
    assert {"Image", "Odometry", "Path", "PointCloud2", "TF"} <= set(displays)
    namespace = "camera"  # the launch file's default camera_namespace
    launch_default = [
        c
        for c in _calls(ast.parse(LAUNCH.read_text()), "DeclareLaunchArgument")
        if ast.literal_eval(c.args[0]) == "camera_namespace"
    ][0]
    assert ast.literal_eval(_keyword(launch_default, "default_value")) == namespace
    expected = {"Image": "debug_image", "Odometry": "odometry", "Path": "path", "PointCloud2": "keypoints"}
    for display_class, output in expected.items():
        topic = displays[display_class]["Topic"]["Value"]
        assert topic == f"/{namespace}/{NODE_NAME}/{output}"
        assert output in OUTPUTS
    cloud = displays["PointCloud2"]
    assert cloud["Channel Name"] in KEYPOINT_FIELDS and cloud["Position Transformer"] == "XYZ"
    assert set(KEYPOINT_RAY_FIELDS) == {"x", "y", "z"}  # what the XYZ transformer needs
    odom_frame = yaml.safe_load(PARAMS.read_text())[f"/**/{NODE_NAME}"]["ros__parameters"]["odom_frame"]
    assert manager["Global Options"]["Fixed Frame"] == odom_frame


def test_launch_static_camera_tf_matches_the_node_default_extrinsics(launch_tree):
    tf_node = next(
        n
        for n in _calls(launch_tree, "Node")
        if ast.literal_eval(_keyword(n, "executable")) == "static_transform_publisher"
    )
    flat = []
    for element in _keyword(tf_node, "arguments").elts:  # *("--qx", "-0.5", ...) groups
        flat += [e for e in element.value.elts] if isinstance(element, ast.Starred) else [element]
    values = {
        ast.literal_eval(flat[i]): ast.literal_eval(flat[i + 1])
        for i in range(0, len(flat), 2)
        if isinstance(flat[i + 1], ast.Constant)
    }
    quaternion = [float(values[k]) for k in ("--qx", "--qy", "--qz", "--qw")]
    node_default = [spec.default for spec in NODE_PARAMETERS if spec.name == "base_from_camera"][0]
    assert quaternion == node_default[3:]
    np.testing.assert_allclose(conv.quaternion_to_rotation(quaternion), conv.R_BODY_OPTICAL, atol=1e-12)


def test_package_xml_declares_what_the_launch_file_uses():
    package = (REPO_ROOT / "package.xml").read_text()
    for dependency in ("launch", "launch_ros", "rviz2", "tf2_ros", "cv_bridge", "std_srvs", "diagnostic_msgs"):
        assert f"<exec_depend>{dependency}</exec_depend>" in package
    assert Path(LAUNCH).name.endswith(".launch.py")
