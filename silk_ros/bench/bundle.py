"""``silk-vo bench bundle``: our local bundle adjustment (``silk_ros.odometry.bundle``) against GTSAM on the
problems the monocular odometry really poses.

Why: the issue asks whether a library solver (GTSAM's Levenberg-Marquardt on projection factors) should replace
the hand-written robust Levenberg-Marquardt with the Schur complement.  Both are judged on the same problems:
every ``BundleProblem`` that ``LandmarkMap.adjust`` hands to ``bundle.adjust_bundle`` while the monocular
odometry (default config/odometry.yaml, mode mono) runs a synthetic room textured with training photos
(``../shared/data/train/bsds500/val``, never benchmark data) is recorded (a deep copy, with the camera matrix,
the Huber scale and the iteration count), then solved again by each solver outside the odometry.

*gtsam* poses ours term for term: ``Pose3`` keyframes (T_world_kf) and ``Point3`` points,
``GenericProjectionFactorCal3_S2`` with an isotropic 1 px noise inside a Huber robust model (k = the same
threshold), the fixed keyframes held by priors of sigma 1e-8, a prior of sigma 3e4 on each point (our solver's
1e-9 ridge on the point blocks: keeps a point seen by one inlier determinate), the points eliminated first (as
the Schur complement does), its ``LevenbergMarquardtOptimizer`` with the same iteration count, then the same
second pass without the observations beyond 2 x threshold.  *gtsam-smart*: the same two passes with
``SmartProjectionPoseFactorCal3_S2`` (points triangulated and eliminated inside the factors; no robust model:
GTSAM's smart factors take a Gaussian one).  GTSAM is imported here only (``requirements-bench.txt``), never by
the odometry.

Figures per solver: the median reprojection error of each problem's inliers (observations within 2 x threshold,
in front of their camera), its median and mean over the problems, the inlier count, the Huber cost of every
observation (the same observations for every solver), milliseconds per problem; how far each GTSAM solution's
free keyframes are from ours; and their distance to the ground truth.  The fixed keyframes fix the gauge
(position, orientation and, monocular, scale) identically for every solver, so the solutions are compared
directly; for the ground truth the map is put into the world by the newest fixed keyframe (rotation, position)
and the distance between the window's two fixed keyframes (scale), the same transform for the initial guess and
every solution.  The synthetic path spans its frames, so more problems come from more rooms (``--seeds``) and
motions (``--motions``), not from more frames.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from silk_ros.bench.report import cpu_model_name, instruction_set
from silk_ros.datasets.paths import shared_data_root
from silk_ros.evaluation.run_dataset import DEFAULT_CONFIG, load_config
from silk_ros.geometry.pose import rotation_angle_deg
from silk_ros.odometry.bundle import BundleProblem, adjust_bundle, huber_cost, reprojection_errors

__all__ = ["add_arguments", "run", "Recorded", "Solution", "record_problems", "solve_ours", "solve_gtsam",
           "evaluate", "TEXTURE_DIR"]

#: the synthetic path spans the frames (a quarter circle): 50 frames are its default ~5 cm and ~2 degrees per frame;
#: more problems come from more rooms (seeds) and the head-shake motion, not from more frames
DEFAULT_FRAMES = 50
DEFAULT_SEEDS = "0,1,2"
DEFAULT_MOTIONS = "smooth,fast"
#: training photos (BSDS500 validation split) on the room's walls: not a benchmark sequence
TEXTURE_DIR = Path("train") / "bsds500" / "val"
#: our solver adds 1e-9 (1 / px^2) to every point block; GTSAM gets the same ridge as a prior of this sigma
POINT_PRIOR_SIGMA = 1.0 / np.sqrt(1e-9)
#: GTSAM's fixed keyframes: a prior this tight moves them by < 1e-12.  ``NonlinearEqualityPose3`` (a constrained
#: noise model, eliminated by QR instead of Cholesky) gave the same solutions 1.5-2x slower.
FIXED_POSE_SIGMA = 1e-8
SOLVERS = ("ours", "gtsam", "gtsam-smart")


@dataclass
class Recorded:
    """One call of ``bundle.adjust_bundle`` by the odometry, and the timestamps of its keyframes (NaN unknown)."""

    problem: BundleProblem
    K: np.ndarray
    threshold: float
    iterations: int
    timestamps: np.ndarray
    sequence: str = ""
    ground_truth: Any = None  # the sequence's Trajectory (exact poses)


@dataclass
class Solution:
    poses_world: np.ndarray  # (F, 4, 4)
    points_world: np.ndarray  # (P, 3)
    wall_ms: float  # the whole call
    optimize_ms: float  # the optimiser alone (ours: the same as wall_ms)
    iterations: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames of each synthetic sequence")
    parser.add_argument("--seeds", default=DEFAULT_SEEDS, help="comma-separated synthetic rooms (seeds)")
    parser.add_argument("--motions", default=DEFAULT_MOTIONS,
                        help="comma-separated synthetic camera motions (smooth; fast: the head shake; any other motion "
                        "silk_ros.datasets.synthetic knows)")
    parser.add_argument("--data", default=None, help="shared data folder (default ../shared/data): wall photos")
    parser.add_argument("--features", default="silk", help="front end (silk, orb, sift)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="odometry YAML")
    parser.add_argument("--solvers", default=",".join(SOLVERS), help="comma-separated: " + ", ".join(SOLVERS))
    parser.add_argument("--repeats", type=int, default=3,
                        help="solve every problem this many times per solver; the fastest time counts")


# ----------------------------------------------------------------------------------------- recording
def record_problems(frames: int, seed: int = 0, config_path: str | Path | None = DEFAULT_CONFIG,
                    features: str = "silk", texture_dir: str | Path | None = None, motion: str = "smooth"):
    """Run the monocular odometry on the synthetic room and record every bundle problem it solves.

    Returns ``(recorded, sequence, stats)``: the problems (deep copies, taken before the solver runs), the
    sequence (its ``ground_truth``) and the replay statistics."""
    from silk_ros.datasets import open_sequence
    from silk_ros.odometry import VisualOdometry, local_map, run_sequence

    if texture_dir is None:
        texture_dir = shared_data_root() / TEXTURE_DIR
    sequence = open_sequence("synthetic", None, n_frames=frames, seed=seed, texture_dir=str(texture_dir),
                             motion=motion, with_depth=False)
    config = load_config(config_path, features=features).replace(mode="mono")
    recorded: list[Recorded] = []
    candidates: list[Any] = []  # the keyframes the current adjust() may put into its problem
    original_adjust = local_map.LandmarkMap.adjust
    solver = local_map.bundle.adjust_bundle

    def adjust(self, window, *args, **kwargs):
        # the problem's keyframes: the window, and the covisible ones (an argument, or the map's own memory)
        lists = [window, getattr(self, "_memory", ()), *args, *kwargs.values()]
        candidates[:] = [k for group in lists if isinstance(group, (list, tuple, deque))
                         for k in group if hasattr(k, "pose_world")]
        try:
            return original_adjust(self, window, *args, **kwargs)
        finally:
            candidates.clear()

    def record(problem, K, threshold, iterations=10):
        stamps = np.full(len(problem.poses_world), np.nan)
        for f, pose in enumerate(problem.poses_world):
            for keyframe in candidates:
                if np.array_equal(keyframe.pose_world, pose):
                    stamps[f] = keyframe.timestamp
                    break
        recorded.append(Recorded(copy.deepcopy(problem), np.array(K, float), float(threshold), int(iterations),
                                 stamps, sequence.name, sequence.ground_truth))
        return solver(problem, K, threshold, iterations)

    vo = VisualOdometry(config)
    with mock.patch.object(local_map.LandmarkMap, "adjust", adjust), \
            mock.patch.object(local_map.bundle, "adjust_bundle", record):
        _, stats = run_sequence(vo, sequence, progress=False)
    return recorded, sequence, stats


# ----------------------------------------------------------------------------------------- solvers
def solve_ours(rec: Recorded) -> Solution:
    problem = copy.deepcopy(rec.problem)
    start = time.perf_counter()
    result = adjust_bundle(problem, rec.K, rec.threshold, rec.iterations)
    ms = 1e3 * (time.perf_counter() - start)
    return Solution(result.poses_world, result.points_world, ms, ms, result.iterations)


def solve_gtsam(rec: Recorded, smart: bool = False, ordering: str = "points-first") -> Solution:
    """GTSAM's Levenberg-Marquardt on the same problem and the same two passes as ``adjust_bundle``.

    ``smart``: ``SmartProjectionPoseFactorCal3_S2`` (one factor per point, the point triangulated and eliminated
    inside it, so only the poses are variables) instead of ``Point3`` variables and projection factors; smart
    factors take no robust model, so their first pass is plain least squares.  ``ordering`` (point variables
    only): "points-first" eliminates every point before the poses (the Schur complement, as ours does),
    "colamd" is GTSAM's default fill-reducing ordering."""
    import gtsam

    start = time.perf_counter()
    problem, K, k = rec.problem, rec.K, rec.threshold
    calibration = gtsam.Cal3_S2(K[0, 0], K[1, 1], K[0, 1], K[0, 2], K[1, 2])
    pixel_noise = gtsam.noiseModel.Isotropic.Sigma(2, 1.0)
    robust = gtsam.noiseModel.Robust.Create(gtsam.noiseModel.mEstimator.Huber.Create(k), pixel_noise)
    point_prior = gtsam.noiseModel.Isotropic.Sigma(3, POINT_PRIOR_SIGMA)
    pose_prior = gtsam.noiseModel.Isotropic.Sigma(6, FIXED_POSE_SIGMA)
    smart_params = gtsam.SmartProjectionParams(gtsam.LinearizationMode.HESSIAN,
                                               gtsam.DegeneracyMode.ZERO_ON_DEGENERACY)
    pose_key = [gtsam.symbol("x", f) for f in range(len(problem.poses_world))]
    point_key = [gtsam.symbol("l", p) for p in range(len(problem.points_world))]
    poses = problem.poses_world.astype(float).copy()
    points = problem.points_world.astype(float).copy()
    active = np.ones(len(problem.frame_index), bool)
    optimize_s, iterations = 0.0, 0
    for _ in range(2):
        graph = gtsam.NonlinearFactorGraph()
        values = gtsam.Values()
        for f, key in enumerate(pose_key):
            values.insert(key, gtsam.Pose3(poses[f]))
            if problem.fixed[f]:
                graph.add(gtsam.PriorFactorPose3(key, gtsam.Pose3(poses[f]), pose_prior))
        params = gtsam.LevenbergMarquardtParams()
        params.setMaxIterations(rec.iterations)
        factors: dict[int, Any] = {}
        if smart:
            use = np.flatnonzero(active)
            tracked = np.bincount(problem.point_index[use], minlength=len(points)) >= 2
            for o in use[tracked[problem.point_index[use]]]:
                p = int(problem.point_index[o])
                if p not in factors:
                    factors[p] = gtsam.SmartProjectionPoseFactorCal3_S2(pixel_noise, calibration, smart_params)
                    graph.add(factors[p])
                factors[p].add(problem.pixels[o].astype(float), pose_key[problem.frame_index[o]])
        else:
            for p, key in enumerate(point_key):
                values.insert(key, points[p])
                graph.add(gtsam.PriorFactorPoint3(key, points[p], point_prior))
            for o in np.flatnonzero(active):
                graph.add(gtsam.GenericProjectionFactorCal3_S2(
                    problem.pixels[o].astype(float), robust, pose_key[problem.frame_index[o]],
                    point_key[problem.point_index[o]], calibration, False, False))
            if ordering == "points-first":
                order = gtsam.Ordering()
                for key in (*point_key, *pose_key):
                    order.push_back(key)
                params.setOrdering(order)
            elif ordering != "colamd":
                raise ValueError(f"unknown ordering {ordering!r}")
        optimizer = gtsam.LevenbergMarquardtOptimizer(graph, values, params)
        t0 = time.perf_counter()
        solution = optimizer.optimize()
        optimize_s += time.perf_counter() - t0
        iterations += int(optimizer.iterations())
        poses = np.stack([solution.atPose3(key).matrix() for key in pose_key])
        if smart:
            for p, factor in factors.items():
                triangulated = factor.point(solution)
                if triangulated.valid():
                    points[p] = triangulated.get()
        elif point_key:
            points = np.stack([solution.atPoint3(key) for key in point_key])
        error, visible = reprojection_errors(problem, rec.K, poses, points)
        active = visible & (error < 2.0 * k)
    return Solution(poses, points, 1e3 * (time.perf_counter() - start), 1e3 * optimize_s, iterations)


