"""Moving codec training to a lent GPU: shards (``adaptive_codec.train.shards``, ``tools/pack_shard.py``)
and the device runner (``tools/device_train.py``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from adaptive_codec.train.codec_data import CropSampler
from adaptive_codec.train.shards import expand_shard, pack

def _cache(root: Path, seconds: dict[str, list[float]]) -> Path:
    """A cache with clips of the given lengths per class; sample values encode the clip number."""
    root.mkdir(parents=True)
    for label, lengths in seconds.items():
        arrays, index, offset = [], [], 0
        for i, s in enumerate(lengths):
            n = int(s * 24000)
            arrays.append(np.full(n, 100 * (i + 1), np.int16))
            index.append({"path": f"{label}{i}.flac", "source": f"src{i}", "offset": offset, "n_samples": n})
            offset += n
        np.save(root / f"{label}.npy", np.concatenate(arrays))
        (root / f"{label}.json").write_text(json.dumps({"clips": index}))
    return root


def test_shard_is_level_bounded_and_readable(tmp_path):
    cache = _cache(tmp_path / "cache", {"speech": [3.0] * 20, "music": [60.0, 2.0],
                                        "ambient": [1.0, 0.2]})
    out = tmp_path / "shard"
    mib = 0.3  # 6.55 s of raw int16 audio in all
    seconds = pack([cache], out, mib=mib, seed=1, max_clip_s=1.0, fmt="npy")
    # Clips go in turn to the class with the least audio so far: ambient runs
    # out after its one usable clip (0.2 s is too short), music after its two,
    # speech fills the budget up to the clip that would overflow it.
    assert seconds == {"speech": 3.0, "music": 2.0, "ambient": 1.0}
    assert sum(p.stat().st_size for p in out.glob("*.npy")) <= mib * 2**20 + 3 * 256
    # Every clip in the shard is a stretch of one source clip (constant value).
    for label in ("speech", "music", "ambient"):
        data = np.load(out / f"{label}.npy")
        for clip in json.loads((out / f"{label}.json").read_text())["clips"]:
            part = data[clip["offset"]:clip["offset"] + clip["n_samples"]]
            assert len(set(part.tolist())) == 1
    audio, labels = CropSampler([out], 12000, seed=0).batch(6)
    assert audio.shape == (6, 12000) and set(labels) <= {"speech", "music", "ambient"}
    assert not list(out.glob("*.tmp*"))  # arrays and indexes land by rename
    assert expand_shard(out, tmp_path / "unused") == out  # npy: read as it is
    other = pack([cache], tmp_path / "shard2", mib=mib, seed=2, max_clip_s=1.0, fmt="npy")
    assert other.keys() == seconds.keys()
    assert not np.array_equal(np.load(out / "speech.npy"), np.load(tmp_path / "shard2" / "speech.npy"))


def test_flac_shard_is_lossless_and_counts_its_encoded_bytes(tmp_path):
    rng = np.random.default_rng(0)
    cache = tmp_path / "cache"
    cache.mkdir()
    for label in ("speech", "music", "ambient"):
        # Quiet noise: FLAC stores it in well under half the raw bytes.
        audio = (rng.standard_normal(24000 * 12) * 30).astype(np.int16)
        np.save(cache / f"{label}.npy", audio)
        index = [{"path": f"{label}{i}", "offset": 24000 * i, "n_samples": 24000} for i in range(12)]
        (cache / f"{label}.json").write_text(json.dumps({"clips": index}))
    mib = 0.5  # 10.9 s of raw int16: FLAC fits more
    out = tmp_path / "shard"
    seconds = pack([cache], out, mib=mib, seed=0, max_clip_s=20.0)
    assert sorted(p.name for p in out.iterdir()) == [
        "ambient.flac", "ambient.json", "music.flac", "music.json", "speech.flac", "speech.json"]
    assert sum(p.stat().st_size for p in out.glob("*.flac")) <= mib * 2**20
    assert sum(seconds.values()) > mib * 2**20 / 2 / 24000 * 1.5
    assert max(seconds.values()) - min(seconds.values()) <= 1.0  # level to within one clip
    expanded = expand_shard(out, tmp_path / "expanded")
    for label in ("speech", "music", "ambient"):
        decoded = np.load(expanded / f"{label}.npy")
        index = json.loads((expanded / f"{label}.json").read_text())["clips"]
        assert len(decoded) == int(seconds[label] * 24000)
        for clip in index:  # each stretch is, bit for bit, the cached clip it came from
            source = int(clip["path"].removeprefix(label))
            original = np.load(cache / f"{label}.npy")[24000 * source:24000 * (source + 1)]
            np.testing.assert_array_equal(decoded[clip["offset"]:clip["offset"] + 24000], original)
    audio, _ = CropSampler([expanded], 12000, seed=0).batch(4)
    assert audio.shape == (4, 12000)


def test_shard_errors_are_one_line(bench_script, tmp_path, capsys):
    pack_shard = bench_script("pack_shard")
    assert pack_shard.main([str(tmp_path / "out"), "--cache", str(tmp_path / "absent")]) == 1
    assert capsys.readouterr().err.strip() == f"error: not a cache folder: {tmp_path / 'absent'}"
    (tmp_path / "empty").mkdir()
    assert pack_shard.main([str(tmp_path / "out"), "--cache", str(tmp_path / "empty")]) == 1
    assert "no cached audio" in capsys.readouterr().err
    # Clips too short to crop from (< 0.5 s) give no audio, hence no files, in either format.
    short = _cache(tmp_path / "short", {"speech": [0.2, 0.3], "music": [1.0]})
    for fmt in ("flac", "npy"):
        seconds = pack([short], tmp_path / fmt, mib=1.0, seed=0, max_clip_s=20.0, fmt=fmt)
        assert seconds == {"music": 1.0}
        assert sorted(p.name for p in (tmp_path / fmt).iterdir()) == sorted([f"music.{fmt}", "music.json"])
    assert pack_shard.main([str(tmp_path / "out2"), "--cache", str(tmp_path / "short"), "--mib", "1"]) == 0
    capsys.readouterr()
    # A malformed index is a one-line error, and nothing is written.
    (tmp_path / "bad").mkdir()
    np.save(tmp_path / "bad" / "speech.npy", np.zeros(24000, np.int16))
    for text, message in (("{not json", "error: cannot read the caches: "),
                          ('{"clips": [{"offset": 0}]}', "error: a cache index (<label>.json) lacks the field")):
        (tmp_path / "bad" / "speech.json").write_text(text)
        assert pack_shard.main([str(tmp_path / "out3"), "--cache", str(tmp_path / "bad")]) == 1
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1, err
        assert not (tmp_path / "out3").exists()


def test_class_weights_set_the_batch_mix(tmp_path):
    cache = _cache(tmp_path / "cache", {"speech": [2.0] * 3, "music": [2.0] * 3, "ambient": [2.0] * 3})
    _, labels = CropSampler([cache], 2400, seed=0, class_weights={"speech": 2.0, "ambient": 0.0}).batch(600)
    share = {c: labels.count(c) / len(labels) for c in ("speech", "music", "ambient")}
    assert share["ambient"] == 0.0
    assert share["speech"] == pytest.approx(2 / 3, abs=0.06)
    _, labels = CropSampler([cache], 2400, seed=0).batch(600)
    assert min(labels.count(c) for c in ("speech", "music", "ambient")) > 150  # balanced by default
    with pytest.raises(ValueError, match="positive total"):
        CropSampler([cache], 2400, class_weights={"speech": 0.0, "music": 0.0, "ambient": 0.0})


def test_shipped_device_config_parses(repo_root):
    from adaptive_codec.train.codec import TrainConfig

    cfg = TrainConfig.from_toml(repo_root / "tools" / "device_train.toml")
    assert cfg.batch_size == 64 and cfg.class_weights == {"speech": 2.0}


def test_device_runner_rejects_a_bad_config_in_one_line(bench_script, tmp_path, capsys):
    device_train = bench_script("device_train")
    cache = _cache(tmp_path / "cache", {"speech": [1.0]})
    config = tmp_path / "bad.toml"
    config.write_text("[train]\nbatch_size = 'big'\n")
    rc = device_train.main(["--shard", str(cache), "--config", str(config), "--device", "cpu",
                            "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "out")])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: {config}: [train] batch_size: expected int, got 'big'"
    assert not (tmp_path / "out").exists()


def test_device_runner_rejects_a_cooldown_longer_than_the_run(bench_script, tmp_path, capsys):
    device_train = bench_script("device_train")
    cache = _cache(tmp_path / "cache", {"speech": [1.0]})
    rc = device_train.main(["--shard", str(cache), "--minutes", "1", "--cooldown-minutes", "1",
                            "--device", "cpu", "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "out")])
    assert rc == 1
    assert capsys.readouterr().err.strip() == "error: --cooldown-minutes must be >= 0 and below --minutes"
    assert not (tmp_path / "out").exists()


def test_device_runner_rejects_a_shard_without_its_index(bench_script, tmp_path, capsys):
    device_train = bench_script("device_train")
    cache = _cache(tmp_path / "cache", {"speech": [2.0]})
    shard = tmp_path / "shard"
    pack([cache], shard, mib=1.0, seed=0, max_clip_s=20.0)
    (shard / "speech.json").unlink()
    rc = device_train.main(["--shard", str(shard), "--device", "cpu", "--run-dir", str(tmp_path / "run"),
                            "--out", str(tmp_path / "out")])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot decode shard: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_device_runner_rejects_a_malformed_profile_in_one_line(bench_script, tmp_path, capsys):
    device_train = bench_script("device_train")
    cache = _cache(tmp_path / "cache", {"speech": [1.0]})
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "music.toml").write_text('name = "music"\nrate_lambda = [\n')
    rc = device_train.main(["--shard", str(cache), "--profiles-dir", str(tmp_path / "profiles"), "--device", "cpu",
                            "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "out")])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "music.toml" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_device_runner_returns_weights_on_cpu(bench_script, repo_root, tmp_path):
    device_train = bench_script("device_train")
    cache = _cache(tmp_path / "cache", {"speech": [3.0] * 3, "music": [3.0] * 3, "ambient": [3.0] * 3})
    shard = tmp_path / "shard"
    pack([cache], shard, mib=1.0, seed=0, max_clip_s=20.0)  # FLAC, decoded there
    out = tmp_path / "out"
    # music trained with another rate term, the built-in profile left as it is
    (tmp_path / "profiles").mkdir()
    music = (repo_root / "profiles" / "music.toml").read_text()
    music, swapped = re.subn(r"(?m)^rate_lambda = .*$", "rate_lambda = 0.02", music)
    assert swapped == 1
    (tmp_path / "profiles" / "music.toml").write_text(
        music.replace('labels = ["music"]', 'labels = ["music"]\noverride = true'))
    rc = device_train.main(["--shard", str(shard), "--minutes", "0.04", "--cooldown-minutes", "0.02",
                            "--batch-size", "2", "--device", "cpu", "--run-dir", str(tmp_path / "run"),
                            "--out", str(out), "--profiles-dir", str(tmp_path / "profiles")])
    assert rc == 0
    info = json.loads((out / "run.json").read_text())
    assert info["rate_lambda"] == {"speech": 0.15, "music": 0.02, "ambient": 0.15}
    assert info["end_step"] > info["start_step"] and info["device"] == "cpu"
    assert info["config"]["decay_start_step"] > info["start_step"] and info["config"]["decay_steps"] >= 1
    from adaptive_codec.backbone.weights import load_weights

    _, meta = load_weights(out / "backbone.safetensors")
    assert int(meta["steps"]) == info["end_step"]
    _, meta = load_weights(out / "backbone-const.safetensors")
    assert int(meta["steps"]) == info["config"]["decay_start_step"]


def test_depth_benchmark_compares_slopes_at_equal_bytes(bench_script):
    """benchmarks/depth_allocation.py: a slope's gain is over fixed depth *at its own bitrate*."""
    depth_allocation = bench_script("depth_allocation")
    curve = [(5.0, 2.0), (5.5, 2.2), (6.0, 2.3)]  # fixed depth n-1, n, n+1: (kbps, PESQ)
    gain = depth_allocation.equal_bytes_gain
    assert gain({"kbps": 5.5, "pesq": 2.3}, curve, "pesq") == pytest.approx(0.1)
    # Spending 0.25 kbps more must beat the 0.05 those bytes buy as levels.
    assert gain({"kbps": 5.75, "pesq": 2.3}, curve, "pesq") == pytest.approx(0.05)
    assert gain({"kbps": 5.75, "pesq": 2.22}, curve, "pesq") < 0
    assert gain({"kbps": 7.0, "pesq": 2.3}, curve, "pesq") == pytest.approx(0.0)  # flat beyond the curve
