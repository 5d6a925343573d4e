#!/usr/bin/env bash
# Build tf2_msgs/msg/TFMessage into a virtual environment that has the PyPI ROS wheels (make setup calls this), so
# that silk_vo_node publishes /tf on the pip path.  Why: tf2_msgs is not on PyPI, and rclpy cannot publish a type
# without its generated type support (no generic/dynamic publisher in rclpy).  The wheels install a ROS prefix
# (lib/, share/<pkg>/cmake, include/) into the venv, so the ROS interface generators from PyPI build the message
# package against it with cmake, as in a ROS workspace.  The definition is tf2_msgs' own, so a real ROS install sees
# the same type (same RIHS01 type hash; test/test_ros_tf.py checks it).
#
# Needs cmake, cc and c++.  Without them, or if the build fails, it says why and exits 0: the node then runs without
# /tf and says so at start-up and in /diagnostics.  Usage: ros_vendor/build_tf2_msgs.sh VENV
set -uo pipefail
venv="$(cd "${1:?usage: build_tf2_msgs.sh VENV}" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
python="$venv/bin/python"

if "$python" -c "import tf2_msgs.msg" 2>/dev/null; then
  echo "tf2_msgs: already importable in $venv"
  exit 0
fi
for tool in cmake cc c++; do
  if ! command -v "$tool" >/dev/null; then
    echo "tf2_msgs: NOT built ($tool not found): silk_vo_node will not publish /tf on this install"
    exit 0
  fi
done
log="$venv/tf2_msgs-build.log"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
echo "tf2_msgs: building tf2_msgs/msg/TFMessage into $venv (log: $log)"
{
  "$python" -m pip install -q -r "$here/requirements-build.txt" &&
  PATH="$venv/bin:$PATH" AMENT_PREFIX_PATH="$venv" cmake -S "$here/tf2_msgs" -B "$build" \
    -DCMAKE_PREFIX_PATH="$venv" -DCMAKE_INSTALL_PREFIX="$venv" -DPython3_EXECUTABLE="$python" \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF &&
  PATH="$venv/bin:$PATH" AMENT_PREFIX_PATH="$venv" cmake --build "$build" -j 2 &&
  cmake --install "$build"
} > "$log" 2>&1
if "$python" -c "from tf2_msgs.msg import TFMessage; TFMessage()" >> "$log" 2>&1; then
  echo "tf2_msgs: built"
else
  echo "tf2_msgs: NOT built (see $log): silk_vo_node will not publish /tf on this install"
  tail -n 5 "$log"
fi
exit 0
