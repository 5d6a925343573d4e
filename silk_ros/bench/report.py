"""Keep BENCHMARKS.md current: each benchmark replaces its own section, marked by HTML comments."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

HEADER = "# Benchmarks\n\nEvery figure below is written by the command shown with it (`make bench` runs them all).\n"


def cpu_model_name() -> str:
    """The CPU's marketing name from /proc/cpuinfo (the architecture where that is unavailable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def instruction_set() -> str:
    """The widest x86 vector extension the CPU has: timings differ between AVX-512 (Zen 4) and AVX2-only (Zen 3)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else platform.machine()


def machine_line() -> str:
    """CPU, instruction set and the load average when the benchmark finished (timings depend on all three)."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{cpu_model_name()} ({instruction_set()}), {os.cpu_count()} logical CPUs, Python "
            f"{platform.python_version()}, load average {load} (1/5/15 min)")


def record_section(path: Path, target: str, markdown: str, command: str) -> None:
    """Replace this target's section; an exclusive lock keeps benchmarks run side by side from losing sections."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _replace_section(path, target, markdown, command)


def _replace_section(path: Path, target: str, markdown: str, command: str) -> None:
    begin, end = f"<!-- bench:{target}:begin -->", f"<!-- bench:{target}:end -->"
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"{begin}\n## {target}\n\nCommand: `{command}`  \nRun: {stamp} on {machine_line()}\n\n"
        f"{markdown.strip()}\n{end}"
    )
    text = path.read_text() if path.exists() else HEADER
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
