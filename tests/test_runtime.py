"""The torch-free runtime: exported stacks tied to their weights, and the same codec as the torch model.

Equivalence is checked on the bundled real clips (speech, music, ambient,
mixed): the runtime's RVQ indices agree with torch's on at least
:data:`MIN_FRAME_AGREEMENT` of the frames (both analyse with the same NumPy
code, so the rest can only be near-ties flipped by float rounding in the
encoder stacks); the NumPy MDCT equals torch's within float rounding; from
the same indices the decoded audio agrees within
:data:`MAX_ABS_ERROR` and :data:`MIN_SNR_DB`; and a stream written by either
decodes in the other to the same audio within float rounding.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from adaptive_codec import AdaptiveCodec
from adaptive_codec.audio import resample, to_mono
from adaptive_codec.backbone.streaming import decode_signal, encode_signal
from adaptive_codec.errors import ModelError
from adaptive_codec.resources import weights_dir
from adaptive_codec.runtime import load_backbone

WEIGHTS = weights_dir() / "backbone.safetensors"
#: Share of frames whose indices (every level) must equal the torch model's.
MIN_FRAME_AGREEMENT = 0.999
#: Same indices, decoded: largest sample difference and SNR of the difference.
MAX_ABS_ERROR = 1e-5
MIN_SNR_DB = 100.0
CLIPS = ("speech", "music", "ambient", "mixed")


def _snr_db(ref: np.ndarray, other: np.ndarray) -> float:
    err = float(np.sum((np.asarray(ref, np.float64) - other) ** 2))
    return float("inf") if err == 0 else 10 * np.log10(float(np.sum(np.asarray(ref, np.float64) ** 2)) / err)


@pytest.fixture(scope="module")
def runtime():
    return load_backbone(WEIGHTS, "onnxruntime")


@pytest.fixture(scope="module")
def reference():
    """The torch model behind the runtime's interface (needs the train extra)."""
    pytest.importorskip("torch", reason="the torch reference needs the train extra")
    from adaptive_codec.backbone.inference import torch_backbone

    return torch_backbone(WEIGHTS)


def _internal(example_clip, name: str, seconds: float = 6.0) -> np.ndarray:
    audio, sr = example_clip(name)
    return np.asarray(resample(to_mono(audio)[: int(seconds * sr)], sr, 24000), np.float32)


def _cond(backbone, profile: str, frames: int) -> np.ndarray:
    return np.repeat(backbone.profile_vectors[backbone.config.profiles.index(profile)][None], frames, 0)


def test_shipped_stacks_name_the_shipped_weights(runtime):
    assert runtime.executor == "onnxruntime"
    assert runtime.meta["weights_id"] == AdaptiveCodec.default().weights_meta["weights_id"]


def test_export_is_deterministic_and_matches_the_shipped_files(tmp_path):
    pytest.importorskip("onnx", reason="the export needs the train extra")
    from adaptive_codec.runtime.export import export_runtime

    first = export_runtime(WEIGHTS, tmp_path / "a")
    second = export_runtime(WEIGHTS, tmp_path / "b")
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), f"{a.name}: two exports differ"
        assert a.read_bytes() == (WEIGHTS.parent / a.name).read_bytes(), \
            f"shipped {a.name} is stale: run python tools/export_runtime.py"


def _other_weights(tmp_path):
    """The shipped weights under another version: another file hash, the same tensors."""
    with safe_open(str(WEIGHTS), framework="np") as fh:
        meta = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    meta["weights_version"] = "other"
    path = tmp_path / "backbone.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


def test_stacks_exported_from_other_weights_are_refused(tmp_path):
    other = _other_weights(tmp_path)
    for name in ("backbone-encoder.onnx", "backbone-decoder.onnx"):
        shutil.copy(WEIGHTS.parent / name, tmp_path / name)
    with pytest.raises(ModelError, match=r"exported from weights 0\.dev.*not the loaded other\+"):
        load_backbone(other, "onnxruntime")
    (tmp_path / "backbone-decoder.onnx").write_bytes(b"not a model")
    (tmp_path / "backbone-encoder.onnx").unlink()
    with pytest.raises(ModelError, match="runtime model not found"):
        load_backbone(other, "onnxruntime")


