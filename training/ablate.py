"""``python -m training.ablate``: which of SiLK's recipe items matter, at equal CPU time.

Every variant trains the same number of steps from the same seed (the fused similarity pass makes a step cost
the same whatever the variant, so equal steps is equal CPU time) and is validated on the same fixed pairs
(SiLK's sampler on the held-out photos).  ``silk`` is the recipe of ``mu_cpu.yaml``: its curve is that of the long run
itself (``training/runs/silk_mu_cpu``, same config and seed), which is not trained again here.  ``v1`` switches
every item back to the recipe of the weights shipped before; the others switch back one item each.  Their
``log.jsonl`` and resumable checkpoints live in ``training/ablation/runs/<variant>``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from silk_ros.datasets.paths import REPO_ROOT

__all__ = ["VARIANTS", "main"]

CONFIG = "training/configs/mu_cpu.yaml"
RUNS = Path("training/ablation/runs")
LONG_RUN = Path("training/runs/silk_mu_cpu")

#: variant -> (what it changes, config overrides against mu_cpu.yaml)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "silk": ("SiLK's recipe (mu_cpu.yaml)", []),
    "temperature": ("item 2: logits cos / 0.1", ["temperature=0.1"]),
    "mean": ("item 3: mean of the two InfoNCE directions", ["descriptor_weight=0.5"]),
    "mask": ("item 4: keypoint BCE on every cell", ["keypoint_mask=all"]),
    "sampler": ("item 5: milder homographies", ["homography.plane_distance=2.0", "homography.scale_first=false"]),
    "data": ("item 6: 300 BSDS photos", ["train_images=[train/bsds500/train, train/bsds500/val]"]),
    "v1": ("items 2-6 and 1,024 anchors: the earlier recipe", [
        "temperature=0.1", "descriptor_weight=0.5", "keypoint_mask=all", "homography.plane_distance=2.0",
        "homography.scale_first=false", "train_images=[train/bsds500/train, train/bsds500/val]", "anchors=1024",
    ]),
}


def command(variant: str, steps: int) -> list[str]:
    overrides = [*VARIANTS[variant][1], "val_every=250", "checkpoint_every=50"]
    return [sys.executable, "-m", "training.silk", "--config", CONFIG, "--run-dir", str(RUNS / variant),
            "--steps", str(steps), "--no-progress", *[f"--set={o}" for o in overrides]]


def run_dir(variant: str) -> Path:
    return LONG_RUN if variant == "silk" else RUNS / variant


def validation_curve(variant: str, steps: int) -> dict[int, float]:
    log = REPO_ROOT / run_dir(variant) / "log.jsonl"
    if not log.exists():
        return {}
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return {r["step"]: r["val_f1"] for r in rows if "val_f1" in r and r["step"] <= steps}


def markdown(variants: list[str], steps_run: int) -> str:
    curves = {v: validation_curve(v, steps_run) for v in variants}
    steps = sorted({s for c in curves.values() for s in c})
    lines = [
        "Validation match F1 (mutual nearest neighbours on the dense grid against the true correspondences, 32 fixed "
        "held-out pairs) by step; every variant from seed 0, 1 thread, equal steps = equal CPU time.",
        "",
        "| variant | what it changes | " + " | ".join(f"step {s}" for s in steps) + " |",
        "|---|---|" + "---|" * len(steps),
    ]
    for v in variants:
        cells = [f"{curves[v][s]:.3f}" if s in curves[v] else "" for s in steps]
        lines.append(f"| {v} | {VARIANTS[v][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import subprocess

    parser = argparse.ArgumentParser(prog="python -m training.ablate", description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of " + ", ".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--report-only", action="store_true", help="only print/record the table of existing runs")
    parser.add_argument("--record", default="", help="Markdown file whose training-ablation section is replaced")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    if not args.report_only:
        for variant in variants:  # each resumes from its checkpoint when one exists
            if variant != "silk":
                subprocess.run(command(variant, args.steps), cwd=REPO_ROOT, check=True)
    text = markdown(variants, args.steps)
    print(text)
    if args.record:
        from silk_ros.bench.report import record_section

        record_section(Path(args.record), "training-ablation", text, "python -m " + " ".join(["training.ablate",
                                                                                              *sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
