"""rosbag2 (and ROS 1 bag) input/output without ROS: dataset -> bag conversion, bag -> frames replay, and the
sensor_msgs image codec (image_codec) that the bag tools and the live node share.

Built on the `rosbags` library so that `silk-vo bag convert` / `silk-vo bag eval` run anywhere the core runs;
only the real-time replay (silk_ros/ros/bag_player.py) needs rclpy.
"""

from silk_ros.bagio.errors import BagError

__all__ = ["BagError"]
