"""``python -m training.vo_check --weights candidate.pt``: the monocular odometry with a SiLK checkpoint on held-out
3D motion, the signal that picks which checkpoint may ship.

Validation F1 (BSDS homographies) keeps rising after the features stop improving on real viewpoint change, and the
benchmarks must not pick a checkpoint.  This check runs the odometry (``config/odometry.yaml``, monocular) on
synthetic rooms (``silk_ros.datasets.synthetic``) papered with the trainer's held-out validation photos: three
sweeps along an arc and back (a revisit), two smooth arcs and one with a head shake, 320x240 at 10 Hz.  Each
sequence runs once per RANSAC seed (``ransac_seed``: monocular runs are chaotic, one decision can change the scale
of everything after it); the figures are the median and worst Sim(3) ATE per sequence and the lost frames.
The rendered frames are cached (``--cache``), so a second checkpoint costs only the odometry.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from silk_ros.bench.design import VALIDATION_PHOTOS, DesignRoom, render_room, room_summary, run_room
from silk_ros.datasets.paths import shared_data_root
from silk_ros.evaluation.run_dataset import DEFAULT_CONFIG, load_config

__all__ = ["SEQUENCES", "run_check", "main"]

#: rendered and run by ``silk_ros.bench.design`` (the odometry's design set), on other paths than its rooms, so that
#: the checkpoint that ships is not picked on the runs the odometry's defaults were decided on
SEQUENCES = (
    DesignRoom(7, "sweep", 200), DesignRoom(8, "sweep", 200), DesignRoom(9, "sweep", 200),
    DesignRoom(1, "smooth", 150), DesignRoom(2, "fast", 150), DesignRoom(3, "smooth", 150),
)


def run_check(weights: str, config_path: Path = DEFAULT_CONFIG, seeds: tuple[int, ...] = (0, 1, 2),
              sequences: tuple[DesignRoom, ...] = SEQUENCES, data: Path | None = None,
              cache: Path | None = None) -> dict:
    """Per sequence: ATE (Sim(3), metres) and lost frames per seed, their median and worst; overall: the mean of the
    per-sequence medians and the total lost frames."""
    photos = (data or shared_data_root()) / VALIDATION_PHOTOS
    if not photos.is_dir():
        raise SystemExit(f"vo_check: no validation photos at {photos} (see ../shared/data/README.md)")
    config = load_config(config_path, mode="mono", weights=weights)
    results = {}
    for sequence in sequences:
        rendered = render_room(sequence, photos, depth=False, cache=cache)
        runs = [{k: run[k] for k in ("seed", "ate_m", "lost")}
                for run in (run_room(rendered, config, seed, sequence.name) for seed in seeds)]
        results[sequence.name] = room_summary(runs)
    return {
        "weights": weights,
        "seeds": list(seeds),
        "sequences": results,
        "mean_median_ate_m": float(np.mean([r["median_ate_m"] for r in results.values()])),
        "lost": sum(r["lost"] for r in results.values()),
    }


def markdown(report: dict) -> str:
    lines = [f"weights {report['weights']}, seeds {report['seeds']}", "",
             "| sequence | median ATE (m) | worst (m) | lost frames (all seeds) |", "|---|---|---|---|"]
    for name, r in report["sequences"].items():
        lines.append(f"| {name} | {r['median_ate_m']:.4f} | {r['worst_ate_m']:.4f} | {r['lost']} |")
    mean, lost = report["mean_median_ate_m"], report["lost"]
    lines.append(f"| **mean of medians, total lost** | **{mean:.4f}** | | **{lost}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.vo_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="silk-mu", help="SiLK weights: a file or the shipped name silk-mu")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="odometry YAML (default: the package's)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated RANSAC seeds, one run each")
    parser.add_argument("--sequences", default=None, help="comma-separated subset of the sequence names")
    parser.add_argument("--frames", type=int, default=None, help="cap every sequence (quick checks)")
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default ../shared/data)")
    parser.add_argument("--cache", default="runs/vo_check", help="folder caching the rendered frames ('': none)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    args = parser.parse_args(argv)
    sequences = SEQUENCES
    if args.sequences:
        wanted = set(args.sequences.split(","))
        unknown = wanted - {s.name for s in SEQUENCES}
        if unknown:
            parser.error(f"unknown sequences {sorted(unknown)}; known: {[s.name for s in SEQUENCES]}")
        sequences = tuple(s for s in SEQUENCES if s.name in wanted)
    if args.frames is not None:
        if args.frames < 2:
            parser.error("--frames must be at least 2")
        sequences = tuple(dataclasses.replace(s, frames=min(s.frames, args.frames)) for s in sequences)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    cache = Path(args.cache) if args.cache else None
    report = run_check(args.weights, args.config, seeds, sequences, args.data, cache)
    print(markdown(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
