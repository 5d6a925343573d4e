"""Dataset readers on the real shared sequences (frame counts, images, cameras, ground-truth plausibility),
the synthetic renderer's geometric consistency, lazy loading and clear errors for broken layouts."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from silk_ros.datasets import DatasetError, detect_format, open_sequence
from silk_ros.geometry.camera import Camera


@pytest.fixture(scope="module")
def seqs(data_root):
    return data_root / "sequences"


def test_kitti_07(seqs):
    seq = open_sequence("kitti", seqs / "kitti_odometry")
    assert len(seq) == 160 and not seq.has_depth
    frame = seq[0]
    assert frame.image.shape == (370, 1226) and frame.image.dtype == np.uint8
    cam = seq.camera
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (707.0912, 707.0912, 601.8873, 183.1104) and cam.model == "none"
    gt = seq.ground_truth
    assert len(gt) == 160 and np.allclose(gt.poses[0], np.eye(4), atol=1e-9)
    assert frame.timestamp == 0.0 and seq[1].timestamp == pytest.approx(0.1038752)
    # a car drives forward: each step, seen from the previous camera, goes along +z (optical axis), not sideways
    steps = np.linalg.inv(gt.poses[:-1]) @ gt.poses[1:]
    forward, sideways = steps[:, 2, 3], np.abs(steps[:, 0, 3]) + np.abs(steps[:, 1, 3])
    assert np.mean(forward > 3 * sideways) > 0.9 and np.all(forward > -0.01)
    assert 60 < gt.path_length() < 120  # ~90 m in 16.5 s: city driving speed
    np.testing.assert_allclose(frame.gt_pose, gt.poses[0])


def test_kitti_other_cameras_chain_the_stereo_baseline(seqs, tmp_path):
    # the shared copy has only image_0: stand the left images in for image_1 to exercise the calibration chain
    root = _kitti_copy(seqs, tmp_path, n_images=5, camera="image_1")
    (root / "poses").mkdir()
    lines = (seqs / "kitti_odometry/poses/07.txt").read_text().splitlines()[:5]
    (root / "poses/07.txt").write_text("\n".join(lines) + "\n")
    left = open_sequence("kitti", seqs / "kitti_odometry", max_frames=5).ground_truth.poses
    right = open_sequence("kitti", root / "sequences/07", camera="image_1").ground_truth.poses
    baseline = np.eye(4)
    baseline[0, 3] = 379.8145 / 707.0912  # P1 = K [I | -b fx]: the right camera sits b metres along +x
    np.testing.assert_allclose(right, left @ baseline, atol=1e-6)


def test_kitti_options_select_and_resize(seqs):
    full = open_sequence("kitti", seqs / "kitti_odometry")
    part = open_sequence("kitti", seqs / "kitti_odometry", start=10, stride=5, max_frames=7, resize=0.5)
    assert len(part) == 7
    np.testing.assert_allclose(part.timestamps, full.timestamps[10:45:5])
    frame = part[1]
    assert frame.index == 1 and frame.timestamp == full.timestamps[15]
    np.testing.assert_allclose(frame.gt_pose, full.ground_truth.poses[15])
    assert frame.image.shape == (185, 613) and frame.camera == full.camera.scaled(613, 185)
    assert part[-1].timestamp == full.timestamps[40]
    assert len(part.ground_truth_at_frames()) == 7


def test_tum_fr2_desk(seqs):
    seq = open_sequence("tum", seqs / "tum_rgbd/rgbd_dataset_freiburg2_desk_mini")
    assert len(seq) == 20 and not seq.has_depth  # this excerpt ships no depth.txt
    frame = seq[0]
    assert frame.image.shape == (480, 640, 3) and frame.depth is None
    cam = seq.camera
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (520.9, 521.0, 325.1, 249.7) and cam.model == "plumb_bob"
    np.testing.assert_allclose(cam.distortion, [0.2312, -0.7849, -0.0033, -0.0001, 0.9172])
    at_frames = seq.ground_truth_at_frames()
    assert len(at_frames) == 20  # every colour frame has a mocap pose within 20 ms
    assert np.all(np.abs(at_frames.timestamps - seq.timestamps) == 0)
    # handheld desk sweep at ~10 Hz: centimetres per frame, never teleporting
    steps = np.linalg.norm(np.diff(at_frames.positions, axis=0), axis=1)
    assert 0.005 < np.median(steps) < 0.1 and steps.max() < 0.2
    assert seq.ground_truth.timestamps[0] >= seq.timestamps[0] - 0.02  # cropped to the excerpt, not 100 s of it
    override = Camera.from_intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
    assert open_sequence("tum", seqs / "tum_rgbd/rgbd_dataset_freiburg2_desk_mini", camera=override).camera == override


def test_tum_unknown_kinect_needs_a_camera(seqs, tmp_path):
    src = seqs / "tum_rgbd/rgbd_dataset_freiburg2_desk_mini"
    folder = tmp_path / "my_recording"
    folder.mkdir()
    lines = [ln.split() for ln in (src / "rgb.txt").read_text().splitlines() if not ln.startswith("#")]
    (folder / "rgb.txt").write_text("".join(f"{t} {src / name}\n" for t, name in lines[:3]))
    with pytest.raises(DatasetError, match="fr1/fr2/fr3"):
        open_sequence("tum", folder)
    cam = {"width": 640, "height": 480, "k": [500, 0, 320, 0, 500, 240, 0, 0, 1], "d": [], "distortion_model": "none"}
    seq = open_sequence("tum", folder, camera=cam)
    assert len(seq) == 3 and seq.ground_truth is None and seq[2].image.shape == (480, 640, 3)


def test_euroc_v101_at_rest(seqs):
    root = seqs / "euroc/V1_01_easy_head"
    seq = open_sequence("euroc", root)
    assert len(seq) == 95
    frame = seq[0]
    assert frame.image.shape == (480, 752) and frame.image.dtype == np.uint8
    assert seq.camera.model == "plumb_bob" and seq.camera.fx == 458.654
    assert frame.timestamp == pytest.approx(1403715273.262142976, abs=1e-6)
    gt = seq.ground_truth_at_frames()
    assert len(gt) == 95
    assert np.linalg.norm(gt.positions - gt.positions[0], axis=1).max() < 0.03  # the MAV sits still
    # T_world_cam = T_world_body @ T_BS, recomputed by hand from the files
    row = np.loadtxt(root / "groundtruth_body_tum.txt")[0]
    T_wb = np.eye(4)
    T_wb[:3, :3] = Rotation.from_quat(row[4:8]).as_matrix()
    T_wb[:3, 3] = row[1:4]
    np.testing.assert_allclose(frame.gt_pose, T_wb @ seq.T_body_cam, atol=1e-9)
    # cam0 looks roughly horizontally (optical z nearly perpendicular to gravity = world z)
    assert abs(frame.gt_pose[2, 2]) < 0.5


def test_7scenes_redkitchen(seqs):
    root = seqs / "7scenes_redkitchen"
    seq = open_sequence("7scenes", root)
    assert len(seq) == 500 and seq.has_depth
    frame = seq[3]
    assert frame.image.shape == (480, 640, 3) and frame.depth.shape == (480, 640) and frame.depth.dtype == np.float32
    assert frame.timestamp == pytest.approx(3 / 30)
    assert (seq.camera.fx, seq.camera.cx, seq.camera.cy) == (585.0, 320.0, 240.0)
    raw = cv2.imread(str(root / "seq-01/frame-000003.depth.png"), cv2.IMREAD_UNCHANGED)
    invalid = (raw == 65535) | (raw == 0)
    assert invalid.any()
    np.testing.assert_array_equal(np.isnan(frame.depth), invalid)
    np.testing.assert_allclose(frame.depth[~invalid], raw[~invalid] / 1000.0, rtol=1e-6)
    assert 0.3 < np.nanmedian(frame.depth) < 5.0
    np.testing.assert_allclose(frame.gt_pose, np.loadtxt(root / "seq-01/frame-000003.pose.txt"))
    steps = np.linalg.norm(np.diff(seq.ground_truth.positions, axis=0), axis=1)
    assert steps.max() < 0.05  # handheld at 30 Hz: no jumps
    assert open_sequence("7scenes", root / "seq-01", color_focal=525.0).camera.fx == 525.0


def test_format_detection(seqs):
    assert detect_format(seqs / "euroc/V1_01_easy_head") == "euroc"
    assert detect_format(seqs / "tum_rgbd/rgbd_dataset_freiburg2_desk_mini") == "tum"
    assert detect_format(seqs / "kitti_odometry") == "kitti"
    assert detect_format(seqs / "7scenes_redkitchen") == "7scenes"
    assert len(open_sequence("auto", seqs / "euroc/V1_01_easy_head", max_frames=4)) == 4


def test_images_are_read_lazily(seqs, monkeypatch):
    calls = []
    real_imread = cv2.imread
    monkeypatch.setattr(cv2, "imread", lambda *a: calls.append(a[0]) or real_imread(*a))
    seq = open_sequence("7scenes", seqs / "7scenes_redkitchen")
    assert len(calls) <= 1  # at most the first image, to learn the image size
    seq[250]
    assert sum("frame-000250" in c for c in calls) == 2  # colour + depth of exactly that frame


def _kitti_copy(seqs, tmp_path, n_images: int, camera: str = "image_0"):
    """A 5-frame KITTI layout in tmp_path whose first ``n_images`` images link to the real ones."""
    src = seqs / "kitti_odometry/sequences/07"
    dst = tmp_path / "kitti/sequences/07"
    (dst / camera).mkdir(parents=True)
    shutil.copy(src / "calib.txt", dst / "calib.txt")
    (dst / "times.txt").write_text("".join(f"{0.1 * i}\n" for i in range(5)))
    for i in range(n_images):
        (dst / camera / f"{i:06d}.png").symlink_to(src / "image_0" / f"{i:06d}.png")
    return tmp_path / "kitti"


def test_broken_layouts_name_the_missing_file(seqs, tmp_path):
    root = _kitti_copy(seqs, tmp_path, n_images=3)
    seq = open_sequence("kitti", root)
    assert len(seq) == 5 and seq.ground_truth is None  # no poses/07.txt: fine, just no ground truth
    seq[2]
    with pytest.raises(DatasetError, match=r"missing KITTI image: .*image_0/000003\.png"):
        seq[3]
    (root / "sequences/07/calib.txt").unlink()
    with pytest.raises(DatasetError, match=r"missing KITTI calibration: .*calib\.txt"):
        open_sequence("kitti", root)
    euroc = tmp_path / "euroc/mav0/cam0"
    euroc.mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"missing EuRoC sensor calibration: .*cam0/sensor\.yaml"):
        open_sequence("euroc", tmp_path / "euroc")
    with pytest.raises(DatasetError, match="no seq-XX folder"):
        open_sequence("7scenes", tmp_path / "euroc")
    with pytest.raises(DatasetError, match="does not exist"):
        open_sequence("kitti", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="unknown dataset format 'bogus'"):
        open_sequence("bogus", tmp_path)
    with pytest.raises(DatasetError, match="start=10 is past the end"):
        open_sequence("kitti", _kitti_copy(seqs, tmp_path / "b", 5), start=10)
    with pytest.raises(DatasetError, match="stride must be >= 1"):
        open_sequence("synthetic", stride=0)
    with pytest.raises(IndexError, match="out of range"):
        seq[5]


def test_synthetic_render_is_geometrically_consistent():
    seq = open_sequence("synthetic")
    assert len(seq) == 50 and seq.has_depth
    a, b = seq[10], seq[14]
    assert a.image.shape == (240, 320, 3) and a.depth.shape == (240, 320)
    assert np.all(np.isfinite(a.depth)) and a.depth.min() > 0.3
    cam = seq.camera
    # pixels of frame a, lifted with a's depth and the gt poses, land in frame b where b's depth agrees ...
    ys, xs = np.mgrid[8:232:6, 8:312:6]
    pix_a = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)
    world = (a.gt_pose @ np.column_stack([cam.backproject(pix_a, a.depth[ys.ravel(), xs.ravel()]),
                                          np.ones(len(pix_a))]).T).T
    in_b = (np.linalg.inv(b.gt_pose) @ world.T).T[:, :3]
    pix_b = cam.project(in_b)
    inside = cam.in_image(pix_b, margin=2)
    x0, y0 = np.floor(pix_b[inside]).astype(int).T
    neighbours = np.stack([b.depth[y0 + dy, x0 + dx] for dy in (0, 1) for dx in (0, 1)])
    smooth = np.ptp(neighbours, axis=0) < 0.01 * neighbours.min(axis=0)  # not on a depth edge
    predicted_z = in_b[inside, 2]
    visible = smooth & (np.abs(neighbours.mean(axis=0) - predicted_z) < 0.02 * predicted_z)  # not occluded
    assert visible.sum() > 500
    # ... and lifting them back with b's (bilinearly interpolated) depth returns to the same pixel of a
    p = pix_b[inside][visible]
    fx, fy = p[:, 0] - x0[visible], p[:, 1] - y0[visible]
    d = neighbours[:, visible]
    z_b = (d[0] * (1 - fx) + d[1] * fx) * (1 - fy) + (d[2] * (1 - fx) + d[3] * fx) * fy
    back = (np.linalg.inv(a.gt_pose) @ b.gt_pose @ np.column_stack([cam.backproject(p, z_b), np.ones(len(p))]).T).T
    error = np.linalg.norm(cam.project(back[:, :3]) - pix_a[inside][visible], axis=1)
    assert np.percentile(error, 99) < 0.5 and np.median(error) < 0.05
    # the texture is glued to the world: corresponding pixels look alike
    grey_a = cv2.cvtColor(a.image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    grey_b = cv2.cvtColor(b.image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    va = grey_a[pix_a[inside][visible][:, 1].astype(int), pix_a[inside][visible][:, 0].astype(int)]
    vb = cv2.remap(grey_b, p[:, 0].astype(np.float32).reshape(-1, 1), p[:, 1].astype(np.float32).reshape(-1, 1),
                   cv2.INTER_LINEAR).ravel()
    assert np.corrcoef(va, vb)[0, 1] > 0.8


def test_synthetic_is_deterministic_and_moves_smoothly():
    one, two = open_sequence("synthetic", seed=3, n_frames=40), open_sequence("synthetic", seed=3, n_frames=40)
    np.testing.assert_array_equal(one[5].image, two[5].image)
    assert not np.array_equal(one[5].image, open_sequence("synthetic", seed=4, n_frames=40)[5].image)
    gt = one.ground_truth
    assert len(gt) == 40 and np.allclose(np.diff(gt.timestamps), 0.1)
    steps = np.linalg.norm(np.diff(gt.positions, axis=0), axis=1)
    assert 0.02 < steps.min() and steps.max() < 0.1
    grey = open_sequence("synthetic", grey=True, with_depth=False, max_frames=2)
    assert grey[1].image.ndim == 2 and grey[1].depth is None
    with pytest.raises(DatasetError, match="n_frames >= 2"):
        open_sequence("synthetic", n_frames=1)


def test_synthetic_hard_variants_low_texture_fast_motion_and_blur():
    """The failure cases robot users report, rendered with exact poses: blank painted walls (few corners), a fast
    head shake (up to ~10 degrees per frame), motion blur over the exposure, and a sweep that comes back over the
    same area (a revisit); bad option values are refused."""
    rich = open_sequence("synthetic", n_frames=80, max_frames=1)
    low = open_sequence("synthetic", n_frames=80, texture="low", motion="fast", max_frames=1)
    assert low.name == "synthetic/seed0-low-fast" and rich.name == "synthetic/seed0"

    def corners(image):
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return len(cv2.goodFeaturesToTrack(grey, 1000, 0.01, 3) if grey.std() > 0 else [])

    assert corners(low[0].image) < 0.3 * corners(rich[0].image)

    def turn_deg(sequence, i):
        T = np.linalg.inv(sequence.ground_truth.poses[i - 1]) @ sequence.ground_truth.poses[i]
        return np.degrees(np.arccos(np.clip((np.trace(T[:3, :3]) - 1) / 2, -1, 1)))

    smooth = open_sequence("synthetic", n_frames=80, with_depth=False)
    fast = open_sequence("synthetic", n_frames=80, motion="fast", with_depth=False)
    assert max(turn_deg(smooth, i) for i in range(1, 80)) < 3.0
    assert max(turn_deg(fast, i) for i in range(1, 80)) > 8.0
    assert np.allclose(smooth.ground_truth.poses[:, :3, 3], fast.ground_truth.poses[:, :3, 3])  # same path, shaken

    sharp = open_sequence("synthetic", n_frames=80, motion="fast", start=36, max_frames=1)[0].image
    blurred = open_sequence("synthetic", n_frames=80, motion="fast", exposure=0.5, start=36, max_frames=1)[0].image
    sharpness = [cv2.Laplacian(cv2.cvtColor(i, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var() for i in (sharp, blurred)]
    assert sharpness[1] < 0.5 * sharpness[0]
    sweep = open_sequence("synthetic", n_frames=81, motion="sweep", with_depth=False).ground_truth.poses
    # Along the arc and back: the turn at the middle frame, the way back beside the way out, up to 10 cm higher.
    assert np.allclose(sweep[40], smooth.ground_truth.poses[79], atol=0.06)
    assert np.allclose(sweep[80, :2, 3], sweep[0, :2, 3]) and 0.09 < sweep[80, 2, 3] - sweep[0, 2, 3] < 0.11
    for bad in ({"texture": "plain"}, {"motion": "shaky"}, {"exposure": 1.5}):
        with pytest.raises(DatasetError, match=next(iter(bad))):
            open_sequence("synthetic", **bad)


def test_tum_depth_association_and_units(seqs, tmp_path):
    """TUM depth: paired to colour within 20 ms (unpaired colour frames dropped), 5000 units per metre, 0 invalid."""
    src = seqs / "tum_rgbd/rgbd_dataset_freiburg2_desk_mini"
    folder = tmp_path / "rgbd_dataset_freiburg2_with_depth"
    (folder / "depth").mkdir(parents=True)
    rgb = [ln.split() for ln in (src / "rgb.txt").read_text().splitlines() if not ln.startswith("#")][:4]
    (folder / "rgb.txt").write_text("".join(f"{t} {src / name}\n" for t, name in rgb))
    depth_lines = []
    for k, (t, _) in enumerate(rgb[:3]):  # the 4th colour frame gets no depth partner
        raw = np.full((480, 640), 5000 + 1000 * k, np.uint16)
        raw[:10] = 0
        cv2.imwrite(str(folder / f"depth/{k}.png"), raw)
        depth_lines.append(f"{float(t) + 0.011:.6f} depth/{k}.png\n")
    (folder / "depth.txt").write_text("".join(depth_lines))
    seq = open_sequence("tum", folder)
    assert seq.has_depth and len(seq) == 3
    frame = seq[2]
    assert frame.depth.dtype == np.float32 and np.isnan(frame.depth[:10]).all()
    np.testing.assert_allclose(frame.depth[10:], 7000 / 5000)
    assert seq.camera.fx == 520.9  # fr2 from the folder name
    assert len(open_sequence("tum", folder, depth=False)) == 4


def test_synthetic_with_photo_textures(data_root, tmp_path):
    photos = data_root / "train" / "skimage"
    if not photos.is_dir():
        pytest.skip(f"no photos at {photos}")
    seq = open_sequence("synthetic", texture_dir=photos, n_frames=10, with_depth=False)
    frame = seq[3]
    assert frame.image.shape == (240, 320, 3) and frame.image.std() > 20
    assert not np.array_equal(frame.image, open_sequence("synthetic", n_frames=10)[3].image)
    with pytest.raises(DatasetError, match="no .jpg/.png/.ppm photos"):
        open_sequence("synthetic", texture_dir=tmp_path)


def test_euroc_original_asl_ground_truth(seqs, tmp_path):
    """Without groundtruth_body_tum.txt the reader takes mav0/state_groundtruth_estimate0/data.csv (w-first quats)."""
    src = seqs / "euroc/V1_01_easy_head"
    mav = tmp_path / "V1_01/mav0"
    (mav / "state_groundtruth_estimate0").mkdir(parents=True)
    (mav / "cam0").symlink_to(src / "mav0/cam0")
    rows = np.loadtxt(src / "groundtruth_body_tum.txt")
    with open(mav / "state_groundtruth_estimate0/data.csv", "w") as f:
        f.write("#timestamp, p_RS_R_x [m], p_RS_R_y [m], p_RS_R_z [m], q_RS_w [], q_RS_x [], q_RS_y [], q_RS_z []\n")
        for t, x, y, z, qx, qy, qz, qw in rows:
            f.write(f"{round(t * 1e9)},{x},{y},{z},{qw},{qx},{qy},{qz},0,0,0\n")
    asl = open_sequence("euroc", tmp_path / "V1_01")
    tum = open_sequence("euroc", src)
    np.testing.assert_allclose(asl.ground_truth.poses, tum.ground_truth.poses, atol=1e-9)
    assert len(asl.ground_truth_at_frames()) == 95


@pytest.mark.parametrize(
    "fmt,folder,i,j,max_rot_deg,max_dir_deg",
    [
        ("kitti", "kitti_odometry", 0, 5, 0.3, 5.0),
        ("tum", "tum_rgbd/rgbd_dataset_freiburg2_desk_mini", 0, 10, 2.0, 15.0),
        ("7scenes", "7scenes_redkitchen", 200, 240, 4.5, 15.0),
        ("synthetic", None, 20, 26, 1.0, 10.0),
    ],
)
def test_ground_truth_convention_agrees_with_the_images(seqs, fmt, folder, i, j, max_rot_deg, max_dir_deg):
    """The relative motion from ground truth (T_world_cam, optical frame) matches the images' epipolar geometry
    (SIFT + 5-point RANSAC on undistorted keypoints). A swapped convention (T_cam_world, body frame) fails."""
    seq = open_sequence(fmt, None if folder is None else seqs / folder)
    a, b = seq[i], seq[j]
    sift = cv2.SIFT_create(3000)
    grey = [f.image if f.image.ndim == 2 else cv2.cvtColor(f.image, cv2.COLOR_BGR2GRAY) for f in (a, b)]
    (ka, da), (kb, db) = (sift.detectAndCompute(g, None) for g in grey)
    good = [m for m, n in cv2.BFMatcher().knnMatch(da, db, k=2) if m.distance < 0.75 * n.distance]
    pa = seq.camera.undistort_points([ka[m.queryIdx].pt for m in good])
    pb = seq.camera.undistort_points([kb[m.trainIdx].pt for m in good])
    E, mask = cv2.findEssentialMat(pa, pb, seq.camera.K, cv2.RANSAC, 0.999, 1.0)
    _, R, t, _ = cv2.recoverPose(E, pa, pb, seq.camera.K, mask=mask)
    T_b_a = np.linalg.inv(b.gt_pose) @ a.gt_pose
    rot_error = np.degrees(np.linalg.norm(Rotation.from_matrix(R @ T_b_a[:3, :3].T).as_rotvec()))
    direction = T_b_a[:3, 3] / np.linalg.norm(T_b_a[:3, 3])
    dir_error = np.degrees(np.arccos(np.clip(float(t.ravel() @ direction), -1.0, 1.0)))
    assert rot_error < max_rot_deg and dir_error < max_dir_deg, (rot_error, dir_error)
