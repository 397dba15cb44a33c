"""Continue codec training on a lent GPU from carried shards; bring back fp16 weights.

    PYTHONPATH=. python3 tools/device_train.py --shard SHARD_DIR [--shard ...]
        [--init WEIGHTS] [--minutes 8] [--cooldown-minutes 0] [--batch-size 16]
        [--config TRAIN.toml] [--profiles-dir DIR] [--out $OUT]

Made for the device machines (docs/TRAINING.md, "Training on a lent GPU"):
torch, numpy and safetensors are there; the package's import needs
``soundfile``, ``librosa`` and ``tomli_w`` too, which travel as wheels. The
run starts from ``--init`` (default: the shipped weights, whose metadata
holds the step count and the code counts behind the entropy priors) with a
fresh optimizer - unless ``--run-dir`` already holds a checkpoint (a second
call on the same warm machine), which is resumed with its optimizer state
instead - trains on the shards' crops for ``--minutes`` and writes to ``--out``.
FLAC shards (``pack_shard.py``'s default) are decoded first
(``adaptive_codec.train.shards.expand_shard``).

``--cooldown-minutes M`` spends the last M of the minutes in a linear
learning-rate decay to ``final_lr_ratio``: a GPU's steps/s is not known in
advance, so the decay's length in steps is set from the speed measured in
the constant phase, whose weights are exported too (``backbone-const.safetensors``,
the point to continue from at a constant rate). Outputs:

* ``backbone.safetensors`` - fp16 weights (11 MB: fits the 16 MiB a returned
  file may have); copy over ``adaptive_codec/weights/`` or pass as ``--init``
  to the next call / to ``adaptive-codec train codec --init``;
* ``log.csv`` - the training log (every 50 steps);
* ``run.json`` - device, torch version, steps, wall time, steps/s, shard hours.

No held-out evaluation happens there (PESQ/ViSQOL are not installed): score
the returned weights here with ``benchmarks/codec_quality.py``.
The full optimizer checkpoint (66 MB) stays on the device machine and is lost
with it, so each call begins a fresh AdamW: keep calls long rather than many.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shard", type=Path, action="append", required=True,
                        help="shard folder from tools/pack_shard.py; repeatable")
    parser.add_argument("--init", type=Path, default=REPO / "adaptive_codec/weights/backbone.safetensors",
                        help="weights to start from (default: the shipped ones); "
                             "a checkpoint in --run-dir takes precedence")
    parser.add_argument("--minutes", type=float, default=8.0, help="training wall time (default 8)")
    parser.add_argument("--cooldown-minutes", type=float, default=0.0,
                        help="last part of --minutes spent decaying the learning rate (default 0: none)")
    parser.add_argument("--batch-size", type=int, default=None, help="override [train] batch_size")
    parser.add_argument("--config", type=Path, default=None, help="TOML with a [train] table")
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/device-run"),
                        help="checkpoint folder on the device machine (default /tmp/device-run)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "device-out")),
                        help="where the weights, log and run.json go (default $OUT)")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--profiles-dir", type=Path, action="append", default=[],
                        help="folder of profile TOMLs with override = true (e.g. another rate_lambda "
                             "for one class) that training uses instead of the built-ins; repeatable")
    args = parser.parse_args(argv)

    import torch

    from adaptive_codec.errors import ProfileError
    from adaptive_codec.profiles import ProfileRegistry
    from adaptive_codec.train.codec import CodecTrainer, TrainConfig, TrainConfigError
    from adaptive_codec.train.shards import expand_shard

    for shard in args.shard:
        if not any(shard.glob("*.npy")) and not any(shard.glob("*.flac")):
            print(f"error: {shard}: no <label>.npy or <label>.flac shard files", file=sys.stderr)
            return 1
    if not 0 <= args.cooldown_minutes < args.minutes:
        print("error: --cooldown-minutes must be >= 0 and below --minutes", file=sys.stderr)
        return 1
    if not args.init.exists():
        print(f"error: {args.init}: no such weights file", file=sys.stderr)
        return 1
    try:
        registry = ProfileRegistry.default(args.profiles_dir)
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        cfg = TrainConfig.from_toml(args.config) if args.config else TrainConfig()
    except TrainConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        cfg.caches = [str(expand_shard(s, args.run_dir / f"shard{i}")) for i, s in enumerate(args.shard)]
    except (OSError, RuntimeError, ValueError) as exc:  # soundfile's errors are RuntimeErrors
        print(f"error: cannot decode shard: {exc}", file=sys.stderr)
        return 1
    if args.batch_size:
        cfg.batch_size = args.batch_size
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    trainer = CodecTrainer(args.run_dir, cfg, registry, init_weights=args.init,
                           device=device, held_out=None)
    start_step = trainer.step
    hours = trainer.sampler.hours()
    print(f"device {device}: step {start_step}, batch {cfg.batch_size}, shard hours "
          + ", ".join(f"{k} {v:.2f}" for k, v in hours.items()), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    constant = args.minutes - args.cooldown_minutes
    if args.cooldown_minutes > 0:
        trainer.run(10**9, constant, export_to=args.out / "backbone-const.safetensors", progress=False)
        rate = (trainer.step - start_step) / max(time.monotonic() - t0, 1e-9)
        cfg.decay_start_step = trainer.step
        cfg.decay_steps = max(1, int(rate * args.cooldown_minutes * 60))
        print(f"constant phase: {trainer.step - start_step} steps at {rate:.2f} steps/s; "
              f"cooldown over {cfg.decay_steps} steps", flush=True)
    remaining = args.cooldown_minutes if args.cooldown_minutes > 0 else args.minutes
    trainer.run(10**9, remaining, export_to=args.out / "backbone.safetensors", progress=False)
    wall = time.monotonic() - t0
    steps = trainer.step - start_step
    if (args.run_dir / "log.csv").exists():  # written every 50 steps
        shutil.copy(args.run_dir / "log.csv", args.out / "log.csv")
    info = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__, "start_step": start_step, "end_step": trainer.step,
        "steps": steps, "wall_s": round(wall, 1), "steps_per_s": round(steps / max(wall, 1e-9), 3),
        "batch_size": cfg.batch_size, "shard_hours": hours,
        "constant_minutes": constant, "cooldown_minutes": args.cooldown_minutes,
        "shards": [str(s) for s in args.shard], "init": str(args.init),
        "config": {k: v for k, v in vars(cfg).items() if k != "caches"},
        # the rate terms the trainer used (a --profiles-dir override shows here)
        "rate_lambda": {n: round(v, 6) for n, v in zip(trainer.model.config.profiles, trainer.lambdas.tolist())},
        "profiles_dirs": [str(d) for d in args.profiles_dir],
    }
    (args.out / "run.json").write_text(json.dumps(info, indent=1))
    print(json.dumps({k: info[k] for k in ("device", "start_step", "end_step", "steps_per_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
