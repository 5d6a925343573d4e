"""``python -m training.curve RUN_DIR [RUN_DIR ...] --out curve.png``: validation F1 against step for training runs.

Reads each run's ``log.jsonl`` (the rows with ``val_f1``), prints a Markdown table and draws one line per run, so
the model card can show the long run next to the ablation runs and the shipped weights' level.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["validation_curve", "main"]


def validation_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(step, val_f1) of a run, in step order; a step validated twice (a resumed run) keeps its last value."""
    log = Path(run_dir) / "log.jsonl"
    if not log.is_file():
        raise SystemExit(f"training.curve: {log} not found (a run folder holds log.jsonl)")
    points: dict[int, float] = {}
    for line in log.read_text().splitlines():
        row = json.loads(line)
        if "val_f1" in row:
            points[int(row["step"])] = float(row["val_f1"])
    return sorted(points.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.curve", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each with a log.jsonl)")
    parser.add_argument("--out", type=Path, help="PNG of the curves")
    parser.add_argument("--reference", type=float, help="a horizontal line: the shipped weights' validation F1")
    args = parser.parse_args(argv)
    curves = {run.name: validation_curve(run) for run in args.runs}
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
        axes.set(xlabel="training step", ylabel="validation F1 (MNN, 32 held-out pairs)", ylim=(0, None))
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(args.out, dpi=100)
        print(f"curve: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
