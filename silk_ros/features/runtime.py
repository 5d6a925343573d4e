"""Thread settings of the runtimes that share the few CPU cores: ONNX Runtime sessions and numpy's BLAS."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from typing import Any


def cpu_session_options(threads: int = 0, spin_wait: bool = True) -> Any:
    """Full graph optimisation, ``threads`` intra-op threads (0: ONNX Runtime's default).

    ``spin_wait=False`` stops the worker threads from spinning after a run.  In the odometry the attention
    matcher runs between two SiLK runs on the same few cores, and its spinning workers took those cores: on
    2 cores the SiLK step went from 62 to 100 ms per frame.  Spinning is ONNX Runtime's default and the faster
    choice for a session used alone (the matcher alone: about 30% slower at 512 keypoints without it; SiLK in
    the odometry: 3-5 ms per frame slower without it), so only the odometry's matcher turns it off.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spin_wait:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return options


def limit_blas_threads(threads: int) -> None:
    """Cap numpy's BLAS thread pool for this process.

    Between frames the BLAS workers (descriptor similarity) keep spinning and take the cores the
    inference runtime needs next: on 2 cores ONNX Runtime went from 97 to 59 ms per frame with one BLAS
    thread.  ``threads <= 0`` leaves the pool alone; without threadpoolctl this is a no-op.
    """
    if threads <= 0:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=threads, user_api="blas")


@cache
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run a small numpy product on the calling thread only, whatever the process's BLAS setting.

    For the extractor's sparse descriptor head (about 0.3 ms): woken BLAS workers spin on after it and
    slowed SiLK's next ONNX Runtime run from 44 to 84 ms on 2 cores.  Costs about 0.25 ms."""
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield
