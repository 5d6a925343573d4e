"""TartanAir and image-folder readers on small fixtures written here (known NED poses, known intrinsics, ground truth
with and without), the folder reader against the TUM reader on the real excerpt, and ``silk-vo run-dataset`` on
bad paths: one line naming the path, exit code 2, no traceback, for every format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from silk_ros.datasets import FORMATS, DatasetError, detect_format, open_sequence
from silk_ros.geometry.camera import Camera
from silk_ros.geometry.pose import make_pose
from silk_ros.geometry.trajectory import Trajectory


def _write_images(folder: Path, names: list[str], width: int = 64, height: int = 48) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


# ------------------------------------------------------------------------------------------------ TartanAir
#: NED camera poses (x forward, y right, z down): start; 1 m forward; turned 90 deg right (yaw about +z down);
#: then 2 m right (east) and 0.5 m up.
YAW_RIGHT = Rotation.from_euler("z", 90, degrees=True).as_quat()
NED_ROWS = np.array([
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    [1.0, 0.0, 0.0, *YAW_RIGHT],
    [1.0, 2.0, -0.5, *YAW_RIGHT],
])


@pytest.fixture
def tartanair(tmp_path) -> Path:
    root = tmp_path / "abandonedfactory/Easy/P000"
    _write_images(root / "image_left", [f"{i:06d}_left.png" for i in range(len(NED_ROWS))], 640, 480)
    np.savetxt(root / "pose_left.txt", NED_ROWS)
    return root


def test_tartanair_ned_poses_become_optical_camera_poses(tartanair):
    seq = open_sequence("tartanair", tartanair)
    assert len(seq) == 4 and not seq.has_depth and seq.name == "tartanair/abandonedfactory/Easy/P000"
    cam = seq.camera
    assert (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy, cam.model) == (640, 480, 320, 320, 320, 240, "none")
    np.testing.assert_allclose(seq.timestamps, [0.0, 0.1, 0.2, 0.3])
    poses = seq.ground_truth.poses
    relative = np.linalg.inv(poses[0]) @ poses  # every pose seen from the first optical camera frame
    # 1 m forward is +z of the optical frame, not +x
    np.testing.assert_allclose(relative[1], make_pose(translation=[0.0, 0.0, 1.0]), atol=1e-12)
    # turned right: the camera now looks along the first camera's +x (right), its right points back (-z),
    # down stays down
    np.testing.assert_allclose(relative[2][:3, :3], [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], atol=1e-12)
    # 2 m right (+x), 0.5 m up (-y, optical y is down), 1 m forward (+z)
    np.testing.assert_allclose(relative[3][:3, 3], [2.0, -0.5, 1.0], atol=1e-12)
    # a point 5 m in front of the turned camera (NED: 5 m east of it) projects to the image centre
    point_world = poses[2] @ [0.0, 0.0, 5.0, 1.0]
    np.testing.assert_allclose(np.linalg.inv(poses[2]) @ point_world, [0, 0, 5, 1], atol=1e-12)
    frame = seq[2]
    assert frame.image.shape == (480, 640, 3) and frame.depth is None
    np.testing.assert_allclose(frame.gt_pose, poses[2])
    assert detect_format(tartanair) == "tartanair"


def test_tartanair_depth_and_layout_errors(tartanair):
    depth = np.full((480, 640), 2.5, dtype=np.float32)
    depth[0, 0], depth[0, 1], depth[0, 2] = np.inf, 0.0, np.nan
    (tartanair / "depth_left").mkdir()
    for i in range(4):
        np.save(tartanair / "depth_left" / f"{i:06d}_left_depth.npy", depth)
    seq = open_sequence("tartanair", tartanair)
    frame = seq[1]
    assert seq.has_depth and frame.depth.dtype == np.float32 and frame.depth[5, 5] == 2.5
    assert np.isnan(frame.depth[0, :3]).all()
    assert not open_sequence("tartanair", tartanair, depth=False).has_depth
    (tartanair / "image_left/000003_left.png").unlink()
    with pytest.raises(DatasetError, match=r"holds 3 \*_left.png images but pose_left.txt has 4 poses"):
        open_sequence("tartanair", tartanair)
    (tartanair / "pose_left.txt").unlink()
    with pytest.raises(DatasetError, match=r"missing TartanAir pose file \(pose_left.txt\): .*P000/pose_left.txt"):
        open_sequence("tartanair", tartanair)


def test_tartanair_other_image_size_needs_a_camera(tmp_path):
    root = tmp_path / "P001"
    _write_images(root / "image_left", ["000000_left.png", "000001_left.png"], 320, 240)
    np.savetxt(root / "pose_left.txt", NED_ROWS[:2])
    with pytest.raises(DatasetError, match="320x240; TartanAir's published intrinsics are for 640x480"):
        open_sequence("tartanair", root)
    cam = Camera.from_intrinsics(160, 160, 160, 120, 320, 240)
    assert open_sequence("tartanair", root, camera=cam).camera == cam


# ------------------------------------------------------------------------------------------------ image folder
def test_folder_without_ground_truth_natural_order_and_calibration_file(tmp_path):
    _write_images(tmp_path / "images", ["img10.png", "img2.png", "img1.png"])
    (tmp_path / "camera.yaml").write_text("fx: 50\nfy: 51\ncx: 31.5\ncy: 23.5\n")
    seq = open_sequence("folder", tmp_path)
    assert [Path(seq.describe_source(i)).name for i in range(3)] == ["img1.png", "img2.png", "img10.png"]
    np.testing.assert_allclose(seq.timestamps, np.arange(3) / 30.0)  # no times anywhere: index / 30 Hz
    assert seq.ground_truth is None and seq[0].gt_pose is None and not seq.has_depth
    assert seq.camera == Camera.from_intrinsics(50, 51, 31.5, 23.5, 64, 48)
    assert detect_format(tmp_path) == "folder"
    (tmp_path / "times.txt").write_text("# seconds\n0.5\n0.75\n1.0\n")
    np.testing.assert_allclose(open_sequence("folder", tmp_path).timestamps, [0.5, 0.75, 1.0])


def test_folder_with_tum_ground_truth_by_file_name_times(tmp_path):
    stamps = np.array([100.0, 100.1, 100.2, 100.3])
    _write_images(tmp_path, [f"{t:.6f}.png" for t in stamps])
    gt_stamps = np.arange(99.95, 100.36, 0.05)  # 20 Hz mocap around the images, two stamps per image
    positions = np.column_stack([gt_stamps, np.zeros_like(gt_stamps), 2 * gt_stamps])
    quats = Rotation.from_euler("y", gt_stamps[:, None] * 10, degrees=True).as_quat()
    Trajectory(gt_stamps, _poses(positions, quats)).write_tum(tmp_path / "gt.tum")
    seq = open_sequence("folder", tmp_path, camera=[50, 50, 32, 24, 0.1, -0.05, 0.0, 0.0],
                        ground_truth=tmp_path / "gt.tum")
    np.testing.assert_allclose(seq.timestamps, stamps)
    assert seq.camera.model == "plumb_bob" and seq.camera.distortion.tolist() == [0.1, -0.05, 0.0, 0.0]
    at_frames = seq.ground_truth_at_frames()
    assert len(at_frames) == 4
    np.testing.assert_allclose(at_frames.positions[:, 0], stamps, atol=1e-6)  # the pose at each image's time
    np.testing.assert_allclose(seq[3].gt_pose[:3, 3], [100.3, 0.0, 200.6], atol=1e-5)
    # a ground truth on another clock pairs with nothing: an error, not an empty evaluation
    Trajectory(gt_stamps + 1000, _poses(positions, quats)).write_tum(tmp_path / "groundtruth.txt")
    with pytest.raises(DatasetError, match=r"groundtruth.txt has no pose within 0.02 s of an image time"):
        open_sequence("folder", tmp_path, camera=[50, 50, 32, 24])


def _poses(positions: np.ndarray, quats: np.ndarray) -> np.ndarray:
    poses = np.tile(np.eye(4), (len(positions), 1, 1))
    poses[:, :3, :3] = Rotation.from_quat(quats).as_matrix()
    poses[:, :3, 3] = positions
    return poses


def test_folder_nanosecond_names_json_and_ros_calibration(tmp_path):
    from silk_ros.bagio.camera_yaml import write_camera_yaml

    _write_images(tmp_path, ["1403715273262142976.png", "1403715273312143104.png"])
    seq = open_sequence("folder", tmp_path, camera={"fx": 40, "fy": 40, "cx": 32, "cy": 24})
    np.testing.assert_allclose(seq.timestamps, [1403715273.262142976, 1403715273.312143104], rtol=0, atol=1e-6)
    (tmp_path / "camera.json").write_text(json.dumps({"fx": 40, "fy": 41, "cx": 30, "cy": 20}))
    assert open_sequence("folder", tmp_path).camera.fy == 41
    ros = Camera.from_intrinsics(45, 46, 31, 22, 64, 48, (0.01, 0.02, 0.0, 0.0, 0.0))
    write_camera_yaml(ros, tmp_path / "ros_camera.yaml")
    assert open_sequence("folder", tmp_path, camera=tmp_path / "ros_camera.yaml").camera == ros


def test_folder_errors_name_what_is_missing(tmp_path):
    with pytest.raises(DatasetError, match=r"no images \(.png.*\) in .*empty"):
        (tmp_path / "empty").mkdir()
        open_sequence("folder", tmp_path / "empty")
    _write_images(tmp_path / "a", ["0.png", "1.png"])
    with pytest.raises(DatasetError, match=r"no intrinsics for .*a: add camera.yaml or camera.json"):
        open_sequence("folder", tmp_path / "a")
    (tmp_path / "a/camera.yaml").write_text("fx: 50\nfy: 50\ncx: 32\n")
    with pytest.raises(DatasetError, match=r"camera.yaml lacks cy"):
        open_sequence("folder", tmp_path / "a")
    with pytest.raises(DatasetError, match=r"times.txt has 3 timestamps for 2 images"):
        (tmp_path / "times.txt").write_text("1\n2\n3\n")
        open_sequence("folder", tmp_path / "a", camera=[50, 50, 32, 24], times=tmp_path / "times.txt")
    with pytest.raises(DatasetError, match=r"missing ground truth \(TUM format\): .*nope.txt"):
        open_sequence("folder", tmp_path / "a", camera=[50, 50, 32, 24], ground_truth=tmp_path / "nope.txt")


def test_folder_reads_the_tum_excerpt_like_the_tum_reader(data_root):
    root = data_root / "sequences/tum_rgbd/rgbd_dataset_freiburg2_desk_mini"
    tum = open_sequence("tum", root)
    cam = tum.camera
    folder = open_sequence("folder", root / "rgb", camera=[cam.fx, cam.fy, cam.cx, cam.cy, *cam.distortion],
                           ground_truth=root / "groundtruth.txt")
    assert folder.camera == cam
    np.testing.assert_array_equal(folder.timestamps, tum.timestamps)
    np.testing.assert_array_equal(folder.ground_truth_at_frames().poses, tum.ground_truth_at_frames().poses)
    np.testing.assert_array_equal(folder[7].image, tum[7].image)


# ------------------------------------------------------------------------------------------------ run-dataset
#: format -> what the one line says for an empty folder (a folder of the wrong layout)
EMPTY_FOLDER_ERRORS = {
    "kitti": "missing KITTI image folder image_0",
    "tum": "missing TUM file list",
    "euroc": "missing EuRoC camera folder cam0",
    "7scenes": "no seq-XX folder",
    "tartanair": "missing TartanAir image folder",
    "folder": "no images",
    "auto": "cannot tell the dataset format",
}


def _bad_layouts(root: Path) -> list[tuple[str, Path, str]]:
    """(format, path, what the one line must say): a missing folder and an empty one for every format, a file,
    half-written layouts, and a folder given to the synthetic sequence."""
    assert set(EMPTY_FOLDER_ERRORS) == set(FORMATS) - {"synthetic"} | {"auto"}
    (root / "empty").mkdir()
    (root / "a_file.txt").write_text("not a folder")
    cases = [(fmt, root / "nowhere", "dataset path does not exist") for fmt in EMPTY_FOLDER_ERRORS]
    cases += [(fmt, root / "empty", text) for fmt, text in EMPTY_FOLDER_ERRORS.items()]
    cases += [("tum", root / "a_file.txt", "dataset path is not a folder"),
              ("synthetic", root / "nowhere", "the synthetic sequence is rendered, it reads no dataset folder")]
    kitti = root / "kitti_no_times"
    (kitti / "image_0").mkdir(parents=True)
    (kitti / "calib.txt").write_text("P0: " + " ".join(["1"] * 12) + "\n")
    (kitti / "times.txt").write_text("")
    cases.append(("kitti", kitti, "lists no frames"))
    tum = root / "tum_missing_images"
    tum.mkdir()
    (tum / "rgb.txt").write_text("1.0 rgb/1.0.png\n")
    cases.append(("tum", tum, "missing first TUM colour image"))
    tartanair = root / "P000"
    (tartanair / "image_left").mkdir(parents=True)
    (tartanair / "pose_left.txt").write_text("1 2 3\n")
    cases.append(("tartanair", tartanair, "expected 7 numbers per line"))
    return cases


def test_run_dataset_bad_paths_one_line_exit_2_every_format(tmp_path, capsys):
    from silk_ros.cli import main

    for fmt, path, text in _bad_layouts(tmp_path):
        code = main(["run-dataset", "--format", fmt, str(path), "--out", str(tmp_path / "out"), "--no-progress"])
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert code == 2 and out == "" and len(lines) == 1, (fmt, path, err)
        assert lines[0].startswith("silk-vo run-dataset: error: ") and text in lines[0], (fmt, path, lines)
        assert str(path) in lines[0], (fmt, path, lines)
    assert not (tmp_path / "out").exists()
    tartanair = tmp_path / "P000"
    for fmt in ("tartanair", "auto"):  # folder flags on another format: refused, whatever 'auto' finds
        code = main(["run-dataset", fmt, str(tartanair), "--gt", "gt.txt", "--intrinsics", "1", "2", "3", "4",
                     "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2 and err.strip() == (f"silk-vo run-dataset: error: --intrinsics/--calib, --gt only apply to "
                                             f"--format folder, not tartanair ({tartanair})"), err


def test_run_dataset_bad_path_in_a_real_process_prints_no_traceback(tmp_path):
    (tmp_path / "empty").mkdir()
    for args in (["--format", "tartanair", str(tmp_path / "nowhere")], ["folder", str(tmp_path / "empty")]):
        command = [sys.executable, "-m", "silk_ros.cli", "run-dataset", *args, "--out", str(tmp_path / "o")]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and proc.stdout == "", proc
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert args[-1] in proc.stderr


def test_run_dataset_synthetic_options_are_checked(tmp_path, capsys):
    """``--synthetic KEY=VALUE`` sets the renderer's options; an unknown key, a bad value or the flag on another
    format is one line and exit 2, before any rendering."""
    from silk_ros.cli import main

    cases = [(["synthetic", "--synthetic", "bogus=1"], "unknown --synthetic option(s) bogus"),
             (["synthetic", "--synthetic", "texture=plain"], "texture must be one of rich, low"),
             (["synthetic", "--synthetic", "n_frames"], "--synthetic expects KEY=VALUE"),
             (["kitti", str(tmp_path), "--synthetic", "n_frames=3"], "--synthetic only applies to --format synthetic"),
             (["synthetic", "--synthetic", "n_frames=3", "--gt", "gt.txt"], "--gt only apply to --format folder")]
    for arguments, text in cases:
        code = main(["run-dataset", *arguments, "--out", str(tmp_path / "out"), "--no-progress"])
        _, err = capsys.readouterr()
        assert code == 2 and len(err.strip().splitlines()) == 1 and text in err, (arguments, err)
