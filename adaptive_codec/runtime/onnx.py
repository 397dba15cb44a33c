"""ONNX Runtime executor of the backbone's ConvNeXt stacks (CPU, one session per stack).

The files are those :mod:`adaptive_codec.runtime.export` writes next to the
weights; each must name the loaded weights' SHA-256, so stacks exported from
other weights are refused with a clear error rather than decoding garbage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adaptive_codec.errors import ModelError
from adaptive_codec.runtime.weights import BackboneArrays

__all__ = ["RUNTIME_FORMAT", "OnnxStacks", "stack_file_name"]

#: ``format`` metadata of an exported stack (written by :mod:`adaptive_codec.runtime.export`).
RUNTIME_FORMAT = "adaptive-codec-runtime/1"


def stack_file_name(stack: str) -> str:
    """File name of an exported stack next to the weights (``backbone-encoder.onnx``)."""
    return f"backbone-{stack}.onnx"


def _session(path: Path, weights: BackboneArrays, stack: str, threads: int):
    import onnxruntime as ort  # the runtime's one heavy import: only when a codec is built

    if not path.is_file():
        raise ModelError(f"runtime model not found: {path} (reinstall adaptive-codec, or export it with "
                         "`python tools/export_runtime.py`)")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Busy-waiting worker threads cost more than they save on shared cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a readable runtime model ({first})") from None
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("format") != RUNTIME_FORMAT or meta.get("stack") != stack:
        raise ModelError(f"{path}: not the runtime's {stack} stack (format {meta.get('format')!r}, "
                         f"stack {meta.get('stack')!r})")
    if meta.get("weights_sha256") != weights.meta["sha256"]:
        raise ModelError(f"{path} was exported from weights {meta.get('weights_id')}, not the loaded "
                         f"{weights.meta['weights_id']}: re-export it with `python tools/export_runtime.py`")
    return session


class OnnxStacks:
    """Encoder and decoder stacks on ONNX Runtime.

    Parameters
    ----------
    weights : BackboneArrays
        The loaded weights (their SHA-256 must match the files').
    folder : Path
        Folder holding ``backbone-encoder.onnx`` and ``backbone-decoder.onnx``.
    threads : int
        Intra-op threads of each session.

    Raises
    ------
    ModelError
        A missing or unreadable file, or one exported from other weights.
    """

    def __init__(self, weights: BackboneArrays, folder: Path, threads: int = 1) -> None:
        folder = Path(folder)
        self._encoder = _session(folder / stack_file_name("encoder"), weights, "encoder", threads)
        self._decoder = _session(folder / stack_file_name("decoder"), weights, "decoder", threads)

    def encode(self, features: np.ndarray, cond: np.ndarray) -> np.ndarray:
        return self._encoder.run(None, {"x": features, "cond": cond})[0]

    def decode(self, latent: np.ndarray, cond: np.ndarray) -> np.ndarray:
        return self._decoder.run(None, {"x": np.ascontiguousarray(latent, np.float32), "cond": cond})[0]