def solve_gtsam_smart(rec: Recorded) -> Solution:
    return solve_gtsam(rec, smart=True)


SOLVE = {"ours": solve_ours, "gtsam": solve_gtsam, "gtsam-smart": solve_gtsam_smart}


# ----------------------------------------------------------------------------------------- figures
def evaluate(rec: Recorded, poses_world: np.ndarray, points_world: np.ndarray) -> dict[str, float]:
    """Median reprojection error over the inliers (within 2 x threshold, in front), their count, the median over
    every observation (what ``BundleResult.final_median_px`` reports) and the mean Huber cost of every observation
    (the first pass's objective, on the same observations for every solver; one behind its camera counts as
    10 x threshold off, as in ``bundle``)."""
    error, visible = reprojection_errors(rec.problem, rec.K, poses_world, points_world)
    inliers = visible & (error < 2.0 * rec.threshold)
    finite = error[visible]
    every = np.ones(len(error), bool)
    return {
        "huber_cost": huber_cost(error, visible, every, rec.threshold) / len(error) if len(error) else 0.0,
        "inlier_median_px": float(np.median(error[inliers])) if inliers.any() else float("nan"),
        "inliers": int(inliers.sum()),
        "all_median_px": float(np.median(finite)) if len(finite) else float("inf"),
    }


