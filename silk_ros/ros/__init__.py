"""ROS 2 side of silk_ros (the only package that imports rclpy).

``node`` (silk_vo_node wiring), ``conversions`` (messages <-> numpy), ``parameters`` (the settings table's
ROS descriptors), ``topics``, ``frame_buffer`` (callback -> worker hand-over, RGB-D pairing),
``diagnostics``, ``debug_image``, ``harness`` (a feeding/recording peer for tests and ``silk-vo bench node``),
``bench_node`` (``silk-vo bench node``), ``bag_player`` (``silk-vo bag eval --realtime``).
"""
