"""odom -> base_link on /tf on the pip path (issue 15 item 2).

tf2_msgs is not on PyPI; ``make setup`` builds tf2_msgs/msg/TFMessage into the venv (``ros_vendor/``).  Checked
here: the message is the very type a ROS install has (RIHS01 type hash, against rosbags' ROS 2 type store), the
node publishes every odometry pose on /tf over DDS, and without the message type the node says /tf is not
published (start-up and /diagnostics) instead of staying silent.
"""

from __future__ import annotations

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter  # noqa: E402

from silk_ros.ros import conversions as conv  # noqa: E402

STAMP0 = 1_700_000_000.0


def tf_message_type():
    """tf2_msgs' TFMessage; a failure where make setup could have built it, a skip where it could not."""
    try:
        from tf2_msgs.msg import TFMessage
    except ImportError:
        missing = [tool for tool in ("cmake", "cc", "c++") if shutil.which(tool) is None]
        if missing:
            pytest.skip(f"tf2_msgs is not built: {', '.join(missing)} missing (ros_vendor/build_tf2_msgs.sh)")
        pytest.fail("tf2_msgs is not importable although cmake, cc and c++ exist: run ros_vendor/build_tf2_msgs.sh")
    return TFMessage


def test_the_built_message_is_ros_tf2_msgs_on_the_wire():
    tf_message_type()
    import tf2_msgs
    from rosbags.typesys import Stores, get_typestore

    share = Path(tf2_msgs.__file__).resolve().parents[4] / "share" / "tf2_msgs" / "msg" / "TFMessage.json"
    if not share.is_file():  # a ROS install: share/ of its own prefix
        share = Path(sys.prefix) / "share" / "tf2_msgs" / "msg" / "TFMessage.json"
    hashes = {h["type_name"]: h["hash_string"] for h in json.loads(share.read_text())["type_hashes"]}
    expected = get_typestore(Stores.ROS2_KILTED).hash_rihs01("tf2_msgs/msg/TFMessage")
    assert hashes["tf2_msgs/msg/TFMessage"] == expected


@pytest.fixture(scope="module")
def frames(redkitchen_frames):
    return redkitchen_frames[:5]


def test_odometry_is_on_tf_with_the_image_stamps(running, frames):
    tf_message_type()
    node, harness = running(
        [Parameter("features", value="orb"), Parameter("process_every_frame", value=True)], reliable=True, history=50
    )
    stamps = []
    for frame in frames:
        stamp = conv.seconds_to_stamp(STAMP0 + frame.timestamp)
        stamps.append(stamp)
        harness.publish_camera_info(frame.camera, stamp)
        harness.publish_frame(frame.image, stamp)
    assert harness.wait_for(lambda: harness.count("tf") >= len(frames), 60.0), harness.latest_diagnostics()
    transforms = [message.transforms[0] for message in harness.messages("tf")]
    assert [t.header.stamp for t in transforms] == stamps
    assert {(t.header.frame_id, t.child_frame_id) for t in transforms} == {("odom", "base_link")}
    assert harness.wait_for(lambda: harness.count("odometry") >= len(frames), 10.0)
    for transform, odometry in zip(transforms, harness.messages("odometry"), strict=True):
        np.testing.assert_allclose(
            conv.pose_to_matrix(transform.transform), conv.pose_to_matrix(odometry.pose.pose), atol=1e-9
        )
    assert harness.wait_for(lambda: harness.latest_diagnostics().get("tf", "").startswith("tf2_msgs"), 10.0)


def test_without_the_message_type_the_node_says_tf_is_not_published(running, monkeypatch):
    import silk_ros.ros.node as node_module

    monkeypatch.setattr(node_module, "tf2_ros", None)
    monkeypatch.setattr(node_module, "TFMessage", None)
    node, harness = running([Parameter("features", value="orb")])
    assert harness.wait_for(lambda: "tf" in harness.latest_diagnostics(), 10.0)
    status = harness.latest_diagnostics()["tf"]
    assert status.startswith("not published") and "tf2_msgs" in status and "~/odometry" in status
