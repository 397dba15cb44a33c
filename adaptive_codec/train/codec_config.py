"""Codec training settings: the ``[train]`` table of a ``--config`` TOML file.

Every key is optional (the defaults are the recipe of the shipped weights);
:meth:`TrainConfig.from_toml` rejects unknown keys, wrong types and values no
run can use with a one-line :class:`TrainConfigError` naming file and key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from adaptive_codec.audio import INTERNAL_SAMPLE_RATE_HZ
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.profiles.builtin import BUILTIN_CLASSES
from adaptive_codec.profiles.toml import load_toml

__all__ = ["TrainConfig", "TrainConfigError"]


class TrainConfigError(AdaptiveCodecError, ValueError):
    """A ``[train]`` TOML table is unreadable or holds an unusable setting."""


@dataclass
class TrainConfig:
    """Codec training settings (a ``[train]`` table in the ``--config`` TOML)."""

    batch_size: int = 16
    crop_s: float = 1.0  # crop length; 1 s = 75 frames
    learning_rate: float = 3e-4  # constant: resumable runs train like one long run
    # Optional cooldown (the "decay" of a warmup-stable-decay schedule): from
    # step decay_start_step the rate falls linearly to learning_rate x
    # final_lr_ratio over decay_steps steps, then stays there. It is a pure
    # function of the step, so a cooldown also stops and resumes exactly.
    # decay_steps = 0 keeps the rate constant.
    decay_start_step: int = 0
    decay_steps: int = 0
    final_lr_ratio: float = 0.1
    # Adversarial training (backbone/discriminator.py): 0 = off. From step
    # adversarial_start_step a multi-resolution STFT discriminator is trained
    # beside the codec, whose loss gains adversarial_weight x (hinge +
    # feature_matching_weight x feature matching). Meant for GPU sessions.
    adversarial_weight: float = 0.0
    feature_matching_weight: float = 2.0
    adversarial_start_step: int = 0
    discriminator_channels: int = 32
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    quantizer_dropout: float = 0.5  # share of examples with a random depth
    # Examples of profiles with depth_slope > 0 are quantized with the
    # per-frame depths the encoder will give them (depth_allocation.py) at
    # their sampled depth, instead of the same depth on every frame.
    adaptive_depth: bool = False
    commitment_weight: float = 0.25
    codebook_weight: float = 1.0
    prior_weight: float = 0.0  # gradient on the prior (0: priors come from code counts)
    prior_every: int = 50  # steps between entropy-prior refreshes from code counts
    prior_decay: float = 0.98  # count decay per refresh (window ~ 2,500 steps)
    dead_code_every: int = 200  # steps between dead-code replacement
    eval_every: int = 500
    checkpoint_every: int = 250
    seed: int = 0
    threads: int = 1
    eval_n_q: int = 8  # depth evaluated during training (6 kbps nominal)
    caches: list[str] = field(default_factory=list)
    # Relative share of each class in a batch, e.g. {speech = 2.0}: classes
    # left out weigh 1; empty = class-balanced. Steers training towards the
    # class whose quality target is furthest away.
    class_weights: dict[str, float] = field(default_factory=dict)
    # Share of crops low-passed at one of bandlimit_hz (drawn uniformly) before
    # coding: archives hold 16 and 22.05 kHz recordings, which reach the codec
    # resampled to 24 kHz with nothing above 8 / 11 kHz, while most music and
    # ambient training audio is full-band. 0 = off (crops as before 0.dev64650;
    # 0.5 gave +0.1 ViSQOL on the 16 kHz mixed files, docs/training-journal.md).
    bandlimit_prob: float = 0.5
    bandlimit_hz: list[float] = field(default_factory=lambda: [8000.0, 11025.0])

    @classmethod
    def from_toml(cls, path: Path) -> "TrainConfig":
        """Read the ``[train]`` table of a TOML file (missing keys keep their defaults).

        Raises
        ------
        TrainConfigError
            Unreadable file, invalid TOML, an unknown key, a value of the wrong
            type or one no run can use.
        """
        data = load_toml(path, what="config", error=TrainConfigError).get("train", {})
        if not isinstance(data, dict):
            raise TrainConfigError(f"{path}: 'train' must be a table")
        defaults = cls()
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise TrainConfigError(f"{path}: unknown [train] keys: {', '.join(sorted(unknown))}")
        for key, value in data.items():
            want = type(getattr(defaults, key))
            ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                data[key], ok = float(value), True
            if not ok:
                raise TrainConfigError(f"{path}: [train] {key}: expected {want.__name__}, "
                                       f"got {value!r}")
        if "class_weights" in data:
            weights = data["class_weights"]
            bad = [k for k, v in weights.items()
                   if isinstance(v, bool) or not isinstance(v, (int, float))]
            if bad:
                raise TrainConfigError(f"{path}: [train] class_weights: expected numbers, "
                                       f"got {', '.join(f'{k} = {weights[k]!r}' for k in bad)}")
            data["class_weights"] = {k: float(v) for k, v in weights.items()}
        if "bandlimit_hz" in data:
            cutoffs = data["bandlimit_hz"]
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in cutoffs):
                raise TrainConfigError(f"{path}: [train] bandlimit_hz: expected a list of numbers, "
                                       f"got {cutoffs!r}")
            data["bandlimit_hz"] = [float(v) for v in cutoffs]
        config = cls(**data)
        try:
            config.validate()
        except ValueError as exc:
            raise TrainConfigError(f"{path}: [train] {exc}") from None
        return config

    def validate(self) -> None:
        """Raise ``ValueError`` for settings no run can use."""
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.decay_steps < 0 or self.decay_start_step < 0:
            raise ValueError("decay_start_step and decay_steps must be >= 0")
        if not 0.0 <= self.final_lr_ratio <= 1.0:
            raise ValueError(f"final_lr_ratio must be in [0, 1], got {self.final_lr_ratio}")
        if self.adversarial_weight < 0 or self.feature_matching_weight < 0:
            raise ValueError("adversarial_weight and feature_matching_weight must be >= 0")
        if self.adversarial_start_step < 0 or self.discriminator_channels < 1:
            raise ValueError("adversarial_start_step must be >= 0 and discriminator_channels >= 1")
        if not 0.0 <= self.bandlimit_prob <= 1.0:
            raise ValueError(f"bandlimit_prob must be in [0, 1], got {self.bandlimit_prob}")
        nyquist = INTERNAL_SAMPLE_RATE_HZ / 2
        if self.bandlimit_prob > 0 and not (
                self.bandlimit_hz and all(math.isfinite(f) and 0 < f < nyquist for f in self.bandlimit_hz)):
            raise ValueError(f"bandlimit_hz must list cutoffs in (0, {nyquist:g}) Hz (the backbone's "
                             f"{INTERNAL_SAMPLE_RATE_HZ / 1000:g} kHz Nyquist), got {self.bandlimit_hz}")
        unknown = set(self.class_weights) - set(BUILTIN_CLASSES)
        if unknown:
            raise ValueError(f"class_weights: unknown classes {', '.join(sorted(unknown))} "
                             f"(training classes: {', '.join(BUILTIN_CLASSES)})")
        values = [self.class_weights.get(c, 1.0) for c in BUILTIN_CLASSES]
        if not all(math.isfinite(v) and v >= 0 for v in values) or sum(values) <= 0:
            raise ValueError(f"class_weights must be finite, >= 0 and not all 0, "
                             f"got {self.class_weights}")

    def learning_rate_at(self, step: int) -> float:
        """Learning rate of the update that produces step ``step + 1``.

        Constant unless ``decay_steps > 0``; then linear from
        ``decay_start_step`` down to ``learning_rate * final_lr_ratio``.
        """
        if self.decay_steps <= 0 or step < self.decay_start_step:
            return self.learning_rate
        done = min(1.0, (step - self.decay_start_step) / self.decay_steps)
        return self.learning_rate * (1.0 - (1.0 - self.final_lr_ratio) * done)
