"""``python -m training.profile --config training/configs/mu_cpu.yaml``: where a training step's CPU goes.

Runs real optimisation steps of the trainer (``Trainer.train_step``, unchanged) and times its phases by
wrapping the functions the step calls: pair sampling, ground-truth correspondences, the network forward
pass, the losses (and inside them a separate keypoint-label pass where the code has one), the backward pass
and the optimiser.  The figure that compares recipes is CPU seconds per *trained* correspondence: the
ground-truth correspondences whose descriptor loss gets a gradient (every one, or ``anchors`` per pair).

The wrappers only look up names, so the same file also profiles older trainers (for the record in
BENCHMARKS.md: copy it into a checkout of the old commit and run it there).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from . import losses as losses_module
from . import silk as silk_module
from .config import TrainConfig
from .silk import Trainer

__all__ = ["profile_steps", "main"]

PHASES = ("sample", "correspondences", "forward", "loss", "labels", "backward", "optimizer")


class _Clock:
    """Accumulates CPU seconds (this process, all threads) per phase; nested phases are subtracted."""

    def __init__(self):
        self.cpu = defaultdict(float)
        self._stack: list[str] = []

    @contextlib.contextmanager
    def phase(self, name: str):
        start = time.process_time()
        self._stack.append(name)
        try:
            yield
        finally:
            self._stack.pop()
            spent = time.process_time() - start
            self.cpu[name] += spent
            if self._stack:
                self.cpu[self._stack[-1]] -= spent

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            with self.phase(name):
                return fn(*args, **kwargs)

        return timed


def _trained_correspondences(config: TrainConfig, pair) -> int:
    """Correspondences with a descriptor gradient: all of them, or ``anchors`` per pair (older recipes)."""
    anchors = getattr(config, "anchors", 0)
    return min(anchors, pair.correspondences) if anchors else pair.correspondences


def profile_steps(config: TrainConfig, steps: int, warmup: int = 2) -> dict:
    """Phase split (CPU seconds per step) and CPU seconds per trained correspondence over ``steps`` steps."""
    config.val_pairs = 0
    trainer = Trainer(config, run_dir="/tmp/silk_profile_probe", progress=False)
    clock = _Clock()
    counts = {"trained": 0, "correspondences": 0}
    originals = {
        "batch": trainer.sampler.batch,
        "forward": trainer._forward,
        "step": trainer.optimizer.step,
        "backward": torch.Tensor.backward,
        "grid": silk_module.pair_correspondences,
        "pair_loss": silk_module.pair_loss,
        "labels": getattr(losses_module, "mnn_labels", None),
    }

    def counted_pair_loss(*args, **kwargs):
        with clock.phase("loss"):
            pair = originals["pair_loss"](*args, **kwargs)
        counts["trained"] += _trained_correspondences(config, pair)
        counts["correspondences"] += pair.correspondences
        return pair

    trainer.sampler.batch = clock.wrap("sample", originals["batch"])
    trainer._forward = clock.wrap("forward", originals["forward"])
    trainer.optimizer.step = clock.wrap("optimizer", originals["step"])
    torch.Tensor.backward = clock.wrap("backward", originals["backward"])
    silk_module.pair_correspondences = clock.wrap("correspondences", originals["grid"])
    silk_module.pair_loss = counted_pair_loss
    if originals["labels"] is not None:
        losses_module.mnn_labels = clock.wrap("labels", originals["labels"])
    try:
        for _ in range(warmup):
            trainer.train_step()
        clock.cpu.clear()
        counts.update(trained=0, correspondences=0)
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(steps):
            trainer.train_step()
        wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    finally:
        torch.Tensor.backward = originals["backward"]
        silk_module.pair_correspondences = originals["grid"]
        silk_module.pair_loss = originals["pair_loss"]
        if originals["labels"] is not None:
            losses_module.mnn_labels = originals["labels"]
    phases = {name: clock.cpu.get(name, 0.0) / steps for name in PHASES}
    phases["other"] = cpu / steps - sum(phases.values())
    return {
        "steps": steps,
        "crop": config.crop,
        "grid": trainer.grid,
        "batch_size": config.batch_size,
        "threads": torch.get_num_threads(),
        "cpu_s_per_step": cpu / steps,
        "wall_s_per_step": wall / steps,
        "phases_cpu_s_per_step": phases,
        "correspondences_per_step": counts["correspondences"] / steps,
        "trained_correspondences_per_step": counts["trained"] / steps,
        "cpu_ms_per_1000_trained": 1e6 * cpu / max(counts["trained"], 1),
    }


def markdown(results: list[dict]) -> str:
    names = [*PHASES, "other"]
    lines = [
        "CPU seconds per step of the trainer's own `train_step`, by phase (process CPU time, so the figure does not "
        "depend on the wall clock; it still grows when other processes share the caches and cores, so rows "
        "compare best when measured back to back).",
        "",
        "| recipe | grid | batch | CPU s/step | " + " | ".join(names) + " | correspondences/step | trained/step "
        "| CPU ms per 1,000 trained |",
        "|---|---|---|---|" + "---|" * len(names) + "---|---|---|",
    ]
    for r in results:
        p = r["phases_cpu_s_per_step"]
        lines.append(
            f"| {r['label']} | {r['grid']}x{r['grid']} | {r['batch_size']} | {r['cpu_s_per_step']:.3f} | "
            + " | ".join(f"{p[n]:.3f}" for n in names)
            + f" | {r['correspondences_per_step']:.0f} | {r['trained_correspondences_per_step']:.0f} | "
            f"{r['cpu_ms_per_1000_trained']:.0f} |"
        )
    for r in results:
        if "command" in r:
            lines += ["", f"Row '{r['label']}' was measured {r.get('measured_utc', 'earlier')} by `{r['command']}`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--config", action="append", required=True, help="training config(s) to profile")
    parser.add_argument("--label", action="append", help="a name per config for the table (default: the path)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the results as JSON")
    parser.add_argument("--with", dest="earlier", action="append", default=[], metavar="JSON",
                        help="rows measured earlier (another checkout's --json) to show first in the table")
    parser.add_argument("--record", default="", help="Markdown file whose training-profile section is replaced")
    args = parser.parse_args(argv)
    labels = args.label or args.config
    if len(labels) != len(args.config):
        parser.error("give one --label per --config")
    results = [row for path in args.earlier for row in json.loads(Path(path).read_text())]
    for path, label in zip(args.config, labels, strict=True):
        config = TrainConfig.from_yaml(path)
        config.threads = args.threads
        torch.set_num_threads(args.threads)
        results.append({"label": label, "config": path, **profile_steps(config, args.steps)})
    text = markdown(results)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.record:
        from silk_ros.bench.report import record_section

        command = "python -m " + " ".join(["training.profile", *sys.argv[1:]])
        record_section(Path(args.record), "training-profile", text, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