def _gauge(rec: Recorded) -> tuple[np.ndarray, float] | None:
    """The similarity taking the map into the ground-truth world: (T: rotation and translation, scale), from the
    newest fixed keyframe and the distance between the last two fixed keyframes; None without ground truth."""
    ground_truth = rec.ground_truth
    fixed = np.flatnonzero(rec.problem.fixed)
    if ground_truth is None or len(fixed) < 2 or np.isnan(rec.timestamps[fixed[-2:]]).any():
        return None
    gt = [_gt_pose(ground_truth, t) for t in rec.timestamps[fixed[-2:]]]
    if any(g is None for g in gt):
        return None
    est = rec.problem.poses_world[fixed[-2:]]
    est_baseline = np.linalg.norm(est[1][:3, 3] - est[0][:3, 3])
    if est_baseline < 1e-12:
        return None
    scale = float(np.linalg.norm(gt[1][:3, 3] - gt[0][:3, 3]) / est_baseline)
    R = gt[1][:3, :3] @ est[1][:3, :3].T
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = gt[1][:3, 3] - scale * R @ est[1][:3, 3]
    return T, scale


def _gt_pose(ground_truth, stamp: float) -> np.ndarray | None:
    if ground_truth is None or np.isnan(stamp):
        return None
    i = int(np.argmin(np.abs(ground_truth.timestamps - stamp)))
    return ground_truth.poses[i] if abs(ground_truth.timestamps[i] - stamp) < 1e-6 else None


