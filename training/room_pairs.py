"""Training pairs with real 3D viewpoint change: crops of two views of a synthetic room.

A homography pair shows one plane from two directions.  Relative pose (the benchmarks, the odometry) sees scenes
with depth: several planes, occlusions, parallax, scale changing across the image.  The room of
:mod:`silk_ros.datasets.synthetic` (walls, floor, ceiling, boxes; exact ray casting) papered with *training*
photos gives such pairs with exact correspondences from the rendered depth
(:func:`training.correspondence.depth_correspondences`).  The faces are tiled with the photos at about their own
resolution (``TEXELS_PER_METRE``), so surfaces are as sharp as the photos; the room of the datasets stretches one
photo over a whole wall, which a detector would learn as blur.  Cameras are drawn as the pose validation draws them
(:func:`training.pose_check.camera_pair`: 0.2-0.7 m apart, looking at about the same point), whose rooms use the
validation photos only.  Each view is a ``crop x crop`` window of a virtual pinhole camera (focal 256-512 px,
the odometry's and the benches' working sizes): view 0 anywhere in a 4:3 image, view 1 around where view 0's
centre lands.
"""

from __future__ import annotations

import cv2
import numpy as np

from silk_ros.datasets.synthetic import TexturedQuad, build_room, render, render_depth, render_image
from silk_ros.geometry.camera import Camera
from silk_ros.geometry.pose import invert_pose, transform_points

from .config import PhotometricConfig
from .correspondence import OCCLUSION_TOLERANCE, DepthPairGeometry
from .data import photometric
from .pose_check import camera_pair

__all__ = ["TEXELS_PER_METRE", "TILE", "FOCAL_RANGE", "RoomPairSource", "tile_photos"]

#: Texture resolution of the training rooms: a photo tile (``TILE``, landscape) spans 1.9 x 1.25 m.
TEXELS_PER_METRE = 256
TILE = (480, 320)
#: Photos per room: an 8 x 8 x 3 m room with three boxes takes ~120 tiles; fewer rooms, each photo in one.
ROOMS = 4
#: Virtual focal length (px) of the full 4:3 image a crop is cut from: 320x240 to 640x480 at 0.8 x width.
FOCAL_RANGE = (256.0, 512.0)
#: View 1's window is centred this far (a fraction of the crop, uniform per axis) from view 0's centre point.
CENTRE_JITTER = 0.125
_ATTEMPTS = 20


def tile_photos(photos: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """A ``height x width`` grey texture of ``TILE``-sized photo tiles (portrait photos turned), row by row, the
    photos taken in turn from the list."""
    texture = np.empty((height, width), np.uint8)
    k = 0
    for top in range(0, height, TILE[1]):
        for left in range(0, width, TILE[0]):
            photo = photos[k % len(photos)]
            k += 1
            if photo.shape[0] > photo.shape[1]:
                photo = cv2.rotate(photo, cv2.ROTATE_90_CLOCKWISE)
            tile = cv2.resize(photo, TILE, interpolation=cv2.INTER_AREA)
            part = texture[top:top + TILE[1], left:left + TILE[0]]
            part[:] = tile[:part.shape[0], :part.shape[1]]
    return texture


class RoomPairSource:
    """Rooms papered with disjoint groups of the training photos (built on first use); pairs drawn from a given
    generator, so a sampler that seeds it per step resumes exactly."""

    def __init__(self, images: list[np.ndarray], crop: int, border: int, seed: int):
        if len(images) < ROOMS:
            raise ValueError(f"room pairs need at least {ROOMS} training photos, got {len(images)}")
        self.images, self.crop, self.border, self.seed = images, crop, border, seed
        order = np.random.default_rng([seed, 0x5EED]).permutation(len(images))
        self.groups = [order[r::ROOMS] for r in range(ROOMS)]
        self._rooms: dict[int, list[TexturedQuad]] = {}

    def room(self, index: int) -> list[TexturedQuad]:
        """Room ``index``: the datasets' geometry, its faces tiled with this room's photos (built on first use)."""
        if index not in self._rooms:
            rng = np.random.default_rng([self.seed, index])
            tiles = [self.images[i] for i in self.groups[index]]
            quads = []
            for k, quad in enumerate(build_room(rng)):
                size = (int(np.clip(np.linalg.norm(quad.u) * TEXELS_PER_METRE, 32, 2048)),
                        int(np.clip(np.linalg.norm(quad.v) * TEXELS_PER_METRE, 32, 2048)))
                texture = tile_photos(tiles[k % len(tiles):] + tiles[:k % len(tiles)], *size)
                quads.append(TexturedQuad(quad.origin, quad.u, quad.v, texture[:, :, None], quad.shade))
            self._rooms[index] = quads
        return self._rooms[index]

    def _window(self, focal: float, left: float, top: float) -> Camera:
        """A ``crop``-sized window whose top-left pixel sits at (left, top) of a virtual image with its principal
        point at the origin."""
        return Camera.from_intrinsics(focal, focal, -left, -top, self.crop, self.crop)

    def pair(self, rng: np.random.Generator, photo: PhotometricConfig
             ) -> tuple[np.ndarray, np.ndarray, DepthPairGeometry]:
        """(view0, view1: float32 [0, 1] after ``photo`` augmentation, what relates them); view 1 sees view 0's
        centre point unoccluded."""
        quads = self.room(int(rng.integers(len(self.groups))))
        half = (self.crop - 1) / 2.0
        for _ in range(_ATTEMPTS):
            pose0, pose1 = camera_pair(rng)
            focal = rng.uniform(*FOCAL_RANGE)
            width, height = focal / 0.8, 0.75 * focal / 0.8
            left = rng.uniform(-width / 2, width / 2 - self.crop)
            top = rng.uniform(-height / 2, height / 2 - self.crop)
            camera0 = self._window(focal, left, top)
            depth0 = render_depth(quads, camera0, pose0)
            centre_depth = float(depth0[int(half), int(half)])
            t_1_0 = invert_pose(pose1) @ pose0
            point = transform_points(t_1_0, camera0.backproject([[half, half]], [centre_depth]))[0]
            if not np.isfinite(centre_depth) or point[2] <= 0.1:
                continue
            jitter = rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, 2) * self.crop
            centre1 = self._window(focal, 0.0, 0.0).project(point[None])[0]  # in the virtual image of view 1
            camera1 = self._window(focal, *(centre1 - half + jitter))
            image1, depth1 = render(quads, camera1, pose1)
            seen = float(depth1[int(round(half - jitter[1])), int(round(half - jitter[0]))])
            if not abs(seen - point[2]) <= OCCLUSION_TOLERANCE * point[2]:
                continue  # view 0's centre is hidden from view 1
            image0 = render_image(quads, camera0, pose0)
            views = (cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0 for image in (image0, image1))
            view0, view1 = (photometric(view, rng, photo) for view in views)
            return view0, view1, DepthPairGeometry(depth0, depth1, camera0, camera1, t_1_0)
        raise RuntimeError(f"no room pair with a shared view in {_ATTEMPTS} camera draws")
