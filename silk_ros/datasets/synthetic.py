"""Synthetic sequence: a textured room rendered along a smooth, known camera path (no data files needed).

Why: ``make demo`` and the tests need a sequence with exact poses and depth on a machine without any
dataset. The scene is a closed room (walls, floor, ceiling) with a few boxes on the floor; every face carries
its own procedural texture (multi-octave noise plus random shapes, i.e. blobs, corners and edges that
keypoint detectors like) or, with ``texture_dir=``, crops of real photos.

Rendering is exact ray casting against the planar faces: colour is 2x2 supersampled (box filter, like a real
sensor integrating over the pixel), depth is the z-depth (metres along the optical axis) at each pixel centre.

World frame: z up, floor at z = 0. Poses are ``T_world_cam`` of the optical frame (x right, y down, z forward),
like every reader. The camera moves on a quarter circle of radius 1.5 m at ~1.4 m height, looking outwards
and slightly down, with a gentle vertical wave: ~5 cm and ~2 degrees per frame at the defaults.

Hard variants (issue 17: the failure cases robot users report): ``texture="low"`` paints the room like an
office, blank walls of one colour with sensor-level grain and a few sparse posters, door frames and skirting
boards; ``motion="fast"`` adds a head shake to the path (yaw +-26 degrees at 0.6 Hz, pitch +-6 degrees at 0.9 Hz:
up to ~100 degrees/s, ~10 degrees per frame at 10 fps); ``exposure`` (0..1, the fraction of the frame interval
the shutter is open) renders motion blur by averaging the views along the path during the exposure;
``depth_noise`` gives the depth images a structured-light sensor's errors (``kinect_depth_noise``), so RGB-D
odometry is not judged on exact depth.

Options: ``n_frames`` (50), ``width`` (320), ``height`` (240), ``fps`` (10), ``seed`` (0), ``texture_dir`` (None),
``texture`` ("rich"), ``motion`` ("smooth"), ``exposure`` (0.0), ``depth_noise`` (False), ``grey`` (False: BGR
images), ``with_depth`` (True), plus the base options (start, stride, max_frames, resize).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from silk_ros.datasets.base import DatasetError, Sequence, read_image
from silk_ros.geometry.camera import Camera
from silk_ros.geometry.trajectory import Trajectory

TEXELS_PER_METRE = 128
SUPERSAMPLING = 2
ROOM_HALF_SIZE = 4.0
ROOM_HEIGHT = 3.0
TEXTURES = ("rich", "low")
MOTIONS = ("smooth", "fast", "sweep")
BLUR_SUBFRAMES = 6  # views averaged over the exposure (supersampling 1 each: the blur itself antialiases)
SHAKE_YAW, SHAKE_YAW_HZ = 0.45, 0.6  # fast motion: yaw amplitude (rad) and frequency
SHAKE_PITCH, SHAKE_PITCH_HZ = 0.1, 0.9


@dataclass(frozen=True)
class TexturedQuad:
    """A rectangle ``origin + a * u + b * v`` (a, b in [0, 1]) with a texture spanning it."""

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    texture: np.ndarray  # uint8 BGR, rows along v, columns along u
    shade: float

    @property
    def normal(self) -> np.ndarray:
        n = np.cross(self.u, self.v)
        return n / np.linalg.norm(n)


Quads = tuple[TexturedQuad, ...] | list[TexturedQuad]


def procedural_texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Natural-looking BGR texture: a "dead leaves" image (overlapping discs, boxes and polygons whose sizes
    follow the r^-3 power law of natural scenes, so it looks alike at every distance and is full of corners and
    occlusion edges) over fractal-noise shading, plus a faint grain."""
    noise = np.zeros((height, width), np.float32)
    amplitude, total = 1.0, 0.0
    for wavelength in (256, 64, 16, 4):  # texels
        grid = rng.random((height // wavelength + 2, width // wavelength + 2)).astype(np.float32)
        noise += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        total += amplitude
        amplitude *= 0.5
    image = np.repeat((60.0 + 140.0 * noise / total)[..., None], 3, axis=2)
    r_min, r_max = 3.0, 64.0
    mean_area = np.pi * 2.0 * np.log(r_max / r_min) / (r_min**-2 - r_max**-2)
    count = int(2.5 * width * height / mean_area)
    radii = (r_min**-2 - rng.random(count) * (r_min**-2 - r_max**-2)) ** -0.5  # inverse CDF of p(r) ~ r^-3
    centres = rng.random((count, 2)) * [width, height]
    hues = rng.integers(0, 180, count)
    palette = cv2.cvtColor(
        np.stack([hues, rng.integers(10, 150, count), rng.integers(30, 250, count)], axis=1)
        .astype(np.uint8)[None], cv2.COLOR_HSV2BGR)[0]
    kinds = rng.integers(0, 3, count)
    for (x, y), r, colour, kind in zip(centres.astype(int), radii, palette.tolist(), kinds, strict=True):
        r = int(round(r))
        if kind == 0:
            cv2.circle(image, (int(x), int(y)), r, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            h = int(rng.integers(max(2, r // 2), 2 * r + 1))
            cv2.rectangle(image, (int(x) - r, int(y) - h // 2), (int(x) + r, int(y) + h // 2), colour, -1)
        else:
            points = np.array([x, y]) + rng.integers(-r, r + 1, (int(rng.integers(3, 6)), 2))
            cv2.fillPoly(image, [points.astype(np.int32)], colour, cv2.LINE_AA)
    image *= (0.75 + 0.5 * noise / total)[..., None]  # large-scale shading over the leaves
    image += rng.normal(0.0, 3.0, image.shape).astype(np.float32)  # fine grain, like paper or plaster
    return np.clip(image, 0, 255).astype(np.uint8)


def low_texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A painted office surface: one flat colour with a faint large-scale shading gradient and sensor-level grain,
    plus a few sparse objects (posters, a door frame, a skirting board) so a frame may hold a handful of corners
    or none at all."""
    base = cv2.cvtColor(np.uint8([[[rng.integers(0, 180), rng.integers(5, 40), rng.integers(150, 220)]]]),
                        cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)
    ramp = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :] * rng.uniform(-6, 6)
    ramp = ramp + np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None] * rng.uniform(-6, 6)
    image = base[None, None, :] + ramp[..., None] + rng.normal(0, 1.0, (height, width, 1)).astype(np.float32)
    if height > 2 * TEXELS_PER_METRE:  # walls: a skirting board along the bottom
        image[: TEXELS_PER_METRE // 10] *= 0.75
    for _ in range(int(rng.integers(0, 3))):  # posters / frames: a box with an inner picture of a few blobs
        w, h = (int(rng.uniform(0.3, 0.8) * TEXELS_PER_METRE) for _ in range(2))
        if w + 2 >= width or h + 2 >= height:
            continue
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        colour = rng.uniform(20, 230, 3)
        cv2.rectangle(image, (x, y), (x + w, y + h), colour.tolist(), -1)
        for _ in range(int(rng.integers(1, 5))):
            centre = (int(x + rng.uniform(0.2, 0.8) * w), int(y + rng.uniform(0.2, 0.8) * h))
            cv2.circle(image, centre, int(rng.uniform(0.05, 0.2) * min(w, h)), rng.uniform(0, 255, 3).tolist(), -1)
    if width > 2 * TEXELS_PER_METRE and rng.random() < 0.5:  # a door frame
        x = int(rng.integers(0, width - TEXELS_PER_METRE))
        w, h = int(0.9 * TEXELS_PER_METRE), int(2.0 * TEXELS_PER_METRE)
        cv2.rectangle(image, (x, 0), (x + w, min(h, height - 1)), (base * 0.6).tolist(), 6)
    return np.clip(image, 0, 255).astype(np.uint8)


def _photo_texture(photo: np.ndarray, width: int, height: int) -> np.ndarray:
    image = photo if photo.ndim == 3 else cv2.cvtColor(photo, cv2.COLOR_GRAY2BGR)
    # texture row 0 lies at b = 0, the bottom of a wall: flip so photos hang upright
    return cv2.flip(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), 0)


def build_room(
    rng: np.random.Generator, photos: list[np.ndarray] | None = None, texture: str = "rich"
) -> list[TexturedQuad]:
    """Walls, floor, ceiling (normals facing in) and three boxes on the floor (normals facing out); textured by
    ``photos`` when given, else procedurally (``texture``: "rich" dead leaves or "low" painted surfaces)."""
    paint = low_texture if texture == "low" else procedural_texture
    s, h = ROOM_HALF_SIZE, ROOM_HEIGHT
    faces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [
        (np.array([-s, s, 0.0]), np.array([2 * s, 0, 0]), np.array([0, 0, h])),  # north wall (y = +s)
        (np.array([s, -s, 0.0]), np.array([-2 * s, 0, 0]), np.array([0, 0, h])),  # south wall (y = -s)
        (np.array([s, s, 0.0]), np.array([0, -2 * s, 0]), np.array([0, 0, h])),  # east wall (x = +s)
        (np.array([-s, -s, 0.0]), np.array([0, 2 * s, 0]), np.array([0, 0, h])),  # west wall (x = -s)
        (np.array([-s, -s, 0.0]), np.array([0, 2 * s, 0]), np.array([2 * s, 0, 0])),  # floor, normal +z
        (np.array([-s, -s, h]), np.array([2 * s, 0, 0]), np.array([0, 2 * s, 0])),  # ceiling, normal -z
    ]
    for angle, size in ((0.35, 0.8), (0.95, 0.6), (1.45, 0.9)):  # boxes beyond the camera path, in its view
        centre = np.array([2.9 * np.cos(angle), 2.9 * np.sin(angle), 0.0])
        yaw = rng.uniform(0, np.pi / 2)
        ex = size * np.array([np.cos(yaw), np.sin(yaw), 0.0])
        ey = size * np.array([-np.sin(yaw), np.cos(yaw), 0.0])
        ez = np.array([0.0, 0.0, size * rng.uniform(0.8, 1.6)])
        c0 = centre - ex / 2 - ey / 2
        faces += [
            (c0, ex, ez),  # normal -ey
            (c0 + ex, ey, ez),  # normal +ex
            (c0 + ex + ey, -ex, ez),  # normal +ey
            (c0 + ey, -ey, ez),  # normal -ex
            (c0 + ez, ex, ey),  # top, normal +z
        ]
    light = np.array([0.4, 0.3, 0.87])
    quads = []
    for k, (origin, u, v) in enumerate(faces):
        width = int(np.clip(np.linalg.norm(u) * TEXELS_PER_METRE, 32, 2048))
        height = int(np.clip(np.linalg.norm(v) * TEXELS_PER_METRE, 32, 2048))
        texture = (
            _photo_texture(photos[k % len(photos)], width, height) if photos else paint(rng, width, height)
        )
        normal = np.cross(u, v) / np.linalg.norm(np.cross(u, v))
        quads.append(TexturedQuad(origin, u, v, texture, 0.6 + 0.4 * abs(float(normal @ light))))
    return quads


def camera_pose(s: float, time_s: float = 0.0, motion: str = "smooth") -> np.ndarray:
    """T_world_cam at path fraction ``s`` in [0, 1] (a quarter circle, looking outwards and slightly down);
    ``motion="fast"`` adds the head shake, a function of the time ``time_s`` (seconds) so its speed does not
    depend on the number of frames; ``motion="sweep"`` goes along the arc and back (a revisit: the way back runs up
    to 10 cm higher, as a hand-held camera never retraces its path exactly)."""
    lift = 0.0
    if motion == "sweep":
        s, lift = 1.0 - abs(1.0 - 2.0 * s), 0.05 * (1.0 - np.cos(np.pi * s))
    theta = 0.1 + 1.5 * s
    centre = np.array([1.5 * np.cos(theta), 1.5 * np.sin(theta), 1.4 + 0.15 * np.sin(2 * np.pi * s) + lift])
    look = theta + 0.25 * np.sin(np.pi * s)
    tilt = -0.25 + 0.1 * np.cos(3 * np.pi * s)
    if motion == "fast":
        look += SHAKE_YAW * np.sin(2 * np.pi * SHAKE_YAW_HZ * time_s)
        tilt += SHAKE_PITCH * np.sin(2 * np.pi * SHAKE_PITCH_HZ * time_s)
    forward = np.array([np.cos(look), np.sin(look), tilt])
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, :3] = np.column_stack([right, down, forward])
    pose[:3, 3] = centre
    return pose


def frame_pose(position: float, n_frames: int, fps: float = 10.0, motion: str = "smooth") -> np.ndarray:
    """T_world_cam at (fractional) frame ``position`` of an ``n_frames`` sequence: the path spans the frames, the
    shake runs in time."""
    return camera_pose(min(max(position / (n_frames - 1), 0.0), 1.0), position / fps, motion)


def camera_path(n_frames: int, fps: float = 10.0, motion: str = "smooth") -> np.ndarray:
    """(n, 4, 4) T_world_cam of the frames along :func:`camera_pose` (``frame_pose`` at integer positions, up to the
    last bit: ``linspace`` ends exactly at 1)."""
    return np.stack([camera_pose(s, i / fps, motion) for i, s in enumerate(np.linspace(0.0, 1.0, n_frames))])


def render(
    quads: Quads, camera: Camera, T_world_cam: np.ndarray, supersampling: int = SUPERSAMPLING
) -> tuple[np.ndarray, np.ndarray]:
    """(BGR uint8 image, float32 z-depth in metres) seen by ``camera`` at ``T_world_cam``."""
    return render_image(quads, camera, T_world_cam, supersampling), render_depth(quads, camera, T_world_cam)


def render_image(
    quads: Quads, camera: Camera, T_world_cam: np.ndarray, supersampling: int = SUPERSAMPLING
) -> np.ndarray:
    """BGR uint8 image, colour supersampled ``supersampling`` x ``supersampling`` per pixel (box filter)."""
    ss = supersampling
    offsets = (np.arange(ss) + 0.5) / ss - 0.5  # sub-pixel sample positions inside each pixel
    xs = (np.arange(camera.width)[:, None] + offsets[None, :]).ravel()
    ys = (np.arange(camera.height)[:, None] + offsets[None, :]).ravel()
    colour = _shade(quads, *_cast(quads, camera, T_world_cam, xs, ys))
    image = cv2.resize(colour.reshape(len(ys), len(xs), 3), (camera.width, camera.height), interpolation=cv2.INTER_AREA)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def render_depth(quads: Quads, camera: Camera, T_world_cam: np.ndarray) -> np.ndarray:
    """float32 z-depth in metres at each pixel centre."""
    depth, _, _, _ = _cast(quads, camera, T_world_cam, np.arange(camera.width, dtype=np.float64),
                           np.arange(camera.height, dtype=np.float64))
    return depth.reshape(camera.height, camera.width).astype(np.float32)


def _cast(quads: Quads, camera: Camera, T_world_cam: np.ndarray, xs: np.ndarray, ys: np.ndarray):
    """Nearest hit per pixel ray: (z-depth, quad index, a, b), all flattened row-major over (ys, xs)."""
    grid_x, grid_y = np.meshgrid(xs, ys)
    rays_cam = np.column_stack([(grid_x.ravel() - camera.cx) / camera.fx, (grid_y.ravel() - camera.cy) / camera.fy,
                                np.ones(grid_x.size)])
    rays = rays_cam @ T_world_cam[:3, :3].T  # z_cam = 1 per ray, so the hit parameter t is the z-depth
    centre = T_world_cam[:3, 3]
    best_t = np.full(len(rays), np.inf)
    best_q = np.full(len(rays), -1)
    best_a = np.zeros(len(rays))
    best_b = np.zeros(len(rays))
    for q, quad in enumerate(quads):
        n = quad.normal
        with np.errstate(divide="ignore", invalid="ignore"):  # rays parallel to a face give inf/nan: no hit
            t = ((quad.origin - centre) @ n) / (rays @ n)
            offset = centre - quad.origin
            a = (offset @ quad.u + t * (rays @ quad.u)) / (quad.u @ quad.u)
            b = (offset @ quad.v + t * (rays @ quad.v)) / (quad.v @ quad.v)
            hit = (t > 1e-6) & (t < best_t) & (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)
        best_t[hit], best_q[hit], best_a[hit], best_b[hit] = t[hit], q, a[hit], b[hit]
    return best_t, best_q, best_a, best_b


def _shade(quads: Quads, t: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bilinear texture lookup (pixel-centre texel convention) times the face's fixed diffuse shading."""
    colour = np.zeros((len(t), 3), np.float32)
    for index, quad in enumerate(quads):
        sel = np.flatnonzero(q == index)
        if sel.size == 0:
            continue
        tex = quad.texture.astype(np.float32)
        th, tw = tex.shape[:2]
        x = np.clip(a[sel] * tw - 0.5, 0, tw - 1)
        y = np.clip(b[sel] * th - 0.5, 0, th - 1)
        x0, y0 = np.minimum(x.astype(int), tw - 2), np.minimum(y.astype(int), th - 2)
        fx, fy = (x - x0)[:, None], (y - y0)[:, None]
        top = tex[y0, x0] * (1 - fx) + tex[y0, x0 + 1] * fx
        bottom = tex[y0 + 1, x0] * (1 - fx) + tex[y0 + 1, x0 + 1] * fx
        colour[sel] = (top * (1 - fy) + bottom * fy) * quad.shade
    return colour


@functools.lru_cache(maxsize=4)
def _scene(seed: int, texture_dir: str | None, texture: str = "rich") -> tuple[TexturedQuad, ...]:
    """The room for a seed (cached: building ~70k texture shapes takes a second, and tests reopen it)."""
    photos = None
    if texture_dir is not None:
        files = sorted(p for p in Path(texture_dir).rglob("*") if p.suffix.lower() in (".jpg", ".png", ".ppm"))
        if not files:
            raise DatasetError(f"no .jpg/.png/.ppm photos under texture_dir {texture_dir}")
        photos = [read_image(p) for p in files[:24]]
    quads = build_room(np.random.default_rng(seed), photos, texture)
    for quad in quads:
        quad.texture.setflags(write=False)  # shared between sequences
    return tuple(quads)


class SyntheticSequence(Sequence):
    """Rendered on demand: ``sequence[i]`` ray-casts frame i (~0.2 s at 320x240)."""

    def __init__(
        self,
        path: str | Path | None = None,
        n_frames: int = 50,
        width: int = 320,
        height: int = 240,
        fps: float = 10.0,
        seed: int = 0,
        texture_dir: str | Path | None = None,
        texture: str = "rich",
        motion: str = "smooth",
        exposure: float = 0.0,
        depth_noise: bool = False,
        grey: bool = False,
        with_depth: bool = True,
        **options,
    ):
        if n_frames < 2:
            raise DatasetError(f"a synthetic sequence needs n_frames >= 2, got {n_frames}")
        if fps <= 0:
            raise DatasetError(f"fps must be positive, got {fps}")
        if texture not in TEXTURES:
            raise DatasetError(f"texture must be one of {', '.join(TEXTURES)}, got {texture!r}")
        if motion not in MOTIONS:
            raise DatasetError(f"motion must be one of {', '.join(MOTIONS)}, got {motion!r}")
        if not 0.0 <= exposure <= 1.0:
            raise DatasetError(f"exposure is the fraction of the frame interval the shutter is open, 0..1: {exposure}")
        if texture_dir is not None and texture != "rich":
            raise DatasetError("texture_dir (photos on the walls) and texture='low' exclude each other")
        self.quads = _scene(int(seed), None if texture_dir is None else str(Path(texture_dir).resolve()), texture)
        self.motion, self.exposure, self.fps = motion, float(exposure), float(fps)
        self.grey = grey
        self.depth_noise, self._seed = bool(depth_noise), int(seed)
        # ~63 degree horizontal field of view, principal point at the image centre (pixel-centre convention).
        focal = 0.8 * width
        cam = Camera.from_intrinsics(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height)
        stamps = np.arange(n_frames) / fps
        self._poses = camera_path(n_frames, fps, motion)
        variant = "".join(f"-{v}" for v in (texture, motion) if v not in ("rich", "smooth"))
        super().__init__(f"synthetic/seed{seed}{variant}", cam, stamps, Trajectory(stamps, self._poses),
                         has_depth=with_depth, **options)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _render(self, source_index: int) -> tuple[np.ndarray, np.ndarray]:
        if source_index not in self._cache:
            if len(self._cache) > 4:  # consecutive access reads image then depth: a tiny cache suffices
                self._cache.pop(next(iter(self._cache)))
            pose = self._poses[source_index]
            blurred = self.exposure > 0
            image = self._blurred(source_index) if blurred else render_image(self.quads, self.source_camera, pose)
            self._cache[source_index] = image, render_depth(self.quads, self.source_camera, pose)
        return self._cache[source_index]

    def _blurred(self, index: int) -> np.ndarray:
        """The average of the views along the path while the shutter is open, centred on the frame's time
        (so the frame's ground-truth pose is the mid-exposure pose, as a camera driver stamps it)."""
        offsets = (np.linspace(0.0, 1.0, BLUR_SUBFRAMES) - 0.5) * self.exposure
        n_frames = len(self._poses)
        views = [render_image(self.quads, self.source_camera, frame_pose(index + o, n_frames, self.fps, self.motion), 1)
                 for o in offsets]
        return np.clip(np.mean(np.stack(views).astype(np.float32), axis=0) + 0.5, 0, 255).astype(np.uint8)

    def _read_image(self, source_index: int) -> np.ndarray:
        image = self._render(source_index)[0]
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if self.grey else image

    def _read_depth(self, source_index: int) -> np.ndarray | None:
        depth = self._render(source_index)[1]
        if not self.depth_noise:
            return depth
        return kinect_depth_noise(depth, np.random.default_rng((self._seed, source_index)))


def kinect_depth_noise(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``depth`` (metres) as a Kinect v1 measures it: axial noise of sigma 1.2 mm + 1.9 mm (z - 0.4 m)^2 (Nguyen et
    al. 2012), quantised to 1 mm, 2 % of the pixels missing (0)."""
    z = depth.astype(np.float64)
    z = z + rng.normal(size=z.shape) * (0.0012 + 0.0019 * (z - 0.4) ** 2)
    z = np.round(z * 1000.0) / 1000.0
    z[rng.random(z.shape) < 0.02] = 0.0
    return z.astype(np.float32)
