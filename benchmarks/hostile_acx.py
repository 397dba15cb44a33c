"""Time and memory of every hostile .acx case of issue 35 (targets: <= 2 s, <= 200 MB above baseline RSS).

Each case runs in a fresh subprocess: the codec is loaded and a valid stream
decoded first (the baseline: imports, weights, one warm decode), then the
case runs through the command line's own functions (``decode`` to a .wav,
``info``). The script prints, per case, the exit code, the first line of the
error, the seconds the case took and its peak RSS above the baseline::

    PYTHONPATH=. python benchmarks/hostile_acx.py [--case NAME]

The cases are built by tests/_hostile_acx.py (the same builders the tests use).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _builders():
    """tests/_hostile_acx.py, the crafted streams' one definition (loaded by path: it is not a package)."""
    spec = importlib.util.spec_from_file_location("_hostile_acx", ROOT / "tests" / "_hostile_acx.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

CASES = [
    ("memory_bomb_inconsistent", "decode"), ("memory_bomb_truncated", "decode"), ("max_frames", "decode"),
    ("many_channels", "decode"), ("length_mismatch", "info"), ("length_mismatch", "decode"),
    ("segments_gap", "decode"), ("cpu_bomb", "info"), ("cpu_bomb", "decode"), ("symbol_bomb", "decode"),
    ("extreme_conditioning", "decode"), ("truncated_info", "info"),
]


def _build(name: str, codec) -> bytes:
    import numpy as np

    H = _builders()
    shipped = {"weights": codec.parts.weights_meta["sha256"][:16], "digest": codec.parts.entropy_model.digest()[:16]}
    if name == "extreme_conditioning":
        rng = np.random.default_rng(0)
        return H.extreme_conditioning(codec.encode(rng.normal(0, 0.1, 24_000).astype(np.float32), 24_000, profile="speech"))
    if name == "truncated_info":
        return H.memory_bomb_truncated(**shipped)
    build = getattr(H, name)
    try:
        return build(**shipped)
    except TypeError:  # builders whose header is refused before any hash is read
        return build()


def run_case(name: str, command: str) -> dict:
    """One case in this process (called in a subprocess by :func:`main`)."""
    import numpy as np

    from adaptive_codec import AdaptiveCodec
    from adaptive_codec.cli import app as cli_app
    from adaptive_codec.cli import common

    codec = AdaptiveCodec.default()
    common.load_codec = lambda threads=1: codec  # the CLI's decode reuses the loaded codec
    sys.modules["adaptive_codec.cli.codec"].load_codec = common.load_codec
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"{name}.acx"
        path.write_bytes(_build(name, codec))
        warm = codec.encode(np.zeros(24_000, np.float32), 24_000, profile="speech")
        codec.decode(warm)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        args = [command, str(path)] + ([str(Path(d) / "out.wav")] if command == "decode" else [])
        t0 = time.perf_counter()
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = cli_app.main(args)
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        left = sorted(p.name for p in Path(d).iterdir() if p != path)
    return {"case": name, "command": command, "bytes": path.stat().st_size if path.exists() else None,
            "rc": rc, "seconds": round(seconds, 3), "rss_above_baseline_mb": round((peak - base) / 1024, 1),
            "error": err.getvalue().strip().splitlines()[:1], "files_left": left}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", help="run one case (NAME:COMMAND) in this process and print JSON")
    args = parser.parse_args()
    if args.case:
        name, command = args.case.split(":")
        print(json.dumps(run_case(name, command)))
        return
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print(f"{'case':26s} {'cmd':6s} {'rc':>3s} {'s':>7s} {'MB':>7s}  error")
    for name, command in CASES:
        out = subprocess.run([sys.executable, __file__, "--case", f"{name}:{command}"], capture_output=True,
                             text=True, env=env, timeout=600)
        try:
            r = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            print(f"{name:26s} {command:6s} crashed: {out.stderr.strip()[-300:]}")
            continue
        error = (r["error"][0] if r["error"] else "")[:110]
        print(f"{name:26s} {command:6s} {r['rc']:3d} {r['seconds']:7.3f} {r['rss_above_baseline_mb']:7.1f}  {error}"
              + (f"  LEFT {r['files_left']}" if r["files_left"] else ""))


if __name__ == "__main__":
    main()
