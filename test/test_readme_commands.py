"""Every command the README shows is run by a test (a README command that fails is a bug).

``readme_commands`` collects the commands of the README: each line of its code blocks and each inline code span
that starts with a program we ship or document.  ``WHERE`` says, for every one of them, which test runs it: a test
of this file runs it as written (``HERE``), or a named test elsewhere does (it must exist).  A command added to the
README without a test, or a test entry whose command left the README, fails ``test_every_readme_command_has_a_test``.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import onnxruntime
import pytest

from silk_ros.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
PROGRAM = re.compile(
    r"^(silk-vo|silk_vo_node|python -m|make |ros2 |colcon|pip |rosdep|source |cd |\.venv/bin/|ros_vendor/)"
)
#: Names of programs and files in running text, not commands.
MENTIONS = {
    "ros2 launch", "silk-vo", "silk_vo_node", "silk-vo run-dataset", "ros_vendor/requirements-build.txt",
    "silk_vo_node.log",
}
HERE = "test_readme_commands.py"

DESK = "../shared/data/sequences/tum_rgbd/rgbd_dataset_freiburg2_desk_mini"
WHERE = {
    # Quick start and set-up: `make test` is what CI runs (.ci/run); the others are run here.
    "make demo": HERE,
    "make test": HERE,
    "make setup": HERE,
    "make bench": HERE,
    "make test-avx2": "test_portability.py::test_make_test_avx2_runs_the_suite_with_that_environment",
    "ros_vendor/build_tf2_msgs.sh": "test_ros_tf.py::test_odometry_is_on_tf_with_the_image_stamps",
    ".venv/bin/silk_vo_node --ros-args --params-file config/silk_vo.yaml":
        "test_ros_node_process.py::test_sigint_and_sigterm_shut_down_in_under_a_second_busy_or_idle",
    # Benchmark peers.
    "python -m training.orb_vocabulary": "test_bench_peers.py::test_orb_vocabulary_is_dbow2_text",
    "silk-vo bench design": "test_bench_design.py::test_design_set_runs_monocular_and_rgbd_rooms_and_caches_them",
    "silk-vo bench design --rooms held-out --peer orbslam3":
        "test_bench_design.py::test_orbslam3_runs_on_the_rendered_rgbd_room",
    "silk-vo bench vo --features silk,orb,open3d-rgbd,orbslam3":
        "test_bench_peers.py::test_bench_vo_notes_a_peer_skipped_on_a_monocular_sequence",
    # On a robot: a ROS 2 workspace (no ROS install here; the package, its keys and its colcon build are checked).
    "cd ~/ros2_ws/src && git clone <this repository> silk_ros": HERE,
    "pip install torch==2.13.0 onnxruntime rosbags": HERE,
    "cd ~/ros2_ws && rosdep install --from-paths src -y --ignore-src && colcon build --packages-select silk_ros":
        "test_colcon_install.py::test_colcon_installs_the_node_configs_and_launch_files",
    "source install/setup.bash":
        "test_colcon_install.py::test_node_from_the_install_space_tracks_frames_and_exits_cleanly",
    "ros2 launch silk_ros silk_vo.launch.py camera_namespace:=camera image_topic:=image_raw "
    "camera_info_topic:=camera_info rviz:=true": HERE,
    # The command table.
    "silk-vo demo --data ../shared/data": HERE,
    "silk-vo run-dataset --format kitti\\|tum\\|euroc\\|7scenes\\|tartanair\\|folder\\|auto PATH --out DIR": HERE,
    "silk-vo run-dataset synthetic --synthetic n_frames=80 --synthetic texture=low --synthetic motion=fast "
    "--mode mono --max-frames 30 --out runs/synthetic_low_fast": HERE,
    "silk-vo bag convert ...": "test_bag_eval.py::test_readme_bag_commands_run_as_written",
    "silk-vo bag eval ...": "test_bag_eval.py::test_readme_bag_commands_run_as_written",
    "silk-vo export-onnx --weights silk-mu --out silk_mu.onnx": HERE,
    "silk-vo bench features\\|homography\\|pose-pairs\\|matchers\\|vo\\|scale\\|bundle\\|design\\|node "
    "[--json PATH]": HERE,
    "python -m training.pose_check": HERE,
    "python -m training.pose_check --size 640x480 --selection pairs --max-keypoints 2000": HERE,
    "python -m training.pose_check --choose-threshold":
        "test_training_pose_check.py::test_chosen_threshold_becomes_the_weights_default",
    "python -m training.quantize": "test_int8.py::test_quantize_command_makes_models_the_extractor_accepts",
    # Examples.
    f"silk-vo run-dataset --format folder {DESK}/rgb --intrinsics 520.9 521.0 325.1 249.7 0.2312 -0.7849 -0.0033 "
    f"-0.0001 0.9172 --gt {DESK}/groundtruth.txt --out runs/desk_folder": HERE,
    f"silk-vo bag convert --format tum {DESK} desk.mcap [--compressed]":
        "test_bag_eval.py::test_readme_bag_commands_run_as_written",
    "silk-vo bag eval desk.mcap --gt-topic /ground_truth/pose --out runs/desk":
        "test_bag_eval.py::test_readme_bag_commands_run_as_written",
    "silk-vo bag eval desk.mcap --gt-topic /ground_truth/pose --out runs/desk_rt --realtime --rate 1":
        "test_bag_realtime.py::test_realtime_rate_1_live_node_is_within_tolerance",
    "silk-vo bag convert --format 7scenes ../shared/data/sequences/7scenes_redkitchen kitchen.mcap --max-frames 60":
        "test_bag_eval.py::test_readme_bag_commands_run_as_written",
    "silk-vo bag eval kitchen.mcap --depth-topic /camera/depth/image_raw --gt-topic /ground_truth/pose "
    "--out runs/kitchen_rgbd": "test_bag_eval.py::test_readme_bag_commands_run_as_written",
    "silk-vo bag eval kitchen.mcap --depth-topic /camera/depth/image_raw --set depth_scale=true --gt-topic "
    "/ground_truth/pose --start 10 --max-frames 40 --out runs/kitchen_mono_metric":
        "test_bag_eval.py::test_readme_bag_commands_run_as_written",
    # Training.
    "python -m training.silk --config training/configs/mu_cpu.yaml": HERE,
    "python -m training.matcher --config training/configs/matcher_mu.yaml": HERE,  # and test_matching_training.py
}


def readme_commands() -> list[str]:
    """The README's commands: code-block lines (comments cut) and inline code spans, in order, once each."""
    commands, in_block = [], False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        spans = [line.split(" #")[0].strip()] if in_block else re.findall(r"`([^`]+)`", line)
        commands += [span for span in spans if PROGRAM.match(span) and span not in MENTIONS]
    return list(dict.fromkeys(commands))


