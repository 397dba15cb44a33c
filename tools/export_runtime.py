"""Export backbone weights to the torch-free runtime's ONNX stacks (deterministic: same weights, same bytes).

Usage::

    python tools/export_runtime.py                       # the shipped weights, in place
    python tools/export_runtime.py --weights W.safetensors [--out DIR] [--check]

Writes ``backbone-encoder.onnx`` and ``backbone-decoder.onnx`` next to the
weights (or into ``--out``); each records the weights' id and SHA-256, which
the runtime checks at load. ``--check`` also runs both stacks on ONNX Runtime
and on NumPy on a random piece and prints the largest difference. Needs the
``onnx`` package (the ``train`` extra); torch is not used.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.resources import weights_dir
from adaptive_codec.runtime import load_backbone
from adaptive_codec.runtime.export import export_runtime


def _check(weights: Path, folder: Path) -> float:
    """Largest |ONNX Runtime - NumPy| over both stacks on a random 300-frame piece."""
    ort_bb = load_backbone(weights, "onnxruntime") if folder == weights.parent else None
    np_bb = load_backbone(weights, "numpy")
    if ort_bb is None:  # exported elsewhere: load the stacks from there
        from adaptive_codec.runtime.onnx import OnnxStacks
        from adaptive_codec.runtime.weights import read_weights

        ort_stacks = OnnxStacks(read_weights(weights), folder)
    else:
        ort_stacks = ort_bb.stacks
    rng = np.random.default_rng(0)
    cfg = np_bb.config
    cond = np_bb.profile_vectors[:1]
    feats = rng.standard_normal((300, cfg.hop + 1)).astype(np.float32)
    latent = rng.standard_normal((300, cfg.latent_dim)).astype(np.float32)
    worst = max(float(np.abs(ort_stacks.encode(feats, cond) - np_bb.stacks.encode(feats, cond)).max()),
                float(np.abs(ort_stacks.decode(latent, cond) - np_bb.stacks.decode(latent, cond)).max()))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None, help="backbone safetensors (default: the shipped)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the .onnx files (default: beside the weights)")
    parser.add_argument("--check", action="store_true", help="compare ONNX Runtime with NumPy on a random piece")
    args = parser.parse_args(argv)
    weights = args.weights or weights_dir() / "backbone.safetensors"
    try:
        if not weights.is_file():
            raise AdaptiveCodecError(f"{weights}: no such weights file")
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise AdaptiveCodecError("the export needs the onnx package: pip install 'adaptive-codec[train]'") from None
        paths = export_runtime(weights, args.out)
        for path in paths:
            print(f"wrote {path} ({path.stat().st_size} bytes, sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:16]})")
        if args.check:
            print(f"max |onnxruntime - numpy| on a random piece: {_check(weights, paths[0].parent):.3g}")
    except AdaptiveCodecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
