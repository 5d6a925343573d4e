"""``python -m training.memory --config training/configs/mu.yaml``: peak memory of one training step.

Runs one real optimisation step (forward, both losses, backward, Adam) of the given config and reports
the process's peak resident memory during the step (Linux ``VmHWM``, reset just before the step via
``/proc/self/clear_refs``; on CUDA devices ``torch.cuda.max_memory_allocated``).  The figure is written
to BENCHMARKS.md (section ``training-memory``) next to what a dense N x N similarity would need.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from .config import TrainConfig
from .silk import Trainer

__all__ = ["measure_step", "main"]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_step(config: TrainConfig) -> dict:
    """Peak memory (MiB) and time of one training step; the step is the trainer's own ``train_step``."""
    config.val_pairs = 0
    trainer = Trainer(config, run_dir="/tmp/silk_memory_probe", progress=False)
    cuda = trainer.device.type == "cuda"
    before = _status_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    except OSError:
        pass
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    stats = trainer.train_step()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    grid = trainer.grid
    n = grid * grid
    result = {
        "crop": config.crop,
        "grid": f"{grid}x{grid}",
        "positions": n,
        "batch_size": config.batch_size,
        "block_size": config.block_size,
        "anchors": config.anchors or "all",
        "device": str(trainer.device),
        "threads": torch.get_num_threads(),
        "rss_before_mib": before / 1024,
        "peak_rss_mib": peak / 1024,
        "step_increase_mib": (peak - before) / 1024,
        "step_seconds": seconds,
        "loss": stats.loss,
        "dense_similarity_mib": n * n * 4 / 2**20,
    }
    if cuda:
        result["cuda_peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def markdown(r: dict) -> str:
    lines = [
        f"One training step of `{r['config']}` (grid {r['grid']} = {r['positions']:,} positions, "
        f"batch {r['batch_size']} pairs, InfoNCE anchors: {r['anchors']}, block {r['block_size']} rows), "
        f"{r['device']}, {r['threads']} thread(s).",
        "",
        "| peak RSS during the step | RSS before | increase | step time | one dense N x N fp32 similarity |",
        "|---|---|---|---|---|",
        f"| {r['peak_rss_mib']:.0f} MiB | {r['rss_before_mib']:.0f} MiB | {r['step_increase_mib']:.0f} MiB | "
        f"{r['step_seconds']:.1f} s | {r['dense_similarity_mib']:.0f} MiB (before softmax, gradients) |",
        "",
        "Block-wise similarity with the blocks recomputed in the backward pass (torch.utils.checkpoint): "
        "memory grows with block x N, not N^2. Target: <= 2 GB.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.memory", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="training/configs/mu.yaml")
    parser.add_argument("--block-size", type=int, help="override config.block_size")
    parser.add_argument("--device", help="override config.device")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--record", default="BENCHMARKS.md", help="Markdown file to update ('' to skip)")
    args = parser.parse_args(argv)
    config = TrainConfig.from_yaml(args.config)
    config.threads = args.threads
    if args.block_size:
        config.block_size = args.block_size
    if args.device:
        config.device = args.device
    result = {"config": args.config, **measure_step(config)}
    text = markdown(result)
    print(text)
    if args.record:
        from silk_ros.bench.report import record_section

        command = "python -m " + " ".join(["training.memory", *sys.argv[1:]])
        record_section(Path(args.record), "training-memory", text, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
