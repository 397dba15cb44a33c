"""int8 pointwise layers for the runtime's stacks: speed and quality cost, measured (issue 32, item 6).

Builds, in a temporary folder, the runtime's encoder and decoder graphs with
float32 weights and a copy whose pointwise MatMuls (``pw1``, ``pw2`` of every
block: ~90 % of the FLOPs) are int8 (ONNX Runtime's ``quantize_dynamic``:
int8 weights per output channel, uint8 activations quantized per call, i.e.
per piece), then on one thread:

1. each stack on a piece of ``CHUNK_FRAMES`` frames, float32 and int8
   interleaved, best of ``--repeats``;
2. the codec round trip (in process) on ~56 s of held-out music with the
   shipped float32 stacks and with both stacks int8;
3. quality on every held-out clip (or ``--max-clips`` per class), coded by
   its class's profile: PESQ-WB on speech, ViSQOL (audio mode) on music and
   ambient, for float32, int8 encoder only, int8 decoder only, and both,
   with the mean / worst per-clip difference to float32.

Needs the train extra (``onnx`` and ONNX Runtime's quantization tools) and
the bench extra (metrics). The int8 graphs are not shipped; see
docs/RESULTS.md for why.

Usage (from the repository root)::

    python benchmarks/runtime_int8.py --out benchmarks/results/runtime_int8.txt
    python benchmarks/runtime_int8.py --max-clips 3 --no-visqol   # quick look
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from adaptive_codec import AdaptiveCodec  # noqa: E402
from adaptive_codec.audio import load_audio, resample  # noqa: E402
from adaptive_codec.backbone.streaming import CHUNK_FRAMES  # noqa: E402
from adaptive_codec.bench.corpus import is_held_out  # noqa: E402
from adaptive_codec.resources import weights_dir  # noqa: E402
from adaptive_codec.threads import pin_threads  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
VARIANTS = ("float32", "int8 encoder", "int8 decoder", "int8 both")


def build_graphs(folder: Path) -> dict[tuple[str, str], Path]:
    """float32 and int8-pointwise graphs of both stacks: ``{(stack, "float32" | "int8"): path}``."""
    import onnx
    from onnx import numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from adaptive_codec.runtime.export import build_stack
    from adaptive_codec.runtime.weights import read_weights

    weights = read_weights(weights_dir() / "backbone.safetensors")
    paths = {}
    for stack in ("encoder", "decoder"):
        model = build_stack(weights, stack)
        # The shipped graphs widen fp16 initializers with Casts; the quantizer wants float initializers.
        halves = {i.name: i for i in model.graph.initializer if i.name.endswith("_f16")}
        inits = [i for i in model.graph.initializer if i.name not in halves]
        nodes = []
        for n in model.graph.node:
            if n.op_type == "Cast" and n.input[0] in halves:
                inits.append(numpy_helper.from_array(numpy_helper.to_array(halves[n.input[0]]).astype(np.float32),
                                                     n.output[0]))
            else:
                nodes.append(n)
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        del model.graph.initializer[:]
        model.graph.initializer.extend(inits)
        fp32 = folder / f"{stack}-float32.onnx"
        onnx.save(model, str(fp32))
        blocks = weights.config.encoder_blocks if stack == "encoder" else weights.config.decoder_blocks
        int8 = folder / f"{stack}-int8.onnx"
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_quantize=[f"b{i}_pw{j}_mm" for i in range(blocks) for j in (1, 2)])
        paths[stack, "float32"], paths[stack, "int8"] = fp32, int8
    return paths


def session(path: Path):
    """An ONNX Runtime session with the runtime's options (one thread, no spinning)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


class Stacks:
    """The runtime's StackExecutor on two given sessions."""

    def __init__(self, encoder, decoder) -> None:
        self.encoder, self.decoder = encoder, decoder

    def encode(self, features: np.ndarray, cond: np.ndarray) -> np.ndarray:
        return self.encoder.run(None, {"x": features, "cond": cond})[0]

    def decode(self, latent: np.ndarray, cond: np.ndarray) -> np.ndarray:
        return self.decoder.run(None, {"x": np.ascontiguousarray(latent, np.float32), "cond": cond})[0]


def held_out(corpus: Path, label: str) -> list[Path]:
    rows = csv.DictReader(open(corpus / "manifest.csv", newline="", encoding="utf-8"))
    return sorted(corpus / r["path"] for r in rows if r["label"] == label and is_held_out(r["source"]))


