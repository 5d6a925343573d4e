"""One settings table: each setting declared once (name, default, range, description), and everything else, the
node's parameters, the YAML files, --set and the params files, follows from it."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from silk_ros.odometry import ConfigError, OdometryConfig
from silk_ros.settings import (
    DEFAULT_NODE_PARAMS,
    DEFAULT_ODOMETRY_YAML,
    SETTINGS,
    NodeConfig,
    Settings,
    from_ros_values,
    from_values,
    load,
    node_parameters,
    parse_overrides,
    to_ros_values,
)

#: values config/silk_vo.yaml chooses for a robot, unlike the defaults: the node's memory stays bounded, and it
#: reads no depth topic unless asked (``auto`` would not either: the node subscribes to depth only in ``rgbd``).
NODE_FILE_CHOICES = {"max_trajectory_poses": 100000, "mode": "mono"}


def test_every_setting_is_one_row_with_a_description():
    names = [row.name for row in SETTINGS]
    assert len(names) == len(set(names)), "a setting name must mean one thing"
    assert all(row.description for row in SETTINGS)
    odometry = set(OdometryConfig().to_dict())
    assert odometry == {row.name for row in SETTINGS if row.section != "node"}
    assert {f.name for f in dataclasses.fields(NodeConfig)} == {row.name for row in SETTINGS if row.section == "node"}
    assert {row.section for row in SETTINGS} == {"extractor", "matching", "odometry", "node"}


def test_the_keypoint_budget_has_one_name_and_one_default():
    budget = [row for row in SETTINGS if "keypoint" in row.description and "kept" in row.description]
    assert [(row.name, row.section, row.default) for row in budget] == [("top_k", "extractor", 1000)]
    assert OdometryConfig().extractor.top_k == 1000


def test_odometry_yaml_holds_every_odometry_setting_at_its_default():
    data = yaml.safe_load(DEFAULT_ODOMETRY_YAML.read_text())["odometry"]
    assert set(data) == set(OdometryConfig().to_dict())
    assert OdometryConfig.from_yaml(DEFAULT_ODOMETRY_YAML) == OdometryConfig()


def test_node_params_file_holds_every_setting_at_its_default_but_the_robots_choices():
    params = node_parameters(yaml.safe_load(DEFAULT_NODE_PARAMS.read_text()))
    assert set(params) == {row.name for row in SETTINGS}
    changed = {name: value for name, value in params.items() if value != to_ros_values(Settings())[name]}
    assert changed == NODE_FILE_CHOICES


def test_the_node_declares_every_odometry_setting_and_reads_them_back():
    """The declared defaults (ROS form) map back to the defaults: every odometry setting reaches the node."""
    declared = {row.name: row.ros_default for row in SETTINGS}
    assert set(OdometryConfig().to_dict()) <= set(declared)
    assert from_ros_values(declared) == Settings()
    changed = to_ros_values(from_values({"min_pixel_sigma": 0.5, "matcher_options": {"ratio": 0.8}}))
    assert changed["matcher_options"] == "{ratio: 0.8}"
    back = from_ros_values(changed).odometry
    assert back.min_pixel_sigma == 0.5 and back.matching.tracking_spec == {"name": "mnn", "ratio": 0.8}


def test_settings_files_and_overrides_use_the_same_names(tmp_path):
    settings = load(DEFAULT_NODE_PARAMS, {"top_k": 500, "degraded_inflation": 4, "qos_reliability": "reliable"})
    assert settings.odometry.extractor.top_k == 500 and settings.odometry.degraded_inflation == 4.0
    assert settings.node.qos_reliability == "reliable" and settings.odometry.mode == "mono"
    assert load(DEFAULT_ODOMETRY_YAML).odometry == OdometryConfig()
    assert load(None, {"features": "orb"}).odometry.extractor.features == "orb"
    with pytest.raises(ConfigError, match="max_keypoints"):
        load(None, {"max_keypoints": 500})
    odometry_yaml = tmp_path / "odometry.yaml"
    odometry_yaml.write_text("odometry:\n  qos_depth: 3\n")  # a node setting is not an odometry setting
    with pytest.raises(ConfigError, match="qos_depth"):
        load(odometry_yaml)
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    use_sim_time: true\n    matcher_options: '{ratio: 0.7}'\n")
    assert load(params).odometry.matching.matcher_options == {"ratio": 0.7}  # ROS's own parameters are not ours


def test_overrides_are_key_value_pairs_with_yaml_values():
    assert parse_overrides(["top_k=800", "matcher_options={ratio: 0.8}", "mode=rgbd"]) == {
        "top_k": 800,
        "matcher_options": {"ratio": 0.8},
        "mode": "rgbd",
    }
    with pytest.raises(ConfigError, match="--option expects KEY=VALUE"):
        parse_overrides(["top_k"], "--option")


def test_the_extrinsics_default_is_the_optical_to_body_rotation():
    import numpy as np

    expected = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    np.testing.assert_allclose(NodeConfig().base_from_camera_matrix()[:3, :3], expected, atol=1e-12)
    with pytest.raises(ConfigError, match="7 numbers"):
        NodeConfig(base_from_camera=[0.0, 0.0, 0.0])


def test_realtime_replay_passes_every_override_to_the_node(tmp_path):
    """--set of a setting the node declares (all of them) reaches the node's params file, like the deterministic
    replay applies it: none is dropped on the way."""
    bag_player = pytest.importorskip("silk_ros.ros.bag_player")
    overrides = {"min_pixel_sigma": 0.5, "static_translation_sigma": 0.1, "max_lost_frames": 5, "top_k": 600}
    path, settings = bag_player.node_params_file(None, overrides, has_depth=False, compressed=False, out=tmp_path)
    written = node_parameters(yaml.safe_load(path.read_text()))
    assert {name: written[name] for name in overrides} == overrides
    assert written["mode"] == "mono" and written["use_sim_time"] is True
    assert from_ros_values({k: v for k, v in written.items() if k != "use_sim_time"}) == settings


def test_every_default_is_allowed_by_its_own_range_and_choices():
    from silk_ros.settings import check_value

    assert [row.name for row in SETTINGS if check_value(row, row.default)] == []


def test_values_outside_the_table_are_refused_with_the_name_and_what_is_allowed():
    """Issue 15 item 5: the table's ranges and choices are enforced (params files, --set, the node), not only
    declared as descriptors."""
    with pytest.raises(ConfigError, match=r"top_k: 5 is out of range, allowed \[10, 10000\]"):
        from_values({"top_k": 5})
    with pytest.raises(ConfigError, match=r"qos_reliability: 'fast' is not one of \['best_effort', 'reliable'\]"):
        from_values({"qos_reliability": "fast"})
    with pytest.raises(ConfigError, match=r"ransac_threshold_px: 'abc' is not a number in \[0.1, 20\]"):
        from_values({"ransac_threshold_px": "abc"})
    with pytest.raises(ConfigError, match="out of range"):
        from_values({"depth_max": float("nan")})
    assert from_values({"top_k": 10, "depth_max": 1000}).odometry.depth_max == 1000.0  # the bounds are allowed


def test_cross_field_checks_name_both_settings():
    with pytest.raises(ConfigError, match=r"depth_min \(30.0 m\) must be below depth_max \(20.0 m\)"):
        from_values({"depth_min": 30.0})
    with pytest.raises(ConfigError, match="odom_frame must name a frame"):
        from_values({"odom_frame": ""})
    with pytest.raises(ConfigError, match="base_frame must name a frame"):
        from_values({"base_frame": "  "})
    with pytest.raises(ConfigError, match="odom_frame and base_frame must differ"):
        from_values({"base_frame": "odom"})
    with pytest.raises(ConfigError, match="leading '/'"):
        from_values({"camera_frame": "/camera"})
    assert from_values({"camera_frame": ""}).node.camera_frame == ""  # empty: the image header's frame_id


def test_an_unknown_name_is_reported_with_the_nearest_settings():
    from silk_ros.settings import unknown_setting

    assert "did you mean 'top_k'" in unknown_setting("top_kk")
    assert "did you mean 'qos_reliability'" in unknown_setting("qos_relaibility")
    assert "ignored" in unknown_setting("completely_unrelated") and "did you mean" not in unknown_setting("zzzz")


def test_params_file_sections_match_node_names_as_rcl_does(tmp_path):
    from silk_ros.settings import params_file_sections, section_matches

    assert params_file_sections(DEFAULT_NODE_PARAMS) == ["/**/silk_vo_node"]
    nested = tmp_path / "nested.yaml"
    nested.write_text("robot:\n  camera:\n    silk_vo_node:\n      ros__parameters: {top_k: 500}\n")
    assert params_file_sections(nested) == ["/robot/camera/silk_vo_node"]
    assert params_file_sections(tmp_path / "missing.yaml") == []
    for section, name, matches in [
        ("/**", "/a/b/silk_vo_node", True),
        ("/**/silk_vo_node", "/silk_vo_node", True),
        ("/**/silk_vo_node", "/camera/silk_vo_node", True),
        ("silk_vo_node", "/silk_vo_node", True),
        ("/camera/silk_vo_node", "/silk_vo_node", False),
        ("/*/silk_vo_node", "/camera/silk_vo_node", True),
        ("/silk_vo", "/silk_vo_node", False),
        ("/silk_*", "/silk_vo_node", True),
    ]:
        assert section_matches(section, name) is matches, (section, name)
