"""Fine-tune a custom profile's conditioning embedding on the user's audio.

The backbone stays frozen; only one ``cond_dim`` vector is learned, starting
from the base profile's embedding, with the custom profile's own loss
weights and depth. Files are split 80/20 (by file) and the held-out part is
scored before and after, so the user sees whether the tuning helped.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file
from tqdm import tqdm

from adaptive_codec.audio import AUDIO_SUFFIXES, load_audio, resample, to_mono
from adaptive_codec.backbone.inference import torch_model
from adaptive_codec.backbone.losses import ReconstructionLoss, combine, weight_matrix
from adaptive_codec.errors import AdaptiveCodecError, ProfileError
from adaptive_codec.profiles import Profile
from adaptive_codec.profiles.toml import load_toml


@dataclass
class ProfileTuningResult:
    """What :func:`tune_profile` did."""

    output: Path
    steps: int
    seconds: float
    heldout_loss_before: float
    heldout_loss_after: float
    kept: str  # "tuned", or "base" when tuning made held-out loss worse
    n_train_files: int
    n_heldout_files: int


def profile_for_tuning(path: Path):
    """Load a profile TOML whose ``conditioning`` file may not exist yet.

    Returns
    -------
    profile : Profile
        The profile without its conditioning (tuning starts from ``base``).
    output : Path or None
        Where its ``conditioning`` key says the tuned embedding goes.
    """
    path = Path(path)
    data = load_toml(path, what="profile", error=ProfileError)  # words errors as from_toml does
    target = data.pop("conditioning", None)
    if target is None:
        return Profile.from_toml(path), None
    profile = Profile.from_dict(data, base_dir=path.parent)
    out = Path(str(target))
    return profile, (out if out.is_absolute() else path.parent / out)


def _audio_files(data: Path) -> list[Path]:
    if data.is_file():
        return [data]
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise AdaptiveCodecError(f"{data}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
    return files


def _load_24k(files: list[Path], sample_rate_hz: int) -> list[np.ndarray]:
    out = []
    for f in files:
        audio, info = load_audio(f)
        mono = np.asarray(resample(to_mono(audio), info.sample_rate_hz, sample_rate_hz), np.float32)
        if mono.size >= sample_rate_hz // 2 and np.sqrt(np.mean(mono**2)) > 1e-4:
            out.append(mono)
    return out


def _crops(clips: list[np.ndarray], n: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    out = np.zeros((n, length), np.float32)
    for i in range(n):
        clip = clips[rng.integers(len(clips))]
        if clip.size <= length:
            out[i, : clip.size] = clip
        else:
            start = rng.integers(0, clip.size - length)
            out[i] = clip[start : start + length]
    return torch.from_numpy(out)


def tune_profile(codec, profile, data: Path, output: Path | None = None, *, steps: int = 150,
                 batch_size: int = 8, crop_s: float = 1.0, learning_rate: float = 1e-2,
                 max_minutes: float = 10.0, seed: int = 0, progress: bool = True
                 ) -> ProfileTuningResult:
    """Learn ``profile``'s conditioning vector on audio under ``data``.

    Parameters
    ----------
    codec : AdaptiveCodec
        Supplies the frozen backbone and the base profile's embedding.
    profile : Profile
        A custom profile with a ``base`` (where tuning starts and whose
        entropy prior it uses).
    data : Path
        Audio file or folder (searched recursively).
    output : Path, optional
        Where to write the safetensors file; default the profile's
        ``conditioning`` path (relative to its TOML).

    Returns
    -------
    ProfileTuningResult
    """
    if profile.base is None:
        raise AdaptiveCodecError(f"profile {profile.name!r} needs a 'base' profile to start from")
    if output is None:
        if profile.conditioning is None:
            raise AdaptiveCodecError(
                f"profile {profile.name!r} names no 'conditioning' file; pass --out")
        output = profile.conditioning
        if not output.is_absolute() and profile.source is not None:
            output = Path(profile.source).parent / output
    files = _audio_files(Path(data))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))
    n_held = max(1, len(files) // 5) if len(files) >= 2 else 0
    held_files = [files[i] for i in order[:n_held]]
    train_files = [files[i] for i in order[n_held:]]
    model = torch_model(codec.backbone)  # differentiable, whatever the codec runs on
    sr = model.config.sample_rate_hz
    train = _load_24k(train_files, sr)
    held = _load_24k(held_files, sr) or train
    if not train:
        raise AdaptiveCodecError(f"{data}: no usable (non-silent, >= 0.5 s) audio")

    prior, start_vec = codec.prior_and_vector(codec.registry.get(profile.base))
    vec = torch.nn.Parameter(torch.from_numpy(start_vec.copy()))
    for p in model.parameters():
        p.requires_grad_(False)
    loss_fn = ReconstructionLoss(sr)
    weights = weight_matrix([profile.loss_weights.as_dict()])
    n_q = torch.full((batch_size,), codec.depth_for(profile))
    crop = int(crop_s * sr)
    held_batch = _crops(held, batch_size, crop, np.random.default_rng(seed + 1))

    def batch_loss(x: torch.Tensor) -> torch.Tensor:
        cond = vec[None, None, :].expand(x.shape[0], 1, -1)
        out = model(x, cond, n_q[: x.shape[0]])
        terms = loss_fn(out.audio, x)
        return combine(terms, weights, torch.zeros(x.shape[0], dtype=torch.long)).mean()

    with torch.no_grad():
        before = float(batch_loss(held_batch))
    opt = torch.optim.Adam([vec], lr=learning_rate)
    t0 = time.monotonic()
    done = 0
    for _ in tqdm(range(steps), disable=not progress, unit="step", desc=f"tune {profile.name}"):
        if time.monotonic() - t0 > max_minutes * 60:
            break
        loss = batch_loss(_crops(train, batch_size, crop, rng))
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += 1
    with torch.no_grad():
        after = float(batch_loss(held_batch))
    for p in model.parameters():
        p.requires_grad_(True)
    final, kept = vec.detach().numpy().astype(np.float32), "tuned"
    if after > before:
        # Tuning did not help on held-out audio: keep the base embedding.
        final, kept = start_vec.astype(np.float32), "base"
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file({"embedding": final, "prior_id": np.array([prior], np.int64)}, tmp,
                  metadata={"profile": profile.name, "base": profile.base,
                            "weights_id": codec.weights_meta["weights_id"], "steps": str(done)})
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return ProfileTuningResult(output, done, time.monotonic() - t0, before, after, kept,
                               len(train_files), len(held_files))
