"""Dataset sequence -> real rosbag2 (sqlite3 .db3 or mcap) with images, CameraInfo, depth and ground truth.

Stamps are the dataset's own timestamps (header and log time alike), so replaying the bag reproduces the
dataset run exactly; the ground truth goes out both as PoseStamped (easy to evaluate against) and as /tf
(what RViz and tf2 tools read).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

from silk_ros.bagio import messages as m
from silk_ros.bagio.errors import BagError
from silk_ros.bagio.image_codec import metres_to_depth, numpy_to_compressed_fields, numpy_to_image_fields

STORAGE_BY_SUFFIX = {".mcap": "mcap", ".db3": "sqlite3"}
_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
#: ground-truth poses this far outside the written frames' time span are kept (for interpolation/association).
GT_MARGIN_S = 0.5


@dataclass
class BagTopics:
    """Topic names and frame ids written by `silk-vo bag convert` (ROS conventions as defaults)."""

    image: str = "/camera/image_raw"
    camera_info: str = "/camera/camera_info"
    depth: str = "/camera/depth/image_raw"
    ground_truth: str = "/ground_truth/pose"
    tf: str = "/tf"
    camera_frame: str = "camera_optical_frame"
    world_frame: str = "world"
    gt_child_frame: str = "ground_truth_camera"


@dataclass
class ConvertOptions:
    """How to write the bag. ``compressed`` is None (raw Image) or "jpeg"/"png" (CompressedImage)."""

    storage: str = "mcap"
    compressed: str | None = None
    jpeg_quality: int = 95
    camera_info: bool = True
    depth: bool = True
    depth_encoding: str = "32FC1"
    ground_truth: bool = True
    tf: bool = True
    max_frames: int | None = None
    progress: bool = True
    topics: BagTopics = field(default_factory=BagTopics)


def bag_directory_and_storage(out: Path, storage: str | None = None) -> tuple[Path, str]:
    """OUT.mcap / OUT.db3 -> (bag directory OUT, plugin); rosbag2 bags are directories holding OUT/OUT.<ext>."""
    out = Path(out)
    if out.suffix in STORAGE_BY_SUFFIX:
        chosen = STORAGE_BY_SUFFIX[out.suffix]
        if storage is not None and storage != chosen:
            raise BagError(f"{out} asks for {chosen} storage by its suffix but --storage {storage} was given")
        return out.with_suffix(""), chosen
    if storage is None:
        raise BagError(f"cannot tell the storage plugin from {out}: name it OUT.mcap or OUT.db3, or pass --storage")
    if storage not in _PLUGINS:
        raise BagError(f"unknown storage plugin {storage!r}; use mcap or sqlite3")
    return out, storage


def convert_sequence(sequence, out: Path, options: ConvertOptions | None = None) -> dict:
    """Write ``sequence`` (datasets.Sequence) as a rosbag2 at ``out``; returns a summary (path, counts, span).

    A failed conversion removes the directory it created, so no half-written bag is left behind.
    """
    options = options or ConvertOptions()
    bag_dir, storage = bag_directory_and_storage(Path(out), options.storage if Path(out).suffix == "" else None)
    if bag_dir.exists():
        raise BagError(f"{bag_dir} exists already; rosbag2 never overwrites a bag (remove it or pick another name)")
    count = len(sequence) if options.max_frames is None else min(len(sequence), options.max_frames)
    if count <= 0:
        raise BagError(f"sequence {getattr(sequence, 'name', '?')} has no frames to write")
    bag_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        counts = _write(sequence, count, bag_dir, storage, options)
    except BaseException:
        shutil.rmtree(bag_dir, ignore_errors=True)  # we created it (it did not exist): no half-written bag
        raise
    return {"bag": str(bag_dir), "storage": storage, "frames": count, "messages": counts}


def _write(sequence, count: int, path: Path, storage: str, options: ConvertOptions) -> dict[str, int]:
    topics = options.topics
    store = m.typestore()
    counts: dict[str, int] = {}
    writer = Writer(path, version=9, storage_plugin=_PLUGINS[storage])
    writer.open()
    try:
        image_type = m.COMPRESSED_IMAGE if options.compressed else m.IMAGE
        image_topic = topics.image
        connections = {"image": writer.add_connection(image_topic, image_type, typestore=store)}
        if options.camera_info:
            connections["camera_info"] = writer.add_connection(topics.camera_info, m.CAMERA_INFO, typestore=store)
        write_depth = options.depth and bool(getattr(sequence, "has_depth", False))
        if write_depth:
            connections["depth"] = writer.add_connection(topics.depth, m.IMAGE, typestore=store)

        def put(name: str, msg, msgtype: str, ns: int) -> None:
            writer.write(connections[name], ns, store.serialize_cdr(msg, msgtype))
            counts[connections[name].topic] = counts.get(connections[name].topic, 0) + 1

        first_ns = last_ns = None
        frames = tqdm(range(count), desc="bag convert", unit="frame", disable=not options.progress)
        for index in frames:
            frame = sequence[index]
            ns = m.seconds_to_ns(frame.timestamp)
            first_ns = ns if first_ns is None else first_ns
            last_ns = ns
            if options.compressed:
                fmt, data = numpy_to_compressed_fields(frame.image, options.compressed, options.jpeg_quality)
                put("image", m.compressed_msg(fmt, data, ns, topics.camera_frame), image_type, ns)
            else:
                encoding = "mono8" if frame.image.ndim == 2 else "bgr8"
                fields = numpy_to_image_fields(frame.image, encoding)
                put("image", m.image_msg(fields, ns, topics.camera_frame), image_type, ns)
            if options.camera_info:
                info = m.camera_info_msg(frame.camera.to_camera_info(), ns, topics.camera_frame)
                put("camera_info", info, m.CAMERA_INFO, ns)
            if write_depth and frame.depth is not None:
                depth = metres_to_depth(frame.depth, options.depth_encoding)
                fields = numpy_to_image_fields(depth, options.depth_encoding)
                put("depth", m.image_msg(fields, ns, topics.camera_frame), m.IMAGE, ns)

        ground_truth = getattr(sequence, "ground_truth", None)
        if options.ground_truth and ground_truth is not None and len(ground_truth.timestamps):
            _write_ground_truth(writer, put, connections, ground_truth, first_ns, last_ns, options)
    except BaseException:
        writer.close()
        raise
    writer.close()
    return counts


def _write_ground_truth(writer, put, connections, ground_truth, first_ns: int, last_ns: int, options) -> None:
    topics = options.topics
    store = m.typestore()
    stamps = np.asarray(ground_truth.timestamps, dtype=np.float64)
    keep = (stamps >= first_ns * 1e-9 - GT_MARGIN_S) & (stamps <= last_ns * 1e-9 + GT_MARGIN_S)
    if not keep.any():
        return
    connections["gt"] = writer.add_connection(topics.ground_truth, m.POSE_STAMPED, typestore=store)
    if options.tf:
        connections["tf"] = writer.add_connection(topics.tf, m.TF_MESSAGE, typestore=store)
    for stamp, pose in zip(stamps[keep], np.asarray(ground_truth.poses)[keep], strict=True):
        ns = m.seconds_to_ns(stamp)
        put("gt", m.pose_stamped_msg(pose, ns, topics.world_frame), m.POSE_STAMPED, ns)
        if options.tf:
            put("tf", m.tf_msg(pose, ns, topics.world_frame, topics.gt_child_frame), m.TF_MESSAGE, ns)
