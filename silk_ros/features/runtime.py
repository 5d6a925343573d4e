"""ONNX Runtime session options shared by the feature network and the attention matcher."""

from __future__ import annotations

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
