"""Train a small ORB vocabulary in DBoW2's text format (what ORB-SLAM3 loads as ``ORBvoc.txt``) on training photos.

Why our own: ORB-SLAM3 needs a bag-of-words vocabulary to run at all, the published ``ORBvoc.txt`` was trained on
other people's images (and is a 139 MB download), and a peer in ``silk-vo bench vo`` must not have seen the
benchmark sequences. This trains one on ``../shared/data/train`` (BSDS500 and scikit-image photos, none of them
from a benchmark sequence; a path under ``sequences/`` is refused).

How (as DBoW2 does it): ORB descriptors (OpenCV ORB, the same rBRIEF pattern and bit layout as ORB-SLAM3's
extractor, its pyramid of 8 levels at 1.2), hierarchical k-majority clustering in Hamming space (k-means++
seeding, bitwise-majority centres) to depth ``L`` with ``k`` children per node, TF-IDF word weights
(IDF = log(images / images containing the word)) and L1 scoring. File: a header ``k L scoring weighting`` and one
line per node (parent id, leaf flag, 32 descriptor bytes, weight), parents before children.

    python -m training.orb_vocabulary --out runs/bench/orb_vocabulary.txt
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp")
DESCRIPTOR_BYTES = 32
TF_IDF, L1_NORM = 0, 0  # DBoW2's WeightingType / ScoringType values
KMEANS_ITERATIONS = 12
CHUNK = 65536
SEED_SAMPLE = 20000


@dataclass
class Node:
    """One vocabulary node: its centre descriptor, children (node ids) and, for a leaf, its IDF weight."""

    descriptor: np.ndarray
    parent: int
    children: list[int] = field(default_factory=list)
    weight: float = 0.0


def training_images(roots: list[Path]) -> list[Path]:
    """Every image under ``roots``; refuses benchmark sequences (a folder named ``sequences`` in the path)."""
    images = []
    for root in roots:
        if "sequences" in root.resolve().parts:
            raise SystemExit(f"{root}: benchmark sequences must not train the vocabulary")
        images += sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise SystemExit(f"no images under {', '.join(map(str, roots))}")
    return images


def orb_descriptors(path: Path, features: int) -> np.ndarray:
    """ORB descriptors of one photo (uint8, N x 32) with ORB-SLAM3's pyramid (8 levels, scale 1.2)."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    orb = cv2.ORB_create(nfeatures=features, scaleFactor=1.2, nlevels=8, edgeThreshold=19, patchSize=31,
                         fastThreshold=20)
    _, descriptors = orb.detectAndCompute(image, None)
    return np.zeros((0, DESCRIPTOR_BYTES), np.uint8) if descriptors is None else descriptors


