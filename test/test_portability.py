"""`make test-avx2`: the suite with the numerical libraries held to their AVX2 kernels (test/avx2_only.env), so that an
AVX-512 machine catches what fails only on an AVX2 machine (issue 17: a test that passed on Zen 4 failed on Zen 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = REPO_ROOT / "test" / "avx2_only.env"

PROBE = """
import json, cv2, torch, threadpoolctl
from numpy._core._multiarray_umath import __cpu_features__  # NumPy's dispatch groups, false once disabled
print(json.dumps({
    "torch": torch.backends.cpu.get_cpu_capability(),
    "numpy_avx512": any(__cpu_features__.get(group) for group in ("X86_V4", "AVX512_ICL", "AVX512_SPR")),
    "openblas": sorted({i.get("architecture") for i in threadpoolctl.threadpool_info()
                        if i["internal_api"] == "openblas"}),
    "opencv_avx512": cv2.checkHardwareSupport(13) or cv2.checkHardwareSupport(256),  # CPU_AVX_512F, CPU_AVX512_SKX
}))
"""


def avx2_only_environment() -> dict[str, str]:
    lines = [line.strip() for line in ENV_FILE.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_avx2_environment_holds_every_library_to_avx2():
    probe = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **avx2_only_environment()},
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    kernels = json.loads(probe.stdout.strip().splitlines()[-1])
    assert kernels["torch"] in ("AVX2", "DEFAULT"), kernels
    assert not kernels["numpy_avx512"], kernels
    assert kernels["openblas"] in ([], ["Haswell"]), kernels
    assert not kernels["opencv_avx512"], kernels
    assert "OPENCV: Trying to disable unknown CPU feature" not in probe.stderr


def test_make_test_avx2_runs_the_suite_with_that_environment():
    dry = subprocess.run(["make", "-n", "-W", ".venv/.installed", "test-avx2"], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "test/avx2_only.env" in dry.stdout and "pytest -q test" in dry.stdout
