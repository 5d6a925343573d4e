"""Bad bags get one clear error naming what is missing, and no report (nothing partial) is written."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest

from silk_ros.cli import main
from silk_ros.datasets import open_sequence

OPTIONS = ["--option=n_frames=6", "--option=width=160", "--option=height=120", "--no-progress"]
SETTINGS = ["--set", "features=orb", "--no-progress"]


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    made = {}
    for name, extra in {
        "good.mcap": [],
        "gooddb.db3": [],
        "noinfo.mcap": ["--no-camera-info"],
    }.items():
        assert main(["bag", "convert", "--format", "synthetic", "-", str(root / name), *OPTIONS, *extra]) == 0
        made[name] = root / name.split(".")[0]
    return made


def _fails(capsys, out, *argv) -> str:
    """Run `silk-vo bag eval`, expect exit code 2, no report folder, and return the error line."""
    assert main(["bag", "eval", *SETTINGS, *map(str, argv), "--out", str(out)]) == 2
    assert not out.exists(), "a failed evaluation must not leave a report behind"
    assert not list(out.parent.glob(f".{out.name}.partial-*"))
    err = capsys.readouterr().err
    assert err.startswith("silk-vo bag eval: error:")
    return err


def test_missing_topic_is_named_with_what_the_bag_has(bags, tmp_path, capsys):
    err = _fails(capsys, tmp_path / "r", bags["good.mcap"], "--image-topic", "/front/image_raw")
    assert "no image topic '/front/image_raw'" in err
    assert "/camera/image_raw [sensor_msgs/Image]" in err and "/camera/camera_info [sensor_msgs/CameraInfo]" in err
    err = _fails(capsys, tmp_path / "r", bags["good.mcap"], "--gt-topic", "/mocap/pose")
    assert "no ground-truth topic '/mocap/pose'" in err
    err = _fails(capsys, tmp_path / "r", bags["good.mcap"], "--depth-topic", "/camera/aligned_depth")
    assert "no depth topic '/camera/aligned_depth'" in err


def test_wrong_message_type(bags, tmp_path, capsys):
    err = _fails(capsys, tmp_path / "r", bags["gooddb.db3"], "--image-topic", "/camera/camera_info")
    assert "carries sensor_msgs/CameraInfo, expected sensor_msgs/Image or sensor_msgs/CompressedImage" in err
    err = _fails(capsys, tmp_path / "r", bags["gooddb.db3"], "--gt-topic", "/camera/camera_info")
    assert "ground-truth topic '/camera/camera_info'" in err and "carries sensor_msgs/CameraInfo" in err
    err = _fails(capsys, tmp_path / "r", bags["gooddb.db3"], "--gt-topic", "/tf", "--gt-child-frame", "mocap")
    assert "no transform with child frame 'mocap'" in err and "child frames there: ground_truth_camera" in err
    err = _fails(capsys, tmp_path / "r", bags["gooddb.db3"], "--camera-info-topic", "/ground_truth/pose")
    assert "camera-info topic '/ground_truth/pose'" in err and "expected sensor_msgs/CameraInfo" in err


@pytest.mark.parametrize("name", ["good.mcap", "gooddb.db3"])
def test_truncated_storage_file(name, bags, tmp_path, capsys):
    bag = tmp_path / "cut"
    shutil.copytree(bags[name], bag)
    storage = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    data = storage.read_bytes()
    storage.write_bytes(data[: len(data) * 2 // 3])
    for target in (bag, storage):  # the bag directory and the bare storage file
        err = _fails(capsys, tmp_path / "r", target)
        assert "truncated or corrupt" in err and str(target) in err


def test_recording_cut_short_is_caught_by_the_message_count(bags, tmp_path, capsys):
    """metadata.yaml promises more images than the storage holds (a recorder killed mid-write)."""
    bag = tmp_path / "short"
    shutil.copytree(bags["gooddb.db3"], bag)
    with sqlite3.connect(next(bag.glob("*.db3"))) as db:
        topic_id = db.execute("SELECT id FROM topics WHERE name = '/camera/image_raw'").fetchone()[0]
        db.execute(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE topic_id = ? "
            "ORDER BY timestamp DESC LIMIT 2)",
            (topic_id,),
        )
    err = _fails(capsys, tmp_path / "r", bag)
    assert "truncated" in err and "lists 6 image messages" in err and "only 4 could be read" in err


def test_bag_without_camera_info_needs_camera_yaml(bags, tmp_path, capsys):
    from silk_ros.bagio.camera_yaml import write_camera_yaml

    err = _fails(capsys, tmp_path / "r", bags["noinfo.mcap"])
    assert "no sensor_msgs/CameraInfo topic" in err and "--camera-yaml" in err
    camera = open_sequence("synthetic", None, n_frames=6, width=160, height=120).camera
    yaml_path = write_camera_yaml(camera, tmp_path / "camera.yaml")
    assert (
        main(
            [
                "bag",
                "eval",
                str(bags["noinfo.mcap"]),
                "--camera-yaml",
                str(yaml_path),
                "--out",
                str(tmp_path / "ok"),
                *SETTINGS,
            ]
        )
        == 0
    )
    assert main(["bag", "eval", str(bags["good.mcap"]), "--out", str(tmp_path / "ref"), *SETTINGS]) == 0
    assert (tmp_path / "ok" / "trajectory.tum").read_text() == (tmp_path / "ref" / "trajectory.tum").read_text()
    # A calibration for another image size is refused, naming both sizes.
    write_camera_yaml(camera.scaled(320, 240), tmp_path / "wrong.yaml")
    err = _fails(capsys, tmp_path / "r", bags["noinfo.mcap"], "--camera-yaml", tmp_path / "wrong.yaml")
    assert "is 160x120 but the calibration (--camera-yaml) says 320x240" in err
    err = _fails(capsys, tmp_path / "r", bags["noinfo.mcap"], "--camera-yaml", tmp_path / "missing.yaml")
    assert "camera YAML not found" in err


def test_ground_truth_without_time_overlap(bags, tmp_path, capsys):
    gt = open_sequence("synthetic", None, n_frames=6, width=160, height=120).ground_truth
    shifted = type(gt)(gt.timestamps + 1000.0, gt.poses)
    shifted.write_tum(tmp_path / "late.tum")
    err = _fails(capsys, tmp_path / "r", bags["good.mcap"], "--gt", tmp_path / "late.tum")
    assert "no overlap in time" in err and "late.tum" in err
    err = _fails(capsys, tmp_path / "r", bags["good.mcap"], "--gt", tmp_path / "absent.tum")
    assert "ground-truth file not found" in err


def test_missing_bag_and_foreign_out_folder(bags, tmp_path, capsys):
    err = _fails(capsys, tmp_path / "r", tmp_path / "nothing_here")
    assert "bag not found" in err
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    assert main(["bag", "eval", str(bags["good.mcap"]), "--out", str(foreign), *SETTINGS]) == 2
    assert "not a previous report folder" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["holiday.jpg"]


def test_a_previous_report_is_replaced_only_on_success(bags, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["bag", "eval", str(bags["good.mcap"]), "--out", str(out), *SETTINGS]) == 0
    before = json.loads((out / "report.json").read_text())
    assert main(["bag", "eval", str(bags["good.mcap"]), "--image-topic", "/nope", "--out", str(out), *SETTINGS]) == 2
    assert json.loads((out / "report.json").read_text()) == before  # the failed run touched nothing
    assert np.isfinite(before["estimate_path_length"])


def test_convert_refuses_to_overwrite(bags, tmp_path, capsys):
    assert main(["bag", "convert", "--format", "synthetic", "-", str(bags["good.mcap"]) + ".mcap", *OPTIONS]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["bag", "convert", "--format", "tum", str(tmp_path / "nowhere"), str(tmp_path / "x.mcap")]) == 2
    assert "cannot open the tum dataset" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_odometry_that_cannot_be_built_is_a_clear_error(bags, tmp_path, capsys):
    err = _fails(
        capsys,
        tmp_path / "r",
        bags["good.mcap"],
        "--set",
        "features=silk",
        "--set",
        f"weights={tmp_path / 'missing.pt'}",
    )
    assert "cannot build the odometry (silk, weights" in err and "missing.pt" in err
    err = _fails(capsys, tmp_path / "r", bags["good.mcap"], "--set", "featurs=orb")
    assert "featurs" in err