def hamming(bits: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Hamming distances (N x K) between unpacked bit rows: |a| + |b| - 2 a.b, as one float matrix product."""
    a, b = bits.astype(np.float32), centres.astype(np.float32)
    return a.sum(1, keepdims=True) + b.sum(1)[None, :] - 2.0 * (a @ b.T)


def _assign(bits: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.concatenate([hamming(bits[i:i + CHUNK], centres).argmin(1) for i in range(0, len(bits), CHUNK)])


def _seed(bits: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (as DBoW2): each next centre drawn with probability proportional to squared distance
    (on a sample of at most ``SEED_SAMPLE`` descriptors: the root holds all of them)."""
    if len(bits) > SEED_SAMPLE:
        bits = bits[rng.choice(len(bits), SEED_SAMPLE, replace=False)]
    centres = [bits[rng.integers(len(bits))]]
    nearest = hamming(bits, centres[0][None]).ravel()
    for _ in range(1, k):
        weights = nearest**2
        if weights.sum() <= 0:
            break
        centres.append(bits[rng.choice(len(bits), p=weights / weights.sum())])
        nearest = np.minimum(nearest, hamming(bits, centres[-1][None]).ravel())
    return np.stack(centres)


def k_majority(bits: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cluster unpacked descriptors into at most ``k`` groups; returns (centres, label per descriptor)."""
    centres = _seed(bits, k, rng)
    labels = _assign(bits, centres)
    for _ in range(KMEANS_ITERATIONS):
        kept = [c for c in range(len(centres)) if np.any(labels == c)]
        centres = np.stack([(bits[labels == c].mean(0) >= 0.5).astype(np.uint8) for c in kept])
        new = _assign(bits, centres)
        if np.array_equal(new, labels):
            break
        labels = new
    return centres, labels


def build_tree(bits: np.ndarray, k: int, depth: int, seed: int = 0) -> list[Node]:
    """The vocabulary tree, breadth first (node 0 is the root; parents always precede their children)."""
    rng = np.random.default_rng(seed)
    nodes = [Node(np.zeros(bits.shape[1], np.uint8), -1)]
    level = [(0, np.arange(len(bits)))]
    for _ in range(depth):
        below = []
        for parent, members in level:
            if len(members) <= k:  # as DBoW2: few descriptors become one leaf each
                groups = [(bits[m], np.array([m])) for m in members]
            else:
                centres, labels = k_majority(bits[members], k, rng)
                groups = [(centres[c], members[labels == c]) for c in range(len(centres))]
            for centre, group in groups:
                nodes[parent].children.append(len(nodes))
                nodes.append(Node(centre, parent))
                if len(group) > 1:
                    below.append((len(nodes) - 1, group))
        level = below
    return nodes


def transform(nodes: list[Node], bits: np.ndarray) -> np.ndarray:
    """The leaf (node id) each descriptor descends to, choosing the nearest child at every level (as DBoW2)."""
    inner = np.array([bool(node.children) for node in nodes])
    current = np.zeros(len(bits), np.int64)
    while True:
        active = np.flatnonzero(inner[current])
        if not len(active):
            return current
        for parent in np.unique(current[active]):
            rows = active[current[active] == parent]
            children = nodes[parent].children
            centres = np.stack([nodes[c].descriptor for c in children])
            current[rows] = np.asarray(children)[_assign(bits[rows], centres)]


def set_idf_weights(nodes: list[Node], bits: np.ndarray, image_of: np.ndarray) -> None:
    """IDF per leaf: log(images / images containing it); a leaf no image reaches keeps weight 0 (as DBoW2)."""
    leaves = transform(nodes, bits)
    pairs = np.unique(np.column_stack([image_of, leaves]), axis=0)
    words, counts = np.unique(pairs[:, 1], return_counts=True)
    images = len(np.unique(image_of))
    for leaf, n in zip(words, counts, strict=True):
        nodes[int(leaf)].weight = math.log(images / int(n))


def write_dbow2_text(nodes: list[Node], k: int, depth: int, path: Path) -> None:
    """DBoW2's text format; no newline after the last node (DBoW2's reader would read an empty line as a node)."""
    lines = [f"{k} {depth}  {L1_NORM} {TF_IDF}"]
    for node in nodes[1:]:
        packed = np.packbits(node.descriptor)
        leaf = 0 if node.children else 1
        lines.append(f"{node.parent} {leaf} {' '.join(str(int(b)) for b in packed)} {node.weight:.6g}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", nargs="+", default=["../shared/data/train"], help="folders of training photos")
    parser.add_argument("--out", default="runs/bench/orb_vocabulary.txt")
    parser.add_argument("--k", type=int, default=10, help="children per node")
    parser.add_argument("--depth", type=int, default=5, help="levels (up to k^depth words)")
    parser.add_argument("--features", type=int, default=1000, help="ORB features per photo (ORB-SLAM3's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    images = training_images([Path(p) for p in args.images])
    per_image = [np.unpackbits(orb_descriptors(p, args.features), axis=1) for p in images]
    per_image = [bits for bits in per_image if len(bits)]
    bits = np.concatenate(per_image)
    image_of = np.repeat(np.arange(len(per_image)), [len(b) for b in per_image])
    print(f"{len(bits)} ORB descriptors from {len(per_image)} photos; clustering k={args.k}, depth {args.depth}")
    nodes = build_tree(bits, args.k, args.depth, args.seed)
    set_idf_weights(nodes, bits, image_of)
    write_dbow2_text(nodes, args.k, args.depth, Path(args.out))
    words = sum(1 for n in nodes[1:] if not n.children)
    print(f"wrote {args.out}: {len(nodes) - 1} nodes, {words} words")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
