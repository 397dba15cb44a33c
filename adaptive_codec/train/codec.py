"""Training loop of the shared backbone codec.

Resumable in short runs (``--max-minutes``): the checkpoint holds model,
optimizer, sampler position and step; a constant learning rate means a run
that stops and resumes trains exactly like one long run. Every example
carries its class, and its loss uses that profile's ``[loss_weights]`` and
``rate_lambda`` from the profile TOML.

Under ``torchrun`` (see :mod:`adaptive_codec.train.ddp`) the model is wrapped
in ``DistributedDataParallel``: every rank draws its own crops (seed offset by
rank), gradients are averaged, and only rank 0 writes checkpoints, logs,
evaluations and the exported weights. One process (rank 0 of 1) trains
exactly as before. The settings (:class:`TrainConfig`, the ``[train]``
table) are in :mod:`adaptive_codec.train.codec_config`.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from adaptive_codec.backbone.discriminator import MultiResolutionDiscriminator, discriminator_loss, generator_loss
from adaptive_codec.backbone.losses import ReconstructionLoss, combine, rate_bits, weight_matrix
from adaptive_codec.backbone.model import Backbone, BackboneConfig
from adaptive_codec.backbone.weights import export_weights, load_weights
from adaptive_codec.planning.depth_allocation import allocate_depths
from adaptive_codec.threads import pin_threads
from adaptive_codec.train.codec_config import TrainConfig, TrainConfigError
from adaptive_codec.train.codec_data import CropSampler
from adaptive_codec.train.codec_eval import HeldOutSet, evaluate
from adaptive_codec.train.ddp import DistContext

__all__ = ["CodecTrainer", "RANK_SEED_STRIDE", "TrainConfig", "TrainConfigError"]

#: Sampler seed offset between ranks (rank 0 keeps the single-process seed).
RANK_SEED_STRIDE = 100_003


def _profile_weights(names: tuple[str, ...], registry) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss-weight matrix and rate lambdas of the backbone's built-in profiles."""
    profiles = [registry.get(n) for n in names]
    weights = weight_matrix([p.loss_weights.as_dict() for p in profiles])
    lambdas = torch.tensor([float(p.rate_lambda) for p in profiles])
    return weights, lambdas


class _TrainForward(torch.nn.Module):
    """Everything a step computes from parameters, in one ``forward`` (what DDP wraps)."""

    def __init__(self, model: Backbone) -> None:
        super().__init__()
        self.model = model

    def forward(self, audio: torch.Tensor, ids: torch.Tensor, n_q: torch.Tensor, depth_fn=None):
        cond = self.model.frame_conditioning(ids)
        out = self.model(audio, cond, n_q, depth_fn)
        return out, self.model.prior_logits[ids]  # prior (B, L, K)