def _run(command: str, cwd: Path, data_root: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """A ``python -m`` README command in a shell with this venv's python, ``../shared/data`` the data folder."""
    command = command.replace("../shared/data", str(data_root))
    command = re.sub(r"^python ", f"{shlex.quote(sys.executable)} ", command)
    result = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


def _silk_vo(command: str, cwd: Path, data_root: Path, monkeypatch, capsys) -> str:
    """A ``silk-vo`` README command through the console script's entry point, in ``cwd``; its standard output."""
    assert command.startswith("silk-vo ")
    monkeypatch.chdir(cwd)
    argv = shlex.split(command.replace("../shared/data", str(data_root)))[1:]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's --help
        code = stop.code
    output = capsys.readouterr()
    assert code in (0, None), f"{command}: exit {code}\n{output.err[-2000:]}"
    return output.out


def test_every_readme_command_has_a_test():
    commands = readme_commands()
    assert len(commands) >= 20, commands  # the parser still finds the README's commands
    untested = [command for command in commands if command not in WHERE]
    assert not untested, f"README commands no test runs (add them to WHERE): {untested}"
    stale = [command for command in WHERE if command not in commands]
    assert not stale, f"WHERE names commands the README no longer shows: {stale}"


@pytest.mark.parametrize("where", sorted({where for where in WHERE.values() if where != HERE}))
def test_the_tests_named_for_readme_commands_exist(where):
    filename, name = where.split("::")
    tree = ast.parse((Path(__file__).parent / filename).read_text())
    assert name in {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}, where


def test_make_targets_of_the_readme_exist_and_make_test_is_what_ci_runs():
    for target in ("setup", "test", "demo", "bench"):
        dry = subprocess.run(["make", "-n", target], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, dry.stderr
    demo = subprocess.run(["make", "-n", "-W", "setup", "demo"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert "silk-vo demo --data" in demo.stdout  # `make demo` runs the demo command tested below
    assert "make test" in (REPO_ROOT / ".ci/run").read_text()


def test_demo_as_written(data_root, tmp_path, monkeypatch, capsys):
    output = _silk_vo("silk-vo demo --data ../shared/data", tmp_path, data_root, monkeypatch, capsys)
    assert "ATE" in output and (tmp_path / "runs/demo/report.md").is_file()


def test_run_dataset_folder_example_as_written(data_root, tmp_path, monkeypatch, capsys):
    command = next(c for c in readme_commands() if c.startswith("silk-vo run-dataset --format folder"))
    _silk_vo(command, tmp_path, data_root, monkeypatch, capsys)
    report = json.loads((tmp_path / "runs/desk_folder/report.json").read_text())
    assert report["frames"] > 0 and report["ate"]["sim3"]["rmse"] < 0.1


def test_run_dataset_synthetic_hard_variant_as_written(data_root, tmp_path, monkeypatch, capsys):
    command = next(c for c in readme_commands() if c.startswith("silk-vo run-dataset synthetic"))
    _silk_vo(command, tmp_path, data_root, monkeypatch, capsys)
    report = json.loads((tmp_path / "runs/synthetic_low_fast/report.json").read_text())
    assert report["frames"] == 30 and report["title"].startswith("synthetic/seed0-low-fast (mono"), report["title"]


def test_run_dataset_synopsis_lists_the_formats_it_accepts(data_root, tmp_path, monkeypatch, capsys):
    synopsis = next(c for c in readme_commands() if c.startswith("silk-vo run-dataset --format kitti"))
    formats = synopsis.split("--format ")[1].split()[0].split("\\|")
    help_text = _silk_vo("silk-vo run-dataset --help", tmp_path, data_root, monkeypatch, capsys)
    assert all(name in help_text for name in formats), (formats, help_text)


def test_export_onnx_as_written(data_root, tmp_path, monkeypatch, capsys):
    _silk_vo("silk-vo export-onnx --weights silk-mu --out silk_mu.onnx", tmp_path, data_root, monkeypatch, capsys)
    session = onnxruntime.InferenceSession(str(tmp_path / "silk_mu.onnx"), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    assert len(shape) == 4 and all(isinstance(size, str) for size in shape[2:]), shape  # any image size


def test_every_bench_target_of_the_synopsis_exists(data_root, tmp_path, monkeypatch, capsys):
    """The benches themselves run in test_bench*.py (full runs take tens of minutes: BENCHMARKS.md)."""
    synopsis = next(c for c in readme_commands() if c.startswith("silk-vo bench features"))
    for target in synopsis.split()[2].split("\\|"):
        assert "--json" in _silk_vo(f"silk-vo bench {target} --help", tmp_path, data_root, monkeypatch, capsys), target


def test_pose_check_runs(data_root, tmp_path):
    """As written but on 2 pairs (the default is the full check, minutes on 2 cores)."""
    result = _run("python -m training.pose_check --pairs 2", REPO_ROOT, data_root)
    assert "mnn" in result.stdout.lower()


def test_pose_check_in_the_image_pair_regime_runs(data_root):
    """As written but on 1 pair of one room: the check at the benches' size and selection."""
    command = "python -m training.pose_check --size 640x480 --selection pairs --max-keypoints 2000"
    assert command in readme_commands()
    result = _run(f"{command} --pairs 1 --seeds 0", REPO_ROOT, data_root)
    record = json.loads(result.stdout[result.stdout.index("{"):])["pose_vs_mnn"]
    assert record["size"] == "640x480" and "image pairs" in record["keypoints"] and set(record["per_seed"]) == {"0"}


def test_silk_training_command_starts_from_its_config(data_root, tmp_path):
    """As written plus a run folder in tmp and one step (the real run takes days on a CPU)."""
    command = next(c for c in readme_commands() if c.startswith("python -m training.silk "))
    assert command == "python -m training.silk --config training/configs/mu_cpu.yaml"
    _run(f"{command} --run-dir {tmp_path / 'run'} --steps 1 --no-progress", REPO_ROOT, data_root)
    assert (tmp_path / "run" / "checkpoint_last.pt").is_file()


def test_matcher_training_command_reads_its_config(data_root):
    """The config it names exists and the module takes it; training itself (feature pools, exact resume, weights)
    is run on a tiny config by test_matching_training.py (one step of the full config extracts SiLK features on
    every training photo first: minutes)."""
    command = next(c for c in readme_commands() if c.startswith("python -m training.matcher "))
    config = command.split("--config ")[1].split()[0]
    assert (REPO_ROOT / config).is_file()
    assert "--config" in _run(f"{command} --help", REPO_ROOT, data_root).stdout


def test_robot_install_lines_agree_with_the_package():
    """The robot's pip line pins what requirements.txt pins; the clone is named after the ament package."""
    pip_line = next(c for c in readme_commands() if c.startswith("pip install torch"))
    pins = {line.split("==")[0]: line for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    assert "torch==2.13.0" in pip_line.split() and pins["torch"].startswith("torch==2.13.0")
    assert {"onnxruntime", "rosbags"} <= set(pip_line.split()) | {p.split("==")[0] for p in pip_line.split()}
    clone = next(c for c in readme_commands() if "git clone" in c)
    assert clone.split()[-1] == "silk_ros" and "<name>silk_ros</name>" in (REPO_ROOT / "package.xml").read_text()


def test_ros2_launch_line_names_the_package_file_and_declared_arguments():
    """No `ros2` CLI on the pip path: the launch line's package, file and arguments must exist (the launch file's
    behaviour: test_ros_launch_files.py and test_colcon_install.py)."""
    line = next(c for c in readme_commands() if c.startswith("ros2 launch silk_ros"))
    _, _, package, launch_file, *arguments = line.split()
    assert package == "silk_ros" and (REPO_ROOT / "launch" / launch_file).is_file()
    tree = ast.parse((REPO_ROOT / "launch" / launch_file).read_text())
    declared = {ast.literal_eval(call.args[0]) for call in ast.walk(tree)
                if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument"}
    assert {argument.split(":=")[0] for argument in arguments} <= declared
