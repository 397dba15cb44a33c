"""Benchmark configuration: a frozen dataclass built from a TOML file.

Example ``bench.toml`` (every key optional; these are the defaults)::

    bitrates_kbps = [1.5, 3.0, 6.0, 12.0]   # nominal ladder (actual kbps come from bytes)
    auto = true                             # adaptive routing ("adaptive-auto")
    auto_ladder = "relative"    # "relative": rung B scales each routed profile's own bitrate by
                                # B / reference_kbps (the profiles keep their split, as in use);
                                # "absolute": every segment at B, like a forced profile
    reference_kbps = 6.0        # the rung at which "relative" codes every profile at its own bitrate
    profiles = "all"                        # forced profiles: "all" or a list of names
    baselines = ["opus", "codec2", "flac"]  # keys of bench.baselines.BASELINES
    metrics = ["visqol", "pesq_wb", "stoi", "mel_distance", "stft_distance", "si_sdr", "loudness_diff"]
    split = "auto"              # "auto": held-out clips when the corpus manifest has a source column
    labels = "all"              # classes to run: "all" or a list, e.g. ["mixed"] for the mixed files only
    max_clips_per_class = 3     # 0 = every clip
    max_seconds = 8.0           # excerpt of each labelled clip from its start; 0 = whole clip
    max_mixed_files = 2         # files with reference segments (routing); 0 = all
    max_seconds_mixed = 30.0    # centred on the file's first class change; 0 = whole file
    bd_metrics = ["visqol", "pesq_wb"]
    snippet_seconds = 5.0
    snippet_kbps = 6.0
    seed = 0

    [opus]                      # constructor options of the Opus baseline
    application = "audio"
    frame_duration_ms = 20.0
    vbr = "on"
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptive_codec.bench.baselines import BASELINES, OpusBaseline
from adaptive_codec.bench.metrics import METRICS
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.profiles.toml import load_toml

__all__ = ["BenchConfig", "QUICK_OVERRIDES"]


class BenchConfigError(AdaptiveCodecError):
    """A benchmark config file or option is invalid."""


@dataclass(frozen=True)
class BenchConfig:
    """What one ``adaptive-codec bench`` run measures (see the module docstring)."""

    bitrates_kbps: tuple[float, ...] = (1.5, 3.0, 6.0, 12.0)  # nominal ladder
    auto: bool = True  # adaptive routing at every rung
    auto_ladder: str = "relative"  # "relative" | "absolute" (see the module docstring)
    reference_kbps: float = 6.0  # relative ladder: rung at which profiles use their own bitrates
    profiles: tuple[str, ...] | str = "all"  # forced profiles ("all" = every registered one)
    baselines: tuple[str, ...] = ("opus", "codec2", "flac")
    metrics: tuple[str, ...] = ("visqol", "pesq_wb", "stoi", "mel_distance", "stft_distance",
                                "si_sdr", "loudness_diff")
    split: str = "auto"  # "auto" | "all" | "test" (held-out by source recording)
    labels: tuple[str, ...] | str = "all"  # classes to run ("all" or a list of labels)
    max_clips_per_class: int = 3  # 0 = all
    max_seconds: float = 8.0  # excerpt length of labelled clips; 0 = whole clip
    max_mixed_files: int = 2  # files with .segments.csv; 0 = all
    max_seconds_mixed: float = 30.0  # excerpt centred on the first class change; 0 = whole file
    bd_metrics: tuple[str, ...] = ("visqol", "pesq_wb")  # quality axes of the BD-rate table
    # (bd_metrics and snippet_* may change on --resume: they shape the report, not the rows)
    snippet_seconds: float = 5.0  # audio examples in the report
    snippet_kbps: float = 6.0  # rung (nearest) whose decodings become snippets
    seed: int = 0  # clip sampling
    opus: dict[str, Any] = field(default_factory=dict)  # OpusBaseline(**opus)

    @classmethod
    def from_toml(cls, path: str | Path, base: "BenchConfig | None" = None) -> "BenchConfig":
        """Read and validate a config file; errors name the file and key.

        Keys the file sets replace those of ``base`` (default: the defaults),
        so ``--quick --config FILE`` is the quick run refined by FILE.
        """
        path = Path(path)
        data = load_toml(path, what="config", error=BenchConfigError)
        return cls.from_dict(data, where=str(path), base=base)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config",
                  base: "BenchConfig | None" = None) -> "BenchConfig":
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise BenchConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                                   f"known: {', '.join(names)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if isinstance(value, list):
                value = tuple(value)
            values[key] = value
        cfg = dataclasses.replace(base, **values) if base is not None else cls(**values)
        cfg.validate(where)
        return cfg

    def replace(self, **changes: Any) -> "BenchConfig":
        cfg = dataclasses.replace(self, **changes)
        cfg.validate("options")
        return cfg

    def validate(self, where: str = "config") -> None:
        def bad(key: str, problem: str) -> BenchConfigError:
            return BenchConfigError(f"{where}: key {key!r}: {problem}")

        if not self.bitrates_kbps or not all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0
                for b in self.bitrates_kbps):
            raise bad("bitrates_kbps", f"must be a non-empty list of positive numbers, got "
                                       f"{self.bitrates_kbps!r}")
        if isinstance(self.profiles, str) and self.profiles != "all":
            raise bad("profiles", f"must be \"all\" or a list of profile names, got {self.profiles!r}")
        if isinstance(self.labels, str) and self.labels != "all":
            raise bad("labels", f"must be \"all\" or a list of class labels, got {self.labels!r}")
        if not isinstance(self.labels, str) and (
                not self.labels or not all(isinstance(x, str) and x for x in self.labels)):
            raise bad("labels", f"must be \"all\" or a non-empty list of class labels, got "
                                f"{list(self.labels)!r}")
        for name in self.baselines:
            if name not in BASELINES:
                raise bad("baselines", f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
        for key in ("metrics", "bd_metrics"):
            for name in getattr(self, key):
                if name not in METRICS:
                    raise bad(key, f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
        if self.auto_ladder not in ("relative", "absolute"):
            raise bad("auto_ladder", f"must be relative or absolute, got {self.auto_ladder!r}")
        if not isinstance(self.reference_kbps, (int, float)) or isinstance(self.reference_kbps, bool) \
                or not self.reference_kbps > 0:
            raise bad("reference_kbps", f"must be a positive number, got {self.reference_kbps!r}")
        if self.split not in ("auto", "all", "test"):
            raise bad("split", f"must be auto, all or test, got {self.split!r}")
        for key in ("max_clips_per_class", "max_mixed_files", "seed"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(key, f"must be an integer >= 0, got {value!r}")
        for key in ("max_seconds", "max_seconds_mixed", "snippet_seconds", "snippet_kbps"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise bad(key, f"must be a number >= 0, got {value!r}")
        if not isinstance(self.opus, dict):
            raise bad("opus", "must be a table of Opus options")
        try:
            OpusBaseline(**self.opus)
        except TypeError:
            known = ", ".join(inspect.signature(OpusBaseline).parameters)
            unknown = ", ".join(sorted(set(self.opus) - set(inspect.signature(OpusBaseline).parameters)))
            raise bad("opus", f"unknown option(s) {unknown}; known: {known}") from None
        except ValueError as exc:
            raise bad("opus", str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}


#: What ``--quick`` changes: one clip per class, short excerpts, one rung.
QUICK_OVERRIDES: dict[str, Any] = {
    "bitrates_kbps": (6.0,),
    "max_clips_per_class": 1,
    "max_seconds": 4.0,
    "max_mixed_files": 1,
    "max_seconds_mixed": 12.0,
    "snippet_seconds": 3.0,
}
