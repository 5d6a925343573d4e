"""Bag -> frames: a rosbag2 (sqlite3 or mcap, directory or bare file) or ROS 1 bag as a dataset ``Sequence``.

Everything that can be wrong with a bag is found in :meth:`BagSource.open`, before any frame is processed:
missing or mistyped topics, no calibration, a truncated file (fewer messages than the bag's index promises),
non-increasing image stamps. Frames are decoded with silk_ros.bagio.image_codec, the node's own decoder, and
come in the order the node would receive them (bag log time).
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag1 import ReaderError as Rosbag1ReaderError
from rosbags.rosbag2 import ReaderError as Rosbag2ReaderError
from tqdm import tqdm

from silk_ros.bagio import messages as m
from silk_ros.bagio.errors import BagError
from silk_ros.bagio.image_codec import InputError, camera_info_to_dict, depth_from_msg, vo_image_from_msg
from silk_ros.datasets.base import Frame, Sequence
from silk_ros.geometry.camera import Camera, CameraError
from silk_ros.geometry.trajectory import Trajectory

#: what a damaged bag raises inside rosbags / its storage backends.
READ_ERRORS = (
    AnyReaderError,
    Rosbag1ReaderError,
    Rosbag2ReaderError,
    sqlite3.Error,
    EOFError,
    struct.error,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    AssertionError,
)
#: with start/max_frames, camera-info and depth messages logged this long before the first selected image (or
#: after the last) are still replayed: a depth image may be logged just before its colour image.
WINDOW_MARGIN_S = 1.0


@dataclass
class EvalTopics:
    """Topics `silk-vo bag eval` reads. camera_info None: auto-detect; depth/ground_truth None: not used."""

    image: str
    camera_info: str | None = None
    depth: str | None = None
    ground_truth: str | None = None
    #: largest |t_depth - t_image| (s) for a depth image to count as the frame's depth.
    depth_max_dt: float = 0.02
    #: with a tf2_msgs/TFMessage ground-truth topic (/tf): the child frame whose pose is the ground truth.
    gt_child_frame: str = "ground_truth_camera"


@dataclass(frozen=True)
class _Index:
    """Where one message sits in the bag: log time (ns), rank among messages sharing it, header stamp (ns)."""

    log_ns: int
    rank: int
    stamp_ns: int


class BagSource:
    """An opened, validated bag. Use as a context manager; :attr:`sequence` replays its frames."""

    def __init__(self, path: str | Path, topics: EvalTopics, camera: Camera | None = None, progress: bool = True,
                 start: int = 0, max_frames: int | None = None):
        """``start``/``max_frames``: only images ``start`` .. ``start + max_frames - 1`` (in log order) are frames."""
        if start < 0:
            raise BagError(f"--start must be >= 0, got {start}")
        if max_frames is not None and max_frames < 1:
            raise BagError(f"--max-frames must be >= 1, got {max_frames}")
        self.path = Path(path)
        self.topics = topics
        self.override_camera = camera
        self.progress = progress
        self.start = start
        self.max_frames = max_frames
        self._reader: AnyReader | None = None

    # ----------------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> BagSource:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            try:
                reader.close()
            except READ_ERRORS:
                pass

    @contextmanager
    def _reading(self, what: str):
        """Turn a storage-level failure into a BagError that names the bag and what was being read."""
        try:
            yield
        except BagError:
            raise
        except READ_ERRORS as err:
            raise BagError(
                f"cannot read {what} from bag {self.path}: {type(err).__name__}: {err} "
                "(the file looks truncated or corrupt)"
            ) from err

    def open(self) -> None:
        written = self.path.with_suffix("") / self.path.name
        if not self.path.exists() and self.path.suffix in (".mcap", ".db3") and written.is_file():
            self.path = written  # `bag convert ... OUT.mcap` writes the rosbag2 directory OUT/ holding OUT.mcap
        if not self.path.exists():
            raise BagError(f"bag not found: {self.path}")
        paths = sorted(self.path.glob("*.bag")) if self.path.is_dir() and not _is_rosbag2_dir(self.path) else []
        with self._reading("the index"):
            reader = AnyReader(paths or [self.path])
            reader.open()
        self._reader = reader
        try:
            self._validate_topics()
            self._build_index()
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------------------------------- validation
    def _topic_table(self) -> str:
        rows = sorted({(c.topic, m.short_type(c.msgtype)) for c in self._reader.connections})
        return ", ".join(f"{topic} [{kind}]" for topic, kind in rows) or "(no topics at all)"

    def _connections(self, topic: str, allowed: tuple[str, ...], role: str) -> list:
        found = [c for c in self._reader.connections if c.topic == topic]
        if not found:
            raise BagError(f"bag {self.path} has no {role} topic {topic!r}; it has: {self._topic_table()}")
        wrong = sorted({m.short_type(c.msgtype) for c in found if m.short_type(c.msgtype) not in _short(allowed)})
        if wrong:
            raise BagError(
                f"{role} topic {topic!r} in bag {self.path} carries {', '.join(wrong)}, expected "
                f"{' or '.join(_short(allowed))}"
            )
        return found

    def _validate_topics(self) -> None:
        topics = self.topics
        self.image_connections = self._connections(topics.image, m.IMAGE_TYPES, "image")
        self.depth_connections = (
            self._connections(topics.depth, m.IMAGE_TYPES, "depth") if topics.depth is not None else []
        )
        self.gt_connections = (
            self._connections(topics.ground_truth, (*m.POSE_TYPES, m.TF_MESSAGE), "ground-truth")
            if topics.ground_truth
            else []
        )
        if self.override_camera is not None:
            self.info_connections = []
            return
        info_topic = topics.camera_info or self._guess_camera_info_topic()
        if info_topic is None:
            raise BagError(
                f"bag {self.path} has no sensor_msgs/CameraInfo topic for {topics.image!r} (it has: "
                f"{self._topic_table()}); pass --camera-info-topic, or --camera-yaml with a ROS camera_calibration "
                "YAML file"
            )
        self.topics.camera_info = info_topic
        self.info_connections = self._connections(info_topic, (m.CAMERA_INFO,), "camera-info")

    def _guess_camera_info_topic(self) -> str | None:
        """The image topic's sibling ``camera_info`` (image_transport convention), else the only CameraInfo topic."""
        info_type = m.short_type(m.CAMERA_INFO)
        infos = sorted({c.topic for c in self._reader.connections if m.short_type(c.msgtype) == info_type})
        namespace = self.topics.image.rstrip("/").rsplit("/", 1)[0]
        for base in (namespace, namespace.rsplit("/", 1)[0]):
            if f"{base}/camera_info" in infos:
                return f"{base}/camera_info"
        return infos[0] if len(infos) == 1 else None

    # ----------------------------------------------------------------------------------------- indexing
    def _index(self, connections: list, role: str, keep=None) -> list:
        """One pass over a topic: (log ns, rank, header stamp ns) per message, plus ``keep(msg)`` values."""
        out, kept = [], []
        last_log, rank = None, 0
        expected = sum(c.msgcount for c in connections)
        bar = tqdm(total=expected or None, desc=f"index {role}", unit="msg", disable=not self.progress, leave=False)
        with self._reading(f"{role} messages"), bar:
            for connection, log_ns, raw in self._reader.messages(connections=connections):
                bar.update(1)
                msg = self._reader.deserialize(raw, connection.msgtype)
                rank = rank + 1 if log_ns == last_log else 0
                last_log = log_ns
                stamp_ns = m.stamp_to_ns(msg.header.stamp) if hasattr(msg, "header") else log_ns  # TFMessage: none
                out.append(_Index(log_ns, rank, stamp_ns))
                if keep is not None:
                    kept.append(keep(msg, connection))
        if expected and len(out) < expected:
            raise BagError(
                f"bag {self.path} is truncated: its index lists {expected} {role} messages on "
                f"{connections[0].topic!r} but only {len(out)} could be read"
            )
        return (out, kept) if keep is not None else out

    def _build_index(self) -> None:
        topic = self.topics.image
        self.image_index = self._index(self.image_connections, "image")
        if not self.image_index:
            raise BagError(f"image topic {topic!r} in bag {self.path} holds no messages")
        self.images_in_bag = len(self.image_index)
        if self.start >= self.images_in_bag:
            raise BagError(f"--start {self.start} is past the last of the {self.images_in_bag} images on {topic!r} "
                           f"in bag {self.path}")
        stop = None if self.max_frames is None else self.start + self.max_frames
        self.image_index = self.image_index[self.start : stop]
        stamps = np.array([entry.stamp_ns for entry in self.image_index], dtype=np.int64)
        bad = np.flatnonzero(np.diff(stamps) <= 0)
        if bad.size:
            i = int(bad[0])
            raise BagError(
                f"image stamps on {topic!r} in bag {self.path} are not strictly increasing: message {i + 1} has "
                f"header stamp {stamps[i + 1] * 1e-9:.9f} s after {stamps[i] * 1e-9:.9f} s"
            )
        self.depth_index = self._index(self.depth_connections, "depth") if self.depth_connections else []
        self.depth_index.sort(key=lambda entry: entry.stamp_ns)
        self._depth_stamps = np.array([entry.stamp_ns for entry in self.depth_index], dtype=np.int64)
        if self.depth_connections and not self.depth_index:
            raise BagError(f"depth topic {self.topics.depth!r} in bag {self.path} holds no messages")
        self.cameras: list[tuple[_Index, Camera]] = []
        if self.info_connections:
            index, cameras = self._index(self.info_connections, "camera-info", keep=self._camera_from_info)
            if not index:
                raise BagError(
                    f"camera-info topic {self.topics.camera_info!r} in bag {self.path} holds no messages; "
                    "pass --camera-yaml with a ROS camera_calibration YAML file"
                )
            self.cameras = list(zip(index, cameras, strict=True))
        # Lookups per frame: by identical stamp, else by log time (cameras are in log order).
        self._camera_by_stamp: dict[int, Camera] = {}
        for info, camera in self.cameras:
            self._camera_by_stamp.setdefault(info.stamp_ns, camera)
        self._camera_log_ns = np.array([info.log_ns for info, _ in self.cameras], dtype=np.int64)
        self.ground_truth = self._read_ground_truth() if self.gt_connections else None

    def _camera_from_info(self, msg, connection) -> Camera:
        if not hasattr(msg, "k"):  # ROS 1 spells the matrices K, D
            msg = SimpleNamespace(
                width=msg.width, height=msg.height, k=msg.K, d=msg.D, distortion_model=msg.distortion_model
            )
        try:
            return Camera.from_camera_info(camera_info_to_dict(msg))
        except (InputError, CameraError) as err:
            raise BagError(f"CameraInfo on {connection.topic!r} in bag {self.path} is unusable: {err}") from None

    def _read_ground_truth(self) -> Trajectory:
        topic, child = self.topics.ground_truth, self.topics.gt_child_frame
        index, per_message = self._index(
            self.gt_connections, "ground-truth", keep=lambda msg, c: _poses(msg, c, topic, child)
        )
        if not index:
            raise BagError(f"ground-truth topic {topic!r} in bag {self.path} holds no messages")
        poses = [pose for poses in per_message for pose in poses]
        if not poses:  # a TF topic without our child frame
            children = sorted({t.child_frame_id for c in self.gt_connections for t in self._tf_transforms(c)})
            raise BagError(
                f"ground-truth topic {topic!r} in bag {self.path} has no transform with child frame {child!r} "
                f"(pass --gt-child-frame; child frames there: {', '.join(children) or 'none'})"
            )
        stamps = np.array([stamp for stamp, _ in poses])
        order = np.argsort(stamps, kind="stable")
        stamps, matrices = stamps[order], np.array([pose for _, pose in poses])[order]
        unique = np.concatenate([[True], np.diff(stamps) > 0])  # keep the first pose of duplicated stamps
        return Trajectory(stamps[unique], matrices[unique])

    def _tf_transforms(self, connection) -> Iterator:
        with self._reading("ground-truth messages"):
            for c, _, raw in self._reader.messages(connections=[connection]):
                yield from self._reader.deserialize(raw, c.msgtype).transforms

    # ----------------------------------------------------------------------------------------- frames
    @property
    def image_stamps(self) -> np.ndarray:
        """Header stamps of the image messages in seconds (the node's formula: sec + nanosec * 1e-9)."""
        return np.array([_ns_to_seconds(entry.stamp_ns) for entry in self.image_index])

    def camera_for(self, i: int) -> Camera:
        """The calibration the node would hold for image ``i``: the CameraInfo with the same stamp, else the
        latest one logged before the image, else the first one."""
        if self.override_camera is not None:
            return self.override_camera
        entry = self.image_index[i]
        if entry.stamp_ns in self._camera_by_stamp:
            return self._camera_by_stamp[entry.stamp_ns]
        before = int(np.searchsorted(self._camera_log_ns, entry.log_ns, side="right")) - 1
        return self.cameras[max(before, 0)][1]

    def _message_at(self, connections: list, entry: _Index, role: str):
        with self._reading(f"a {role} message at {entry.log_ns * 1e-9:.9f} s"):
            found = self._reader.messages(connections=connections, start=entry.log_ns, stop=entry.log_ns + 1)
            for rank, (connection, _, raw) in enumerate(found):
                if rank == entry.rank:
                    return self._reader.deserialize(raw, connection.msgtype)
        raise BagError(f"bag {self.path}: the {role} message logged at {entry.log_ns} ns disappeared while reading")

    def depth_for(self, i: int) -> np.ndarray | None:
        """Depth with the image's stamp (or nearest within depth_max_dt), as float32 metres; None if none."""
        if not self.depth_index:
            return None
        stamp = self.image_index[i].stamp_ns
        right = min(int(np.searchsorted(self._depth_stamps, stamp)), len(self._depth_stamps) - 1)
        candidates = {right, max(right - 1, 0)}
        best = self.depth_index[min(candidates, key=lambda j: (abs(int(self._depth_stamps[j]) - stamp), j))]
        if abs(best.stamp_ns - stamp) > self.topics.depth_max_dt * 1e9:
            return None
        msg = self._message_at(self.depth_connections, best, "depth")
        try:
            return depth_from_msg(msg)
        except InputError as err:
            raise BagError(f"depth on {self.topics.depth!r} at {best.stamp_ns * 1e-9:.9f} s: {err}") from None

    def decode_frame(self, i: int, msg) -> Frame:
        """Image message ``i`` -> Frame, exactly as the node decodes it."""
        entry = self.image_index[i]
        try:
            image = vo_image_from_msg(msg)
        except InputError as err:
            raise BagError(f"image {i} on {self.topics.image!r} at {entry.stamp_ns * 1e-9:.9f} s: {err}") from None
        camera = self.camera_for(i)
        if image.shape[:2] != (camera.height, camera.width):
            raise BagError(
                f"image {i} on {self.topics.image!r} is {image.shape[1]}x{image.shape[0]} but the calibration "
                f"({'--camera-yaml' if self.override_camera is not None else self.topics.camera_info}) says "
                f"{camera.width}x{camera.height}"
            )
        depth = self.depth_for(i)
        if depth is not None and depth.shape != image.shape[:2]:
            raise BagError(
                f"depth for image {i} is {depth.shape[1]}x{depth.shape[0]}, the image {image.shape[1]}x{image.shape[0]}"
            )
        return Frame(i, _ns_to_seconds(entry.stamp_ns), image, camera, depth)

    def frame(self, i: int) -> Frame:
        return self.decode_frame(i, self._message_at(self.image_connections, self.image_index[i], "image"))

    def frames(self) -> Iterator[Frame]:
        """All frames in log order, one sequential pass over the image topic."""
        with self._reading("image messages"):
            for i, (connection, _, raw) in enumerate(self._reader.messages(connections=self.image_connections)):
                if i < self.start:
                    continue
                if i - self.start >= len(self.image_index):
                    break
                yield self.decode_frame(i - self.start, self._reader.deserialize(raw, connection.msgtype))

    @property
    def windowed(self) -> bool:
        """Whether ``start``/``max_frames`` select part of the images."""
        return len(self.image_index) < self.images_in_bag

    def raw_stream(self) -> Iterator[tuple[str, str, int, bytes]]:
        """(role, msgtype, log ns, CDR bytes) of the image, camera-info and depth messages in log order: what a
        player republishes (ROS 1 messages are converted to CDR).  With ``start``/``max_frames``: the selected
        images, and the other messages logged from ``WINDOW_MARGIN_S`` before the first to as long after the last."""
        roles = {id(c): "image" for c in self.image_connections}
        roles.update({id(c): "camera_info" for c in self.info_connections})
        roles.update({id(c): "depth" for c in self.depth_connections})
        connections = self.image_connections + self.info_connections + self.depth_connections
        ros1 = not self._reader.is2
        margin = int(WINDOW_MARGIN_S * 1e9)
        first, last = self.image_index[0].log_ns - margin, self.image_index[-1].log_ns + margin
        image = -1
        with self._reading("messages"):
            for connection, log_ns, raw in self._reader.messages(connections=connections):
                if self.windowed:
                    if roles[id(connection)] == "image":
                        image += 1
                        if not 0 <= image - self.start < len(self.image_index):
                            continue
                    elif not first <= log_ns <= last:
                        continue
                data = bytes(self._reader.typestore.ros1_to_cdr(raw, connection.msgtype)) if ros1 else bytes(raw)
                yield roles[id(connection)], connection.msgtype, log_ns, data

    @property
    def sequence(self) -> BagSequence:
        return BagSequence(self)

    def summary(self) -> dict:
        """What was read, for the report: topics, message counts, time span."""
        stamps = self.image_stamps
        return {
            "bag": str(self.path),
            "image_topic": self.topics.image,
            "image_type": m.short_type(self.image_connections[0].msgtype),
            "camera_info": "--camera-yaml" if self.override_camera is not None else self.topics.camera_info,
            "depth_topic": self.topics.depth,
            "ground_truth_topic": self.topics.ground_truth,
            "images": len(self.image_index),
            "images_in_bag": self.images_in_bag,
            "start": self.start,
            "depth_images": len(self.depth_index),
            "image_span_s": [float(stamps[0]), float(stamps[-1])],
        }


