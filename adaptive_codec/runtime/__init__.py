"""Torch-free inference of the backbone: exported stacks on ONNX Runtime (or NumPy), exact transforms in NumPy.

:func:`load_backbone` builds the :class:`~adaptive_codec.runtime.engine.RuntimeBackbone`
the codec runs on from a weights file and the stacks exported next to it
(``tools/export_runtime.py``). ONNX Runtime is the default executor: it
measured faster than the NumPy stacks on one thread (benchmarks/runtime.py);
the NumPy executor needs no exported files and serves as the reference of
the graphs.
"""

from __future__ import annotations

from pathlib import Path

from adaptive_codec.errors import ModelError
from adaptive_codec.runtime.engine import RuntimeBackbone
from adaptive_codec.runtime.weights import read_weights

__all__ = ["EXECUTORS", "RuntimeBackbone", "load_backbone"]

#: Executors of the ConvNeXt stacks ("auto": ONNX Runtime where the exported stacks are next to the weights).
EXECUTORS = ("auto", "onnxruntime", "numpy")


def load_backbone(weights_path: Path, executor: str = "auto", threads: int | None = None) -> RuntimeBackbone:
    """The backbone of a weights file for inference, without torch.

    Parameters
    ----------
    weights_path : Path
        ``backbone.safetensors``; the exported stacks are read from the same folder.
    executor : {"auto", "onnxruntime", "numpy"}
        ``"auto"``: ONNX Runtime when the weights' folder holds exported
        stacks (those must match the weights), else NumPy (e.g. weights
        just trained, not exported yet).
    threads : int, optional
        Intra-op threads of the ONNX Runtime sessions (default: what
        :func:`adaptive_codec.threads.pin_threads` set, else 1).

    Raises
    ------
    ModelError
        Unreadable weights, or exported stacks that are missing or belong to other weights.
    """
    weights = read_weights(Path(weights_path))
    if executor == "auto":
        from adaptive_codec.runtime.onnx import stack_file_name

        exported = all((Path(weights_path).parent / stack_file_name(s)).is_file() for s in ("encoder", "decoder"))
        executor = "onnxruntime" if exported else "numpy"
    if executor == "onnxruntime":
        from adaptive_codec.runtime.onnx import OnnxStacks
        from adaptive_codec.threads import pinned_threads

        stacks = OnnxStacks(weights, Path(weights_path).parent, threads or pinned_threads())
    elif executor == "numpy":
        from adaptive_codec.runtime.numpy_stacks import NumpyStacks

        stacks = NumpyStacks(weights.arrays, weights.config)
    else:
        raise ModelError(f"unknown backbone executor {executor!r}; choose from {', '.join(EXECUTORS)} "
                         "(or torch, with the train extra)")
    return RuntimeBackbone(weights, stacks, executor, Path(weights_path))
