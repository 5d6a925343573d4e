"""Launch silk_vo_node on a camera, optionally with RViz.

Example::

    ros2 launch silk_ros silk_vo.launch.py camera_namespace:=/camera image_topic:=image_raw rviz:=true
    ros2 launch silk_ros silk_vo.launch.py image_topic:=/camera/color/image_raw \\
        camera_info_topic:=/camera/color/camera_info depth_topic:=/camera/aligned_depth_to_color/image_raw \\
        params_file:=my_params.yaml          # with mode: rgbd in my_params.yaml

Topic arguments are resolved inside ``camera_namespace`` unless they start with '/'.  The compressed
input (parameter ``image_transport: compressed``) is read from ``<image_topic>/compressed``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription


def generate_launch_description():
    share = get_package_share_directory("silk_ros")
    namespace = LaunchConfiguration("camera_namespace")
    image_topic = LaunchConfiguration("image_topic")
    # A bool parameter: launch arguments are strings, so convert explicitly.
    use_sim_time = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)

    arguments = [
        DeclareLaunchArgument("camera_namespace", default_value="camera", description="namespace of the camera"),
        DeclareLaunchArgument("image_topic", default_value="image_raw", description="colour or grey image topic"),
        DeclareLaunchArgument("camera_info_topic", default_value="camera_info", description="CameraInfo topic"),
        DeclareLaunchArgument("depth_topic", default_value="depth/image_raw", description="depth (mode: rgbd)"),
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", "silk_vo.yaml"),
            description="node parameters (silk_vo_node: ros__parameters:)",
        ),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with rviz/silk_vo.rviz"),
        DeclareLaunchArgument(
            "publish_camera_tf",
            default_value="false",
            description="publish a static base_frame -> camera_frame TF with the pure optical->body rotation "
            "(for a camera without a robot description; keeps RViz's camera-frame keypoints drawable)",
        ),
        DeclareLaunchArgument("base_frame", default_value="base_link", description="base frame for publish_camera_tf"),
        DeclareLaunchArgument(
            "camera_frame", default_value="camera_optical_frame", description="camera frame for publish_camera_tf"
        ),
    ]

    vo_node = Node(
        package="silk_ros",
        executable="silk_vo_node",
        name="silk_vo_node",
        namespace=namespace,
        output="screen",
        parameters=[LaunchConfiguration("params_file"), {"use_sim_time": use_sim_time}],
        remappings=[
            ("image", image_topic),
            ("image/compressed", [image_topic, "/compressed"]),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
            ("depth", LaunchConfiguration("depth_topic")),
        ],
    )
    rviz_node = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", PathJoinSubstitution([share, "rviz", "silk_vo.rviz"])],
        parameters=[{"use_sim_time": use_sim_time}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    # Same rotation as the node's default base_from_camera parameter (z forward -> x forward, y down -> -z).
    camera_tf = Node(
        package="tf2_ros",
        executable="static_transform_publisher",
        name="silk_vo_camera_tf",
        arguments=[
            *("--frame-id", LaunchConfiguration("base_frame")),
            *("--child-frame-id", LaunchConfiguration("camera_frame")),
            *("--qx", "-0.5", "--qy", "0.5", "--qz", "-0.5", "--qw", "0.5"),
        ],
        parameters=[{"use_sim_time": use_sim_time}],
        condition=IfCondition(LaunchConfiguration("publish_camera_tf")),
    )
    return LaunchDescription([*arguments, vo_node, rviz_node, camera_tf])
