"""Codec training under DDP: 2 CPU processes (gloo) match one process, rank 0 writes."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from adaptive_codec.backbone.model import BackboneConfig
from adaptive_codec.profiles import ProfileRegistry
from adaptive_codec.train.codec import CodecTrainer, TrainConfig
from adaptive_codec.train.ddp import DistContext

TINY = BackboneConfig(dim=16, encoder_blocks=1, decoder_blocks=1, latent_dim=16, n_levels=2,
                      codebook_size=16, code_dim=4, cond_dim=4)
BATCH = 4
CROP_S = 0.2


def _cache(root: Path) -> Path:
    """A training cache of 2 s of seeded noise per class."""
    rng = np.random.default_rng(0)
    for label in ("speech", "music", "ambient"):
        pcm = (rng.standard_normal(48000) * 3000).astype(np.int16)
        np.save(root / f"{label}.npy", pcm)
        (root / f"{label}.json").write_text(json.dumps(
            {"clips": [{"path": "x", "source": "x", "offset": 0, "n_samples": 48000}]}))
    return root


def _fixed_batch(rows: slice):
    """The same 4 examples everywhere; a rank takes its rows."""
    g = torch.Generator().manual_seed(1)
    audio = torch.randn(BATCH, int(CROP_S * 24000), generator=g) * 0.1
    ids = torch.tensor([0, 1, 2, 0])
    n_q = torch.tensor([2, 1, 2, 2])
    return lambda: (audio[rows], ids[rows], n_q[rows])


def _trainer(run_dir: Path, cache: Path, ctx: DistContext, batch: int) -> CodecTrainer:
    cfg = TrainConfig(batch_size=batch, crop_s=CROP_S, quantizer_dropout=0.0, seed=3,
                      caches=[str(cache)], checkpoint_every=1000, dead_code_every=1000)
    return CodecTrainer(run_dir, cfg, ProfileRegistry.default(()), backbone_config=TINY, dist=ctx)


def _params(trainer: CodecTrainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def _rank_main(rank: int, port: int, tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        ctx = DistContext(rank=rank, world_size=2)
        trainer = _trainer(Path(tmp) / "ddp", Path(tmp) / "cache", ctx, BATCH // 2)
        trainer.forward = ctx.wrap(trainer.forward, trainer.device)
        trainer._batch = _fixed_batch(slice(2 * rank, 2 * rank + 2))
        trainer.train_step()
        gathered = [None, None]
        dist.all_gather_object(gathered, _params(trainer))
        if rank == 0:
            torch.save({"rank0": gathered[0], "rank1": gathered[1]}, Path(tmp) / "ddp_params.pt")
        # A short real run with dead-code re-seeding (random, per rank) every step:
        # ranks stay in sync, only rank 0 writes the run folder.
        trainer.cfg.dead_code_every = 1
        trainer.run(max_steps=3, max_minutes=5, progress=False)
        after = [None, None]
        dist.all_gather_object(after, _params(trainer))
        if rank == 0:
            torch.save({"rank0": after[0], "rank1": after[1]}, Path(tmp) / "ddp_run_params.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_step_matches_single_process(tmp_path):
    cache = _cache((tmp_path / "cache").mkdir() or tmp_path / "cache")
    torch.set_num_threads(1)
    single = _trainer(tmp_path / "single", cache, DistContext(), BATCH)
    single._batch = _fixed_batch(slice(0, BATCH))
    before = _params(single)
    single.train_step()
    expected = _params(single)

    # fork: the children inherit the imported modules (spawn re-imports torch and librosa).
    mp.start_processes(_rank_main, args=(_free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")

    got = torch.load(tmp_path / "ddp_params.pt", weights_only=True)
    moved = 0
    for name, value in expected.items():
        # Both ranks hold the same parameters, equal to one process on the whole batch.
        torch.testing.assert_close(got["rank0"][name], got["rank1"][name], rtol=0, atol=0)
        torch.testing.assert_close(got["rank0"][name], value, rtol=1e-4, atol=1e-6)
        moved += int(not torch.equal(before[name], value))
    assert moved > 0  # the step really changed the model
    after = torch.load(tmp_path / "ddp_run_params.pt", weights_only=True)
    for name, value in after["rank0"].items():
        torch.testing.assert_close(value, after["rank1"][name], rtol=0, atol=0)
    run = tmp_path / "ddp"
    assert (run / "checkpoint.pt").is_file()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_checkpoint_and_resume(tmp_path, corpus_dir):
    """The real command under ``torchrun --nproc_per_node=2`` on a 12-clip corpus subset."""
    import csv
    import subprocess
    import sys

    from adaptive_codec.train.codec_data import is_held_out

    rows = list(csv.DictReader((corpus_dir / "manifest.csv").open()))
    picked, count = [], {}
    for row in rows:
        key = (row["label"], is_held_out(row["source"]))
        if row["label"] in ("speech", "music", "ambient") and count.get(key, 0) < 2:
            count[key] = count.get(key, 0) + 1
            picked.append({**row, "path": str(corpus_dir / row["path"])})
    data = tmp_path / "corpus"
    data.mkdir()
    with (data / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(picked)
    (tmp_path / "train.toml").write_text(
        "[train]\nbatch_size = 2\ncrop_s = 0.5\neval_every = 100000\ncheckpoint_every = 100000\n")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "adaptive_codec", "train", "codec", "--data", str(data), "--run-dir", str(run),
           "--config", str(tmp_path / "train.toml"), "--cache-dir", str(tmp_path / "cache"),
           "--device", "cpu", "--threads", "1", "--max-minutes", "0.1"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "x 2 process(es)" in first.stdout and (run / "checkpoint.pt").is_file()
    step = torch.load(run / "checkpoint.pt", weights_only=True)["step"]
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"training from step {step} " in second.stdout
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] > step
