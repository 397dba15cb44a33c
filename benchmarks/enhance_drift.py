"""Drift of the enhancement layer between two decoders (issue 34): the encoder's backbone vs another executor's.

The layer's encoder forms the residual from ITS run of the backbone's
decoder; another machine's decoder computes the backbone's coefficients
with other float rounding. The layer's integers decode the same everywhere
(its entropy model reads nothing from the backbone), so the difference can
only be the rounding of the backbone itself, scaled into the step sizes;
nothing is predicted from earlier output, so nothing accumulates. This
script measures it with the two executors this package has: streams
encoded (backbone and layer) with ONNX Runtime, decoded once with ONNX
Runtime and once with the NumPy executor. Per clip (one held-out clip per
class, depth 8, the layer at 16 kbps total): the backbone's coefficient
difference, the enhanced output's difference (SNR of one against the other
and max |difference|, 24 kHz) and the layer's share of it.

Usage (from the repository root; ~1 minute)::

    python benchmarks/enhance_drift.py --corpus ../shared/corpus > benchmarks/results/enhance_drift.txt
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from adaptive_codec.threads import pin_threads  # noqa: E402

from enhance_common import decoded_coefficients, fixed_depth, held_out_clips, read_mono, to_internal  # noqa: E402
from adaptive_codec.tools.enhance import band_bins, decode_layer, fit_gain  # noqa: E402
from enhance_prototype import CLASS_CONFIG  # noqa: E402


def snr_db(a: np.ndarray, b: np.ndarray) -> float:
    d = float(((a - b) ** 2).sum())
    return float("inf") if d == 0 else 10 * np.log10(float((a * a).sum()) / d)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus"))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--total-kbps", type=float, default=16.0)
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.csv").is_file():
        print(f"error: no corpus at {args.corpus} (expected manifest.csv there)", file=sys.stderr)
        return 2

    from adaptive_codec import AdaptiveCodec
    from adaptive_codec.bench.environment import git_revision

    pin_threads(1)
    ort = AdaptiveCodec.default(executor="onnxruntime")
    ref = AdaptiveCodec.default(executor="numpy")
    bb = ort.backbone
    edges = band_bins(bb.config.hop, bb.config.sample_rate_hz)
    print("# Enhancement layer drift: encoded with ONNX Runtime, decoded with ONNX Runtime and with NumPy")
    print(f"# weights {ort.weights_meta['weights_id']}; git {git_revision()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; depth 8 + layer at {args.total_kbps:g} kbps total\n")
    print("| clip | backbone coef SNR dB (ORT vs NumPy) | enhanced SNR dB | max abs diff (24 kHz audio) | layer's own diff SNR dB |")
    print("|---|---:|---:|---:|---:|")
    for label, path, _ in held_out_clips(args.corpus, 1):
        x, sr = read_mono(path, args.seconds)
        seconds = x.size / sr
        cfg = CLASS_CONFIG[label]
        x24 = to_internal(ort, x, sr)
        target = bb.mdct.frames(x24)
        data = ort.encode(x, sr, profile=fixed_depth(ort.registry.get(label), 8))
        c_ort, _ = decoded_coefficients(ort, data)
        c_np, _ = decoded_coefficients(ref, data)
        payload, _ = fit_gain(target, c_ort, args.total_kbps * seconds * 1000 / 8 - len(data), cfg, edges)
        e_ort, e_np = decode_layer(payload, c_ort, cfg, edges), decode_layer(payload, c_np, cfg, edges)
        y_ort, y_np = bb.inverse_mdct(e_ort, x24.size), bb.inverse_mdct(e_np, x24.size)
        layer_ort, layer_np = e_ort - c_ort, e_np - c_np
        print(f"| {label} {path.stem[:36]} | {snr_db(c_ort, c_np):.1f} | {snr_db(y_ort, y_np):.1f} | "
              f"{np.abs(y_ort - y_np).max():.2e} | {snr_db(layer_ort, layer_np):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
