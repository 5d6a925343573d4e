"""``python -m training.curve RUN_DIR [RUN_DIR ...] --out curve.png``: a validation figure against step for runs.

Reads each run's ``log.jsonl`` (the rows with the metric: ``val_f1`` of the SiLK trainer by default, ``--metric
val_nll`` for the matcher trainer), prints a Markdown table and draws one line per run, so the model card can show
the long run next to the ablation runs and the shipped weights' level.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["validation_curve", "main"]


#: the metrics the trainers log at each validation, and what the figure's axis says
METRICS = {
    "val_f1": "validation F1 (MNN, 32 held-out pairs)",
    "val_nll": "validation NLL (held-out pairs, lower is better)",
    "val_pose_auc10": "validation pose AUC@10 (synthetic rooms)",
}


def validation_curve(run_dir: Path, metric: str = "val_f1") -> list[tuple[int, float]]:
    """(step, metric) of a run, in step order; a step validated twice (a resumed run) keeps its last value."""
    log = Path(run_dir) / "log.jsonl"
    if not log.is_file():
        raise SystemExit(f"training.curve: {log} not found (a run folder holds log.jsonl)")
    points: dict[int, float] = {}
    for line in log.read_text().splitlines():
        row = json.loads(line)
        if metric in row:
            points[int(row["step"])] = float(row[metric])
    return sorted(points.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.curve", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each with a log.jsonl)")
    parser.add_argument("--out", type=Path, help="PNG of the curves")
    parser.add_argument("--reference", type=float, help="a horizontal line: the shipped weights' level")
    parser.add_argument("--metric", choices=sorted(METRICS), default="val_f1", help="the logged validation figure")
    args = parser.parse_args(argv)
    curves = {run.name: validation_curve(run, args.metric) for run in args.runs}
    if not any(curves.values()):
        raise SystemExit(f"training.curve: no '{args.metric}' rows in {', '.join(str(r) for r in args.runs)}")
    print("| run | " + " | ".join(f"step {s}" for s in sorted({s for c in curves.values() for s, _ in c})) + " |")
    steps = sorted({s for c in curves.values() for s, _ in c})
    print("|---|" + "---|" * len(steps))
    for name, curve in curves.items():
        values = dict(curve)
        print(f"| {name} | " + " | ".join(f"{values[s]:.4f}" if s in values else "" for s in steps) + " |")
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(7, 4))
        for name, curve in curves.items():
            axes.plot([s for s, _ in curve], [f for _, f in curve], marker="o", label=name)
        if args.reference is not None:
            axes.axhline(args.reference, color="grey", linestyle="--", label=f"shipped weights ({args.reference})")
        axes.set(xlabel="training step", ylabel=METRICS[args.metric], ylim=(0, None))
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(args.out, dpi=100)
        print(f"curve: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
