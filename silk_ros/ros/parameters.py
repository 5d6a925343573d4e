"""The node's ROS parameters: the settings table (``silk_ros.settings``) with ROS descriptors.

Every setting is a parameter, declared with the table's name, default, description, range and read-only flag;
the odometry's settings are read-only (the VO pipeline is built once at start-up, so a change needs a restart),
while frame names, the extrinsics, TF publishing, the path length and the debug overlay can change at runtime.
"""

from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from silk_ros.settings import SETTINGS, Setting

__all__ = ["NODE_PARAMETERS", "descriptor"]

#: every parameter the node declares, in the table's order
NODE_PARAMETERS: tuple[Setting, ...] = SETTINGS


def descriptor(row: Setting) -> ParameterDescriptor:
    text = row.description
    if row.choices:
        text += f" (one of: {', '.join(row.choices)})"
    out = ParameterDescriptor(description=text, read_only=row.read_only)
    if row.choices:
        out.additional_constraints = f"one of {list(row.choices)}"
    if row.range is not None and not isinstance(row.default, bool):
        lo, hi = row.range
        if isinstance(row.default, int):
            out.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
        else:
            out.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    return out