def test_weights_without_exported_stacks_run_on_numpy(tmp_path):
    bb = load_backbone(_other_weights(tmp_path))
    assert bb.executor == "numpy" and bb.meta["weights_id"].startswith("other+")
    with pytest.raises(ModelError, match="unknown backbone executor 'cuda'"):
        load_backbone(WEIGHTS, "cuda")


@pytest.mark.parametrize("name", CLIPS)
def test_codes_and_audio_match_torch_on_real_clips(runtime, reference, example_clip, name):
    profile = "speech" if name in ("speech", "mixed") else name
    x = _internal(example_clip, name)
    cond = _cond(runtime, profile, runtime.n_frames(x.size))
    ours = encode_signal(runtime, x, cond, 12)
    theirs = encode_signal(reference, x, cond, 12)
    agree = float((ours == theirs).all(0).mean())
    assert agree >= MIN_FRAME_AGREEMENT, f"{name}: codes agree on {agree:.4f} of frames"
    depths = np.full(theirs.shape[1], 12)
    a = decode_signal(runtime, theirs, depths, cond, x.size)
    b = decode_signal(reference, theirs, depths, cond, x.size)
    assert float(np.abs(a - b).max()) <= MAX_ABS_ERROR and _snr_db(b, a) >= MIN_SNR_DB


def test_numpy_mdct_equals_torchs_within_rounding(reference, example_clip):
    import torch

    from adaptive_codec.backbone.mdct_numpy import NumpyMDCT

    x = _internal(example_clip, "music", 4.0)
    ours = NumpyMDCT(reference.config.hop)
    theirs = reference.mdct.frames(torch.from_numpy(x)[None])[0].numpy()
    coef = ours.frames(x)
    assert coef.shape == theirs.shape
    assert float(np.abs(coef - theirs).max()) <= 1e-6 * float(np.abs(theirs).max())
    y = ours.inverse_frames(coef, x.size)
    assert float(np.abs(y - reference.mdct.inverse_frames(torch.from_numpy(coef)[None], x.size)[0].numpy()).max()) <= 1e-6
    assert float(np.abs(y - x).max()) <= 1e-5  # perfect reconstruction


def test_numpy_executor_matches_onnxruntime(runtime, example_clip):
    numpy_bb = load_backbone(WEIGHTS, "numpy")
    x = _internal(example_clip, "music", 4.0)
    cond = _cond(runtime, "music", runtime.n_frames(x.size))
    ours, theirs = encode_signal(numpy_bb, x, cond, 12), encode_signal(runtime, x, cond, 12)
    assert float((ours == theirs).all(0).mean()) >= MIN_FRAME_AGREEMENT
    depths = np.full(theirs.shape[1], 12)
    a, b = (decode_signal(bb, theirs, depths, cond, x.size) for bb in (numpy_bb, runtime))
    assert _snr_db(b, a) >= MIN_SNR_DB


def test_streams_decode_the_same_in_either_implementation(reference, example_clip):
    """A stream written by the runtime decodes in torch (and back) to the same audio within rounding."""
    runtime_codec = AdaptiveCodec.default()
    torch_codec = AdaptiveCodec.default(executor="torch")
    audio, sr = example_clip("mixed")
    x = audio[0, : 5 * sr]
    for writer in (runtime_codec, torch_codec):
        blob = writer.encode(x, sr, profile="auto")
        a, _ = runtime_codec.decode(blob)
        b, _ = torch_codec.decode(blob)
        assert _snr_db(b, a) >= 80.0 and float(np.abs(a - b).max()) < 1e-4


def test_the_executor_comes_from_the_environment(monkeypatch):
    from adaptive_codec.codec import EXECUTOR_ENV_VAR

    assert AdaptiveCodec.default().backbone.executor == "onnxruntime"
    monkeypatch.setenv(EXECUTOR_ENV_VAR, "numpy")
    assert AdaptiveCodec.default().backbone.executor == "numpy"
    monkeypatch.setenv(EXECUTOR_ENV_VAR, "tpu")
    with pytest.raises(ModelError, match="unknown backbone executor 'tpu'"):
        AdaptiveCodec.default()