def _to_world(pose: np.ndarray, gauge: tuple[np.ndarray, float]) -> np.ndarray:
    T, scale = gauge
    out = np.eye(4)
    out[:3, :3] = T[:3, :3] @ pose[:3, :3]
    out[:3, 3] = scale * T[:3, :3] @ pose[:3, 3] + T[:3, 3]
    return out


def _pose_gap(a: np.ndarray, b: np.ndarray, scale: float) -> tuple[float, float]:
    """Position gap (mm, map units times ``scale`` = metres) and rotation gap (degrees) of two poses."""
    return (1e3 * scale * float(np.linalg.norm(a[:3, 3] - b[:3, 3])),
            rotation_angle_deg(a[:3, :3].T @ b[:3, :3]))


def compare(rec: Recorded, solutions: dict[str, Solution]) -> dict[str, Any]:
    """One problem's figures: per solver (and the initial guess) the reprojection figures and the free keyframes'
    distance to the ground truth; the free keyframes' gap between the solvers."""
    gauge = _gauge(rec)
    free = np.flatnonzero(~rec.problem.fixed)
    row: dict[str, Any] = {
        "sequence": rec.sequence,
        "keyframes": len(rec.problem.fixed),
        "free": len(free),
        "points": len(rec.problem.points_world),
        "observations": len(rec.problem.frame_index),
        "scale_m_per_unit": None if gauge is None else gauge[1],
    }
    candidates = {"initial": (rec.problem.poses_world, rec.problem.points_world, None)}
    candidates.update({name: (s.poses_world, s.points_world, s) for name, s in solutions.items()})
    for name, (poses, points, solution) in candidates.items():
        entry: dict[str, Any] = evaluate(rec, poses, points)
        if solution is not None:
            entry.update(wall_ms=solution.wall_ms, optimize_ms=solution.optimize_ms, iterations=solution.iterations)
        if gauge is not None and len(free):
            truth = {f: _gt_pose(rec.ground_truth, rec.timestamps[f]) for f in free}
            gaps = [_pose_gap(_to_world(poses[f], gauge), truth[f], 1.0) for f in free if truth[f] is not None]
            if gaps:
                entry["gt_position_mm"] = float(np.mean([g[0] for g in gaps]))
                entry["gt_rotation_deg"] = float(np.mean([g[1] for g in gaps]))
        row[name] = entry
    if "ours" in solutions and len(free):
        scale = gauge[1] if gauge is not None else 1.0
        for name, solution in solutions.items():
            if name != "ours":
                gaps = [_pose_gap(solutions["ours"].poses_world[f], solution.poses_world[f], scale) for f in free]
                row[name]["gap_position_mm"] = max(g[0] for g in gaps)  # the worst free keyframe of the problem
                row[name]["gap_rotation_deg"] = max(g[1] for g in gaps)
    return row