class CodecTrainer:
    """Owns model, optimizer, data and logs of one training directory.

    Parameters
    ----------
    run_dir : Path
        Holds ``checkpoint.pt`` (optimizer state; never shipped), ``log.csv``
        and ``eval.csv``.
    config : TrainConfig
    registry : ProfileRegistry
        Source of the per-profile loss weights.
    init_weights : Path, optional
        Shipped safetensors weights to start from when there is no checkpoint.
    device : str
    dist : DistContext, optional
        Rank and world size under ``torchrun`` (default: one process).
    """

    def __init__(self, run_dir, config, registry, init_weights=None, device="cpu",
                 backbone_config: BackboneConfig | None = None, held_out: HeldOutSet | None = None,
                 dist: DistContext | None = None):
        self.run_dir = Path(run_dir)
        self.dist = dist or DistContext()
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.cfg = config
        self.device = torch.device(device)
        torch.manual_seed(config.seed)
        self.step = 0
        ckpt_path = self.run_dir / "checkpoint.pt"
        state = None
        if ckpt_path.exists():
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
            backbone_config = BackboneConfig.from_dict(json.loads(state["backbone_config"]))
            self.model = Backbone(backbone_config)
            self.model.load_state_dict(state["model"])
            self.step = int(state["step"])
        elif init_weights is not None:
            self.model, meta = load_weights(init_weights)
            self.step = int(meta.get("steps", 0))
        else:
            self.model = Backbone(backbone_config)
        self.model.to(self.device).train()
        # Code counts behind the entropy priors. Shipped weights store only
        # log(counts + 0.5), which is inverted here so a resumed run keeps them.
        if state is not None and "code_counts" in state:
            self.code_counts = state["code_counts"].to(self.device)
        else:
            self.code_counts = (self.model.prior_logits.detach().exp() - 0.5).clamp_min(0)
        self._new_counts = torch.zeros_like(self.code_counts)
        self.loss = ReconstructionLoss(self.model.config.sample_rate_hz).to(self.device)
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=config.learning_rate,
            betas=(0.8, 0.99), weight_decay=config.weight_decay,
        )
        if state is not None:
            # The rate is set from the schedule before every update (train_step).
            self.opt.load_state_dict(state["optimizer"])
        self.disc = self.opt_d = None
        if config.adversarial_weight > 0:
            if self.dist.active:
                raise TrainConfigError("adversarial training runs in one process only "
                                       "(not under torchrun yet)")
            self.disc = MultiResolutionDiscriminator(
                channels=config.discriminator_channels).to(self.device).train()
            self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=config.learning_rate,
                                           betas=(0.8, 0.99), weight_decay=config.weight_decay)
            # A checkpoint from a run without the discriminator starts a fresh one.
            if state is not None and "discriminator" in state:
                self.disc.load_state_dict(state["discriminator"])
                self.opt_d.load_state_dict(state["discriminator_optimizer"])
        self.weights, self.lambdas = _profile_weights(self.model.config.profiles, registry)
        self.weights, self.lambdas = self.weights.to(self.device), self.lambdas.to(self.device)
        self.slopes = [float(registry.get(n).depth_slope) for n in self.model.config.profiles]
        crop = int(round(config.crop_s * self.model.config.sample_rate_hz))
        seed = config.seed + self.step + RANK_SEED_STRIDE * self.dist.rank
        self.sampler = CropSampler([Path(c) for c in config.caches], crop, seed=seed,
                                   class_weights=config.class_weights,
                                   bandlimit_prob=config.bandlimit_prob,
                                   bandlimit_hz=config.bandlimit_hz,
                                   sample_rate_hz=self.model.config.sample_rate_hz)
        self.held_out = held_out
        self.needs_kmeans = state is None and init_weights is None
        self.forward = _TrainForward(self.model)  # wrapped in DDP by run() when distributed

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically (rank 0 only)."""
        if not self.dist.is_main:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "backbone_config": json.dumps(self.model.config.to_dict()),
            "code_counts": self.code_counts,
        }
        if self.disc is not None:
            state["discriminator"] = self.disc.state_dict()
            state["discriminator_optimizer"] = self.opt_d.state_dict()
        tmp = self.run_dir / "checkpoint.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.run_dir / "checkpoint.pt")

    def _batch(self):
        audio, labels = self.sampler.batch(self.cfg.batch_size)
        names = self.model.config.profiles
        ids = torch.tensor([names.index(lb) for lb in labels])
        n_levels = self.model.config.n_levels
        n_q = torch.full((len(labels),), n_levels)
        drop = torch.rand(len(labels)) < self.cfg.quantizer_dropout
        n_q[drop] = torch.randint(1, n_levels + 1, (int(drop.sum()),))
        return audio.to(self.device), ids.to(self.device), n_q.to(self.device)

    @torch.no_grad()
    def _kmeans_init(self) -> None:
        audio, ids, _ = self._batch()
        cond = self.model.frame_conditioning(ids)
        latent = self.model.encoder(self.model.analysis(audio), cond)
        self.model.quantizer.kmeans_init(latent)

    def _depth_fn(self, ids: torch.Tensor, n_q: torch.Tensor):
        """Per-frame depths for the batch's adaptive-depth examples, or None."""
        slopes = [self.slopes[i] for i in ids.tolist()]
        if not self.cfg.adaptive_depth or not any(slopes):
            return None
        cfg = self.model.config
        budgets = n_q.tolist()

        def depth_fn(log_energy: torch.Tensor) -> torch.Tensor:
            energy = log_energy.cpu().numpy()
            rows = [allocate_depths(e, int(n), slope, cfg.n_levels, cfg.bits_per_index)
                    for e, n, slope in zip(energy, budgets, slopes)]
            return torch.from_numpy(np.stack(rows))

        return depth_fn

    @torch.no_grad()
    def _count_codes(self, codes: torch.Tensor, ids: torch.Tensor, depths: torch.Tensor) -> None:
        """Add this batch's used codes (``depths`` (B, T) levels per frame) to the per-(profile, level) counts."""
        _, levels, frames = codes.shape
        k = self.model.config.codebook_size
        level_idx = torch.arange(levels, device=codes.device)[None, :, None]
        flat = (ids[:, None, None] * levels + level_idx) * k + codes  # (B, L, T)
        used = level_idx < depths[:, None, :]
        self._new_counts += torch.bincount(
            flat[used].flatten(), minlength=self._new_counts.numel()).view_as(self._new_counts)

    @torch.no_grad()
    def _refresh_priors(self) -> None:
        """Entropy priors = smoothed, decayed code frequencies (the ideal code lengths).

        Counting is exact and fast; learning the prior by gradient at the
        backbone's small learning rate would take far longer to converge.
        """
        self.dist.all_reduce_sum(self._new_counts)
        self.code_counts.mul_(self.cfg.prior_decay).add_(self._new_counts)
        self._new_counts.zero_()
        self.model.prior_logits.data.copy_(torch.log(self.code_counts + 0.5))

    def train_step(self) -> dict[str, float]:
        audio, ids, n_q = self._batch()
        out, prior = self.forward(audio, ids, n_q, self._depth_fn(ids, n_q))
        terms = self.loss(out.audio, audio)
        recon = combine(terms, self.weights, ids)
        q = out.quantized
        soft_bits, hard_bits = rate_bits(q.soft_assignments, q.codes, prior, q.depths)
        n_q = q.depths.to(soft_bits.dtype).mean(-1)  # levels per frame actually used
        frame_rate = self.model.config.frame_rate_hz
        rate_kbps = soft_bits * frame_rate / 1000
        loss = (
            recon
            + self.lambdas[ids] * rate_kbps
            + self.cfg.commitment_weight * q.commitment_loss
            + self.cfg.codebook_weight * q.codebook_loss
            + self.cfg.prior_weight * hard_bits / n_q.clamp_min(1)
        ).mean()
        lr = self.cfg.learning_rate_at(self.step)
        adversarial = {}
        if self.disc is not None and self.step >= self.cfg.adversarial_start_step:
            adversarial = self._adversarial_terms(audio, out.audio, lr)
            loss = loss + self.cfg.adversarial_weight * (
                adversarial["g_adv"] + self.cfg.feature_matching_weight * adversarial["feature_matching"])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()
        self.step += 1
        self._count_codes(q.codes, ids, q.depths)
        if self.step % self.cfg.prior_every == 0:
            self._refresh_priors()
        if self.step % self.cfg.dead_code_every == 0:
            self.dist.all_reduce_usage(self.model.quantizer)
            self.model.quantizer.replace_dead_codes()
            self.dist.broadcast_parameters(self.model)
        row = {k: float(v.detach().mean()) for k, v in terms.items()}
        row.update(
            loss=float(loss.detach()), grad_norm=float(grad_norm),
            entropy_kbps_8=float((hard_bits.detach() * frame_rate / 1000 / n_q * 8).mean()),
            commit=float(q.commitment_loss.detach().mean()),
        )
        row.update({k: float(v.detach()) for k, v in adversarial.items()})
        return row

    def _adversarial_terms(self, audio: torch.Tensor, decoded: torch.Tensor,
                           lr: float) -> dict[str, torch.Tensor]:
        """One discriminator update, then the codec's adversarial terms under the updated one."""
        d_loss = discriminator_loss(self.disc(audio), self.disc(decoded.detach()))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.disc.parameters(), self.cfg.grad_clip)
        for group in self.opt_d.param_groups:
            group["lr"] = lr
        self.opt_d.step()
        with torch.no_grad():
            real = self.disc(audio)  # feature-matching targets
        # The codec's backward also leaves gradients on the discriminator;
        # they are discarded by the zero_grad before its next update.
        g_adv, matching = generator_loss(real, self.disc(decoded))
        return {"d_loss": d_loss, "g_adv": g_adv, "feature_matching": matching}

    def run(self, max_steps: int, max_minutes: float, export_to: Path | None = None,
            progress: bool = True) -> None:
        """Train until ``max_steps`` (total) or ``max_minutes`` of wall time."""
        pin_threads(self.cfg.threads)
        if self.needs_kmeans:
            self._kmeans_init()
            self.needs_kmeans = False
        self.forward = self.dist.wrap(self.forward, self.device)  # syncs rank 0's parameters
        main = self.dist.is_main
        deadline = time.monotonic() + max_minutes * 60
        log_path = self.run_dir / "log.csv"
        bar = tqdm(total=max_steps, initial=self.step, disable=not (progress and main), unit="step")
        sums: dict[str, float] = {}
        count = 0
        # Ranks agree on stopping, so none waits forever in a gradient all-reduce.
        while self.step < max_steps and not self.dist.any_rank(time.monotonic() >= deadline):
            row = self.train_step()
            for k, v in row.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            bar.update(1)
            if self.step % 50 == 0 and main:
                avg = {k: v / count for k, v in sums.items()}
                _append_csv(log_path, {"step": self.step, "time": int(time.time()), **avg})
                bar.set_postfix(loss=f"{avg['loss']:.3f}", mel=f"{avg['mel']:.3f}")
                sums, count = {}, 0
            if self.step % self.cfg.checkpoint_every == 0:
                self.save_checkpoint()
            if main and self.held_out is not None and self.step % self.cfg.eval_every == 0:
                self._evaluate()
        bar.close()
        self.save_checkpoint()
        if export_to is not None and main:
            export_weights(self.model, export_to, steps=self.step)

    def _evaluate(self) -> None:
        self.model.eval()
        slopes = dict(zip(self.model.config.profiles, self.slopes))
        metrics = evaluate(self.model, self.held_out, n_q=self.cfg.eval_n_q, depth_slopes=slopes)
        self.model.train()
        _append_csv(self.run_dir / "eval.csv", {"step": self.step, "time": int(time.time()), **metrics})


def _append_csv(path: Path, row: dict) -> None:
    """Append ``row``; a column the file lacks (e.g. a loss term switched on
    mid-run) rewrites it once with the wider header, earlier rows left blank there."""
    row = {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
    header: list[str] = []
    if path.exists():
        with path.open(newline="") as fh:
            header = next(csv.reader(fh), [])
    if header and not set(row) <= set(header):
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        header += [k for k in row if k not in header]
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=header, restval="")
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(path)
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header or list(row), restval="")
        if not header:
            writer.writeheader()
        writer.writerow(row)

