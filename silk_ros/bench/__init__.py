"""``silk-vo bench TARGET``: every benchmark prints its figures, writes them as JSON with ``--json``
and records them in BENCHMARKS.md (section per target, with the exact command)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

#: target -> module with ``add_arguments(parser)`` and ``run(args) -> (results dict, markdown)``.
TARGETS: dict[str, str] = {
    "features": "silk_ros.bench.features",
    "homography": "silk_ros.bench.homography",
    "pose-pairs": "silk_ros.bench.pose_pairs",
    "matchers": "silk_ros.bench.matchers",
    "vo": "silk_ros.bench.vo",
    "scale": "silk_ros.bench.scale",
    "bundle": "silk_ros.bench.bundle",
    "design": "silk_ros.bench.design",
    "node": "silk_ros.ros.bench_node",  # under ros/: the only part that imports rclpy
}


def add_arguments(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> None:
    """``argv``: the command line being parsed (default ``sys.argv[1:]``); only its target's options are added."""
    argv = sys.argv[1:] if argv is None else argv
    sub = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    for name, module in TARGETS.items():
        target = sub.add_parser(name)
        target.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
        target.add_argument(
            "--record",
            metavar="MD",
            default="BENCHMARKS.md",
            help="Markdown file whose section for this target is replaced ('' to skip)",
        )
        target.set_defaults(_bench=module)
        target.add_argument_group("target options")
        # Target options are parsed lazily: only the chosen module is imported.
        if name in argv:
            importlib.import_module(module).add_arguments(target)


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(args._bench)
    results, markdown = module.run(args)
    command = "silk-vo " + " ".join(a for a in sys.argv[1:] if a)
    print(markdown)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))
    if args.record:
        from .report import record_section

        record_section(Path(args.record), args.target, markdown, command)
    return 0
