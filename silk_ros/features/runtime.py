"""ONNX Runtime session options shared by the feature network and the attention matcher."""

from __future__ import annotations

from typing import Any


def cpu_session_options(threads: int = 0, spin: bool = True) -> Any:
    """Full graph optimisation, ``threads`` intra-op threads (0: ONNX Runtime's default).

    ``spin=False`` stops the worker threads from spin-waiting after a run.  The attention matcher runs
    between two SiLK runs on the same few cores, and its spinning workers took those cores: on 2 cores the
    odometry's SiLK step went from 62 to 100 ms per frame.  SiLK itself keeps spinning (ONNX Runtime's
    default), which measured 3-5 ms per frame faster.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return options
