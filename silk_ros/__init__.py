"""silk_ros: learned-feature (SiLK) visual odometry for ROS 2.

The core (features, matching, geometry, odometry, datasets, evaluation) never imports rclpy;
``silk_ros.ros`` is the thin ROS 2 layer.
"""

__version__ = "0.1.0"
