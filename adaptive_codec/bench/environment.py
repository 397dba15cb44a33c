"""Where and with what a benchmark ran: peak memory, package versions, git revision, machine.

Recorded in every run's ``meta.json`` and per row (peak memory), so numbers
can be compared only with numbers from the same setting.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["cpu_seconds", "git_revision", "machine_info", "peak_rss_mib", "reset_peak_rss", "versions"]


def cpu_seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    """CPU time (s) of this process that ``fn()`` took, and its result.

    CPU rather than wall time, so other load on a shared machine disturbs a
    one-thread measurement less.
    """
    t = time.process_time()
    out = fn()
    return time.process_time() - t, out


def reset_peak_rss() -> None:
    """Reset the process's peak-RSS counter (Linux ``clear_refs``; no-op elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mib() -> float:
    """Peak resident memory of this process since the last reset, in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("adaptive-codec", "torch", "torchaudio", "numpy", "librosa", "av", "pesq",
                 "pystoi", "pyloudnorm", "visqol-python", "soundfile", "pandas", "matplotlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    try:
        import av

        lib = av.library_versions.get("libavcodec")
        out["libavcodec"] = ".".join(map(str, lib)) if lib else "?"
    except Exception:  # noqa: BLE001 - informational only
        pass
    return out


def git_revision() -> str:
    """``<commit>[+dirty]`` of the source checkout, or ``unknown`` (installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    """CPU model, core count, memory and OS of this machine."""
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                            "cpu_count": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        info["cpu"] = platform.processor()
    return info