def solve_all(recorded: list[Recorded], solvers: list[str], repeats: int = 1) -> list[dict[str, Any]]:
    rows = []
    for rec in recorded:
        solutions = {}
        for name in solvers:
            tries = [SOLVE[name](rec) for _ in range(max(1, repeats))]
            best = min(tries, key=lambda s: s.wall_ms)
            solutions[name] = best
        rows.append(compare(rec, solutions))
    return rows


def _summary(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    entries = [r[name] for r in rows]

    def values(key):
        return np.array([e[key] for e in entries if e.get(key) is not None], float)

    def stat(key, fn):
        v = values(key)
        v = v[np.isfinite(v)]
        return float(fn(v)) if len(v) else None

    return {
        "inlier_median_px_median": stat("inlier_median_px", np.median),
        "inlier_median_px_mean": stat("inlier_median_px", np.mean),
        "all_median_px_median": stat("all_median_px", np.median),
        "huber_cost_mean": stat("huber_cost", np.mean),
        "inliers_total": int(values("inliers").sum()),
        "wall_ms_median": stat("wall_ms", np.median),
        "wall_ms_mean": stat("wall_ms", np.mean),
        "optimize_ms_median": stat("optimize_ms", np.median),
        "iterations_median": stat("iterations", np.median),
        "gt_position_mm_median": stat("gt_position_mm", np.median),
        "gt_position_mm_mean": stat("gt_position_mm", np.mean),
        "gt_rotation_deg_median": stat("gt_rotation_deg", np.median),
        "problems_with_gt": int(len(values("gt_position_mm"))),
    }


def summarise(rows: list[dict[str, Any]], solvers: list[str]) -> dict[str, Any]:
    """Per solver (and the initial guess) the figures over the problems; per other solver its agreement with
    ours (pose gaps, and which has the lower inlier median in how many problems)."""
    summary: dict[str, Any] = {name: _summary(rows, name) for name in ("initial", *solvers)}
    for name in solvers:
        if name == "ours" or "ours" not in solvers or not rows:
            continue
        agreement: dict[str, Any] = {}
        gaps = [r[name] for r in rows if "gap_position_mm" in r[name]]
        if gaps:
            position = np.array([g["gap_position_mm"] for g in gaps])
            rotation = np.array([g["gap_rotation_deg"] for g in gaps])
            agreement.update(problems=len(gaps),
                             position_mm_median=float(np.median(position)), position_mm_max=float(position.max()),
                             rotation_deg_median=float(np.median(rotation)), rotation_deg_max=float(rotation.max()))
        d = np.array([r[name]["inlier_median_px"] - r["ours"]["inlier_median_px"] for r in rows])
        d = d[np.isfinite(d)]
        agreement.update(inlier_px_minus_ours_median=float(np.median(d)) if len(d) else None,
                         lower_than_ours=int(np.sum(d < 0)), higher_than_ours=int(np.sum(d > 0)))
        cost = np.array([r[name]["huber_cost"] - r["ours"]["huber_cost"] for r in rows])
        agreement.update(cost_lower_than_ours=int(np.sum(cost < -1e-9)), cost_higher_than_ours=int(np.sum(cost > 1e-9)))
        for key in ("wall_ms", "optimize_ms"):
            ratio = [r[name][key] / r["ours"]["wall_ms"] for r in rows if r["ours"]["wall_ms"] > 0]
            agreement[f"{key}_over_ours_median"] = float(np.median(ratio)) if ratio else None
        summary[name]["agreement_with_ours"] = agreement
    return summary


# ----------------------------------------------------------------------------------------- command
def _gtsam_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("gtsam")
    except Exception:  # noqa: BLE001 - not installed
        return None


def run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    solvers = [s.strip() for s in args.solvers.split(",") if s.strip()]
    unknown = sorted(set(solvers) - set(SOLVERS))
    if unknown:
        raise SystemExit(f"unknown solvers {unknown}; known: {list(SOLVERS)}")
    uses_gtsam = any(s.startswith("gtsam") for s in solvers)
    if uses_gtsam:
        try:
            import gtsam  # noqa: F401
        except ImportError as error:
            raise SystemExit(f"gtsam is not installed ({error}): pip install -r requirements-bench.txt") from error
    data = Path(args.data) if args.data else shared_data_root()
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    motions = [m.strip() for m in args.motions.split(",") if m.strip()]
    load_start = os.getloadavg()[0]
    recorded: list[Recorded] = []
    sequences = []
    for motion in motions:
        for seed in seeds:
            start = time.perf_counter()
            problems, sequence, stats = record_problems(args.frames, seed, args.config, args.features,
                                                        data / TEXTURE_DIR, motion)
            recorded += problems
            sequences.append({"name": sequence.name, "frames": stats["frames"], "keyframes": stats["keyframes"],
                              "lost_frames": stats["lost_frames"], "problems": len(problems),
                              "wall_s": time.perf_counter() - start})
    if not recorded:
        raise SystemExit("the odometry solved no bundle problem on these sequences (too few keyframes?)")
    rows = solve_all(recorded, solvers, args.repeats)
    results: dict[str, Any] = {
        "features": args.features, "frames": args.frames, "seeds": seeds, "motions": motions,
        "sequences": sequences, "problems": len(recorded),
        "threshold_px": recorded[0].threshold, "iterations": recorded[0].iterations,
        "solvers": solvers, "repeats": args.repeats, "gtsam_version": _gtsam_version() if uses_gtsam else None,
        "cpu": cpu_model_name(), "instruction_set": instruction_set(), "avx512f": instruction_set() == "AVX-512",
        "load_average_start": load_start, "load_average_end": os.getloadavg()[0],
        "summary": summarise(rows, solvers), "per_problem": rows,
    }
    return results, _markdown(results)


def _f(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _markdown(results: dict[str, Any]) -> str:
    summary, rows = results["summary"], results["per_problem"]
    sizes = np.array([[r["keyframes"], r["free"], r["points"], r["observations"]] for r in rows])
    repeats = (f"Each problem is solved {results['repeats']} times per solver, the fastest counts. "
               if results["repeats"] > 1 else "")
    intro = (
        f"Every local bundle adjustment of the monocular odometry (default config/odometry.yaml, "
        f"{results['features']}) on {len(results['sequences'])} synthetic rooms textured with training photos "
        f"({results['frames']} frames each, seeds {', '.join(map(str, results['seeds']))}, motion "
        f"{', '.join(results['motions'])}: table below), recorded and solved again "
        f"by each solver: {results['problems']} problems, median {np.median(sizes[:, 0]):.0f} keyframes "
        f"({np.median(sizes[:, 1]):.0f} free), {np.median(sizes[:, 2]):.0f} points, "
        f"{np.median(sizes[:, 3]):.0f} observations (max {sizes[:, 3].max()}). Every solver: Huber k = "
        f"{results['threshold_px']:g} px, {results['iterations']} Levenberg-Marquardt iterations per pass, the second "
        f"pass without the observations beyond {2 * results['threshold_px']:g} px, the oldest keyframes fixed. "
        "*ours*: `silk_ros.odometry.bundle.adjust_bundle` (numpy, Schur complement); *gtsam*: GTSAM "
        f"{results.get('gtsam_version') or '-'} `LevenbergMarquardtOptimizer` (default tolerances) on "
        "`GenericProjectionFactorCal3_S2` with the Huber robust noise, points eliminated first, the fixed keyframes "
        "held by priors of sigma 1e-8; *gtsam-smart*: `SmartProjectionPoseFactorCal3_S2` instead (points "
        "triangulated inside the factors, no robust model: plain least squares in the first pass). *ms*: the whole "
        "call, for GTSAM including building the graph from Python; *optimiser ms*: the two `optimize()` calls alone. "
        f"{repeats}*Inlier px*: each problem's median reprojection error over its inliers (within 2 x k, in front "
        "of the camera), then the median / mean over the problems; *all px*: over every observation; *Huber cost / "
        "obs*: the first pass's objective (e^2 within k, 2ke - k^2 beyond) per observation, the same observations "
        "for every solver. *GT*: mean distance of the free keyframes to the ground truth, the map put into the "
        "world by the fixed keyframes (the same transform for every row). "
        f"CPU: {results['cpu']} (avx512f: {'yes' if results['avx512f'] else 'no'}), one thread; load average "
        f"{results['load_average_start']:.1f} at the start, {results['load_average_end']:.1f} at the end."
    )
    lines = [
        intro,
        "",
        "| solver | inlier px (median) | inlier px (mean) | all px (median) | Huber cost / obs (mean) | inliers | "
        "ms (median) | ms (mean) | optimiser ms (median) | GT position mm (median) | GT position mm (mean) | "
        "GT rotation deg (median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("initial", *results["solvers"]):
        s = summary[name]
        lines.append(
            f"| {name if name != 'initial' else 'initial guess'} | {_f(s['inlier_median_px_median'])} | "
            f"{_f(s['inlier_median_px_mean'])} | {_f(s['all_median_px_median'])} | {_f(s['huber_cost_mean'], '.4f')} | "
            f"{s['inliers_total']} | "
            f"{_f(s['wall_ms_median'], '.1f')} | {_f(s['wall_ms_mean'], '.1f')} | "
            f"{_f(s['optimize_ms_median'], '.1f')} | {_f(s['gt_position_mm_median'], '.1f')} | "
            f"{_f(s['gt_position_mm_mean'], '.1f')} | {_f(s['gt_rotation_deg_median'], '.3f')} |"
        )
    agreements = [(name, summary[name]["agreement_with_ours"]) for name in results["solvers"]
                  if "agreement_with_ours" in summary[name]]
    if agreements:
        lines += ["", "| solver vs ours | problems | position gap mm (median) | position gap mm (max) | "
                  "rotation gap deg (median) | rotation gap deg (max) | inlier px - ours (median) | "
                  "Huber cost lower / higher than ours (problems) | ms / ours (median) | "
                  "optimiser ms / ours (median) |", "|---|---|---|---|---|---|---|---|---|---|"]
        for name, a in agreements:
            lines.append(
                f"| {name} | {a.get('problems', 0)} | {_f(a.get('position_mm_median'), '.3f')} | "
                f"{_f(a.get('position_mm_max'), '.3f')} | {_f(a.get('rotation_deg_median'), '.4f')} | "
                f"{_f(a.get('rotation_deg_max'), '.4f')} | {_f(a['inlier_px_minus_ours_median'], '+.4f')} | "
                f"{a['cost_lower_than_ours']} / {a['cost_higher_than_ours']} | "
                f"{_f(a['wall_ms_over_ours_median'], '.2f')} | "
                f"{_f(a['optimize_ms_over_ours_median'], '.2f')} |"
            )
        lines += ["", "Gaps: the free keyframe farthest from ours in each problem, in metres by the ground truth's "
                  "scale. Time ratios: per problem, over our whole call."]
    lines += ["", "| sequence | frames | keyframes | lost | problems |", "|---|---|---|---|---|"]
    lines += [f"| {q['name']} | {q['frames']} | {q['keyframes']} | {q['lost_frames']} | {q['problems']} |"
              for q in results["sequences"]]
    return "\n".join(lines)
