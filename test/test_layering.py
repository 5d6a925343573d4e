"""The package layering, checked on the source (every import statement, lazy ones included, by ``ast``).

Why: an upward import makes two packages depend on each other, so neither can be changed, tested or reused
alone; and ROS must stay optional for everything but the node (pip installs, datasets, bag tools, training).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "silk_ros"

#: silk_ros part -> layer: a module may import its own part and parts of a lower layer, nothing else.
LAYERS = {
    "geometry": 0,  # camera models, poses, trajectories: numpy, scipy, OpenCV
    "weights": 0,  # versioned weights files
    "schema": 0,  # how a setting is declared (default, description, range)
    "features": 1,
    "matching": 2,
    "odometry": 3,
    "datasets": 4,
    "settings": 5,  # the settings table: the odometry's typed configs and the node's wiring
    "bagio": 6,  # rosbag2 files and ROS message codecs, without ROS
    "evaluation": 7,
    "bench": 8,
    "ros": 9,  # the only part that imports rclpy and ROS message packages
    "cli": 10,  # argument parsing, the edge
}
CORE = ("geometry", "features", "matching", "odometry", "datasets", "evaluation")
ROS_PACKAGES = ("rclpy", "rcl_interfaces", "builtin_interfaces", "rosidl_runtime_py", "tf2_ros", "cv_bridge",
                "launch", "launch_ros", "message_filters")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append((node.lineno, base))
            # ``from silk_ros import settings`` imports the part ``settings``
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if base == "silk_ros"]
    return found


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "silk_ros" and len(parts) > 1 else None


def _is_ros(module: str) -> bool:
    top = module.split(".")[0]
    return top in ROS_PACKAGES or top.endswith(("_msgs", "_srvs"))


def test_every_part_has_a_layer():
    parts = {_part(module) for module in _modules()} - {None}
    assert parts <= set(LAYERS), f"parts without a layer: {sorted(parts - set(LAYERS))}"
    assert set(CORE) <= set(LAYERS)


def test_no_upward_imports():
    problems = []
    for module, path in _modules().items():
        own = _part(module)
        if own is None:
            continue
        for line, target in _imports(module, path):
            other = _part(target)
            if other is None or other == own:
                continue
            if other not in LAYERS or LAYERS[other] >= LAYERS[own]:
                problems.append(f"{path.relative_to(PACKAGE_ROOT.parent)}:{line} ({own}) imports {target} ({other})")
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_only_the_ros_part_imports_ros():
    problems = [
        f"{path.relative_to(PACKAGE_ROOT.parent)}:{line} imports {target}"
        for module, path in _modules().items()
        if _part(module) != "ros"
        for line, target in _imports(module, path)
        if _is_ros(target)
    ]
    assert not problems, "ROS imported outside silk_ros/ros:\n" + "\n".join(problems)


#: Benchmark-only packages (requirements-bench.txt): only the peers import them, and only inside a function, so
#: importing any silk_ros module (the bench's included) works without them.
BENCH_ONLY_PACKAGES = ("open3d", "pyorbslam3")
PEERS_PART = "silk_ros.bench.peers"


def _top_level_imports(path: Path) -> set[int]:
    """Line numbers of the imports that run when the module is imported (not inside a function)."""
    lines: set[int] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                lines.add(child.lineno)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return lines


def test_benchmark_peers_are_imported_lazily_by_the_peers_only():
    problems = []
    for module, path in _modules().items():
        eager = _top_level_imports(path)
        for line, target in _imports(module, path):
            if target.split(".")[0] not in BENCH_ONLY_PACKAGES:
                continue
            where = f"{path.relative_to(PACKAGE_ROOT.parent)}:{line} imports {target}"
            if not module.startswith(PEERS_PART):
                problems.append(f"{where} (only {PEERS_PART} may)")
            elif line in eager:
                problems.append(f"{where} when the module is imported (import it inside the function that needs it)")
    assert not problems, "benchmark-only packages imported outside the peers or eagerly:\n" + "\n".join(problems)
