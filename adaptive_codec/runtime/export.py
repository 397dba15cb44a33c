"""Export the backbone's ConvNeXt stacks to ONNX graphs for the runtime (needs the ``onnx`` package).

The graphs are built node by node from the weights file's arrays, so the
export is deterministic (same weights, same bytes) and needs no torch. They
compute exactly the stack of :class:`adaptive_codec.backbone.model.ConvNeXtStack`
(see :mod:`adaptive_codec.runtime.numpy_stacks` for the same in NumPy), with:

- opset :data:`OPSET` (LayerNormalization), a dynamic frame axis (pieces
  vary in length) and the conditioning as ``(frames or 1, cond_dim)``;
- the GELU written as ``x · ½ (1 + erf(x / √2))``, the pattern ONNX Runtime
  fuses into one kernel;
- the initializers in the weights' own float16, each widened by a ``Cast``
  that the runtime folds once at load: half the bytes on disk, the same
  float32 values as the torch loader.

Each file's metadata names the weights (``weights_id``, ``weights_sha256``)
and the stack; :mod:`adaptive_codec.runtime.onnx` refuses a file made for
other weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adaptive_codec.runtime.onnx import RUNTIME_FORMAT, stack_file_name
from adaptive_codec.runtime.weights import BackboneArrays, read_weights

__all__ = ["OPSET", "STACKS", "build_stack", "export_runtime"]

#: ONNX opset of the exported graphs (17: LayerNormalization).
OPSET = 17
#: The exported stacks, in the order the codec runs them.
STACKS = ("encoder", "decoder")


def build_stack(weights: BackboneArrays, stack: str):
    """The ONNX model (``onnx.ModelProto``) of one ConvNeXt stack of ``weights``.

    Inputs ``x`` ``(frames, in_dim)`` and ``cond`` ``(frames or 1, cond_dim)``,
    float32; output ``y`` ``(frames, out_dim)``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    cfg, a = weights.config, weights.arrays
    n_blocks = cfg.encoder_blocks if stack == "encoder" else cfg.decoder_blocks
    nodes, inits = [], []

    def const(name: str, value: np.ndarray, *, half: bool = True) -> str:
        """An initializer (fp16 widened by a Cast when ``half``); returns the float32 tensor's name."""
        value = np.asarray(value)
        if not half:
            inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
            return name
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value.astype(np.float16)), name + "_f16"))
        nodes.append(helper.make_node("Cast", [name + "_f16"], [name], to=TensorProto.FLOAT))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def linear(x: str, key: str, out: str) -> str:
        w = const(f"{key}.weight_t", a[f"{key}.weight"].T)
        b = const(f"{key}.bias", a[f"{key}.bias"])
        return node("Add", [node("MatMul", [x, w], out + "_mm"), b], out)

    dim = cfg.dim
    ones = const("ones", np.ones(dim, np.float32), half=False)
    zeros = const("zeros", np.zeros(dim, np.float32), half=False)
    one = const("one", np.ones((), np.float32), half=False)
    half_ = const("half", np.full((), 0.5, np.float32), half=False)
    sqrt2 = const("sqrt2", np.full((), np.sqrt(2.0), np.float32), half=False)
    split = const("film_split", np.array([dim, dim], np.int64), half=False)
    axes0 = const("axes0", np.array([0], np.int64), half=False)

    x = linear("x", f"{stack}.inp", "inp")
    for i in range(n_blocks):
        p = f"{stack}.blocks.{i}"
        # Depthwise conv over frames: (frames, dim) -> (1, dim, frames) and back.
        xt = node("Unsqueeze", [node("Transpose", [x], f"b{i}_t", perm=[1, 0]), axes0], f"b{i}_u")
        w = const(f"{p}.dwconv.weight", a[f"{p}.dwconv.weight"])
        b = const(f"{p}.dwconv.bias", a[f"{p}.dwconv.bias"])
        h = node("Conv", [xt, w, b], f"b{i}_conv", group=dim, kernel_shape=[cfg.kernel_size],
                 pads=[cfg.kernel_size // 2] * 2)
        h = node("Transpose", [node("Squeeze", [h, axes0], f"b{i}_sq")], f"b{i}_h", perm=[1, 0])
        film = linear("cond", f"{p}.film", f"b{i}_film")
        nodes.append(helper.make_node("Split", [film, split], [f"b{i}_scale", f"b{i}_shift"], axis=1,
                                      name=f"b{i}_split"))
        n = node("LayerNormalization", [h, ones, zeros], f"b{i}_ln", axis=-1, epsilon=1e-5)
        h = node("Add", [node("Mul", [n, node("Add", [f"b{i}_scale", one], f"b{i}_1s")], f"b{i}_ns"),
                         f"b{i}_shift"], f"b{i}_film_out")
        u = linear(h, f"{p}.pw1", f"b{i}_pw1")
        erf = node("Erf", [node("Div", [u, sqrt2], f"b{i}_div")], f"b{i}_erf")
        ue = node("Mul", [u, node("Add", [erf, one], f"b{i}_erf1")], f"b{i}_ue")
        g = node("Mul", [ue, half_], f"b{i}_gelu")
        h = linear(g, f"{p}.pw2", f"b{i}_pw2")
        gamma = const(f"{p}.gamma", a[f"{p}.gamma"])
        x = node("Add", [x, node("Mul", [h, gamma], f"b{i}_g")], f"b{i}_out")
    nw = const(f"{stack}.norm.weight", a[f"{stack}.norm.weight"])
    nb = const(f"{stack}.norm.bias", a[f"{stack}.norm.bias"])
    x = node("LayerNormalization", [x, nw, nb], "norm", axis=-1, epsilon=1e-5)
    linear(x, f"{stack}.out", "y")

    in_dim = a[f"{stack}.inp.weight"].shape[1]
    out_dim = a[f"{stack}.out.weight"].shape[0]
    graph = helper.make_graph(
        nodes, f"adaptive_codec_{stack}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["frames", in_dim]),
         helper.make_tensor_value_info("cond", TensorProto.FLOAT, ["cond_frames", cfg.cond_dim])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["frames", out_dim])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="adaptive-codec", producer_version=RUNTIME_FORMAT)
    model.ir_version = 8  # readable by every onnxruntime that supports opset 17
    meta = {"format": RUNTIME_FORMAT, "stack": stack, "weights_id": weights.meta["weights_id"],
            "weights_sha256": weights.meta["sha256"]}
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def export_runtime(weights_path: Path, out_dir: Path | None = None) -> list[Path]:
    """Write the runtime's stacks of a weights file next to it (or into ``out_dir``); returns the paths.

    Each file is written to a temporary name and renamed, so a reader never
    sees half a file.
    """
    weights_path = Path(weights_path)
    weights = read_weights(weights_path)
    out_dir = Path(out_dir) if out_dir is not None else weights_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for stack in STACKS:
        data = build_stack(weights, stack).SerializeToString(deterministic=True)
        path = out_dir / stack_file_name(stack)
        tmp = path.with_suffix(".onnx.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        paths.append(path)
    return paths