class BagSequence(Sequence):
    """A bag's image topic as a datasets.Sequence, so the same replay code runs on bags and dataset folders."""

    gt_max_dt = 0.02

    def __init__(self, source: BagSource):
        self.source = source
        super().__init__(
            name=source.path.name,
            camera=source.camera_for(0),
            timestamps=source.image_stamps,
            ground_truth=source.ground_truth,
            has_depth=bool(source.depth_index),
        )

    def __getitem__(self, i: int) -> Frame:
        n = len(self)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"sequence indices must be integers, got {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range for a bag of {n} images")
        return self.source.frame(int(i) % n)

    def __iter__(self) -> Iterator[Frame]:
        return self.source.frames()


def _short(types: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(m.short_type(t) for t in types)


def _ns_to_seconds(ns: int) -> float:
    return (ns // 1_000_000_000) + (ns % 1_000_000_000) * 1e-9


def _poses(msg, connection, topic: str, child: str) -> list[tuple[float, np.ndarray]]:
    """(stamp, T_world_cam) of one ground-truth message; for /tf only the transforms to ``child``."""
    try:
        if m.short_type(connection.msgtype) == m.short_type(m.TF_MESSAGE):
            return [m.pose_from_msg(t, m.TRANSFORM_STAMPED) for t in msg.transforms if t.child_frame_id == child]
        return [m.pose_from_msg(msg, connection.msgtype)]
    except ValueError as err:
        raise BagError(f"ground-truth message on {topic!r}: {err}") from None


def _is_rosbag2_dir(path: Path) -> bool:
    return (path / "metadata.yaml").is_file() or any(path.glob("*.db3")) or any(path.glob("*.mcap"))
