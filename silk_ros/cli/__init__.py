"""``silk-vo``: the one command-line entry point.

Argument parsing lives here, at the edge: each subcommand is a module of this package (benchmarks: of
``silk_ros.bench``) with ``add_arguments(parser)`` and ``run(args) -> int``; it turns the arguments into typed
values, calls the library, and turns the library's typed errors into one line and an exit code.  Commands are
registered by module path, so ``silk-vo --help`` stays cheap (modules are imported only when their command runs).
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> module with ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "export-onnx": ("silk_ros.cli.export_onnx", "export SiLK weights to ONNX (dynamic height/width)"),
    "bench": ("silk_ros.bench",
              "benchmarks: features, homography, pose-pairs, matchers, vo, scale, bundle, design, node"),
    "run-dataset": ("silk_ros.cli.run_dataset", "run odometry on a dataset folder and write a report"),
    "bag": ("silk_ros.cli.bag", "rosbag2 tools: convert a dataset to a bag, evaluate a bag"),
    "demo": ("silk_ros.cli.demo", "run the odometry on a real (or synthetic) sequence and print the result"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="silk-vo", description="SiLK visual odometry tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            add_arguments = importlib.import_module(module).add_arguments
            if name == "bench":  # adds only the options of the target named on this command line
                add_arguments(command, argv)
            else:
                add_arguments(command)
            command.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    return int(importlib.import_module(args._module).run(args) or 0)