def stack_speed(sessions: dict, repeats: int) -> list[str]:
    rng = np.random.default_rng(0)
    lines = [f"{'stack':8s} {'float32 ms':>10s} {'int8 ms':>8s} {'speed-up':>8s}  output SNR int8 vs float32",
             f"(one piece of {CHUNK_FRAMES} frames = {CHUNK_FRAMES / 75:.0f} s, best of {repeats}, interleaved)"]
    for stack in ("encoder", "decoder"):
        dim = sessions[stack, "float32"].get_inputs()[0].shape[1]
        x = (rng.standard_normal((CHUNK_FRAMES, dim)) * 0.5).astype(np.float32)
        cond = np.zeros((1, 32), np.float32)
        best, out = {}, {}
        for _ in range(repeats):
            for kind in ("float32", "int8"):
                t0 = time.perf_counter()
                out[kind] = sessions[stack, kind].run(None, {"x": x, "cond": cond})[0]
                best[kind] = min(best.get(kind, np.inf), time.perf_counter() - t0)
        err = out["int8"] - out["float32"]
        snr = 10 * np.log10(float((out["float32"] ** 2).sum()) / float((err ** 2).sum()))
        lines.append(f"{stack:8s} {best['float32'] * 1e3:10.1f} {best['int8'] * 1e3:8.1f} "
                     f"{best['float32'] / best['int8']:7.2f}x  {snr:.1f} dB (random input)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-clips", type=int, default=0, help="clips per class (0: every held-out clip)")
    parser.add_argument("--no-visqol", action="store_true", help="speech (PESQ-WB) only")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.csv").is_file():
        print(f"error: no corpus at {args.corpus} (expected manifest.csv there)", file=sys.stderr)
        return 2
    from adaptive_codec.bench.metrics import pesq_wb, visqol

    pin_threads(1)
    lines = [f"# int8 pointwise layers vs float32 ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             f"one thread; load average at start {os.getloadavg()[0]:.1f}", ""]
    with tempfile.TemporaryDirectory(prefix="runtime-int8-") as tmp:
        sessions = {key: session(path) for key, path in build_graphs(Path(tmp)).items()}
    lines += ["## stacks", *stack_speed(sessions, args.repeats), ""]
    codecs = {}
    for variant in VARIANTS:
        codec = AdaptiveCodec.default(executor="onnxruntime")
        enc = "int8" if variant in ("int8 encoder", "int8 both") else "float32"
        dec = "int8" if variant in ("int8 decoder", "int8 both") else "float32"
        codec.backbone.stacks = Stacks(sessions["encoder", enc], sessions["decoder", dec])
        codecs[variant] = codec

    parts, total = [], 0
    for path in held_out(args.corpus, "music"):
        x, info = load_audio(path)
        x = resample(x, info.sample_rate_hz, 44100)
        parts.append(np.repeat(x[:1], 2, 0) if x.shape[0] < 2 else x[:2])
        total += parts[-1].shape[1]
        if total >= 60 * 44100:
            break
    music = np.concatenate(parts, axis=1)[:, : 60 * 44100].astype(np.float32)
    seconds = music.shape[1] / 44100
    lines += [f"## codec round trip, {seconds:.1f} s of held-out music (44.1 kHz stereo), best of {args.repeats}",
              f"{'stacks':14s} {'enc x rt':>9s} {'dec x rt':>9s} {'round trip x rt':>15s}"]
    best = {}
    for _ in range(args.repeats):
        for variant in ("float32", "int8 both"):
            t0 = time.perf_counter()
            blob = codecs[variant].encode(music, 44100, profile="music")
            t1 = time.perf_counter()
            codecs[variant].decode(blob)
            t2 = time.perf_counter()
            e, d = best.get(variant, (np.inf, np.inf))
            best[variant] = (min(e, t1 - t0), min(d, t2 - t1))
    for variant, (e, d) in best.items():
        lines.append(f"{variant:14s} {seconds / e:9.1f} {seconds / d:9.1f} {seconds / (e + d):15.1f}")

    labels = ("speech",) if args.no_visqol else ("speech", "music", "ambient")
    lines += ["", "## quality on held-out clips (each coded by its class's profile)",
              f"{'class':8s} {'metric':8s} {'n':>3s} " + " ".join(f"{v:>13s}" for v in VARIANTS)
              + "   (mean; then mean / worst difference to float32)"]
    for label in labels:
        clips = held_out(args.corpus, label)[: args.max_clips or None]
        scores = {v: [] for v in VARIANTS}
        for clip in clips:
            x, info = load_audio(clip)
            ref = x.mean(0)
            for variant, codec in codecs.items():
                y, _ = codec.decode(codec.encode(x, info.sample_rate_hz, profile=label))
                y = y if y.ndim == 1 else y.mean(0)
                metric = pesq_wb if label == "speech" else visqol
                scores[variant].append(metric(ref, y, info.sample_rate_hz))
        base = np.array(scores["float32"])
        name = "pesq_wb" if label == "speech" else "visqol"
        lines.append(f"{label:8s} {name:8s} {len(clips):3d} " + " ".join(f"{np.mean(scores[v]):13.4f}" for v in VARIANTS))
        diffs = {v: np.array(scores[v]) - base for v in VARIANTS}
        lines.append(f"{'':21s}" + " ".join(f"{d.mean():+6.3f}/{d.min():+6.3f}" for d in diffs.values()))
    lines.append(f"load average at end {os.getloadavg()[0]:.1f}")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
