"""Golden streams: today's code must decode every committed ``.acx`` file to
its recorded audio, and re-encode the current set's sources to the same bytes
(or, where float rounding flips a near-tie of the RVQ search, to the same codes
on all but :data:`MAX_REENCODE_FRAME_CHANGES` of the frames).

The streams live in sets, one folder per encoder revision under
``tests/golden/`` (``3.0/``, ...), each with a ``manifest.json`` written by
``tools/make_golden_streams.py``: the sources (excerpts of the bundled
examples), the settings, the stream's SHA-256 and the SHA-256 of its decoded
16-bit PCM. Every set stays decodable for good (archives outlive encoders);
only the set named in ``tests/golden/current.txt`` is what today's encoder
writes, so only its sources are re-encoded and compared. A
change that alters what the encoder writes fails here until it comes with a
new set (``make_golden_streams.py --set NAME``) and a FORMAT.md note. Decoding
is compared exactly (SHA-256 of the 16-bit PCM) and, where a CPU's float
rounding differs, within :data:`PCM_TOLERANCE_LSB` of the committed decoded
reference.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

GOLDEN = Path(__file__).resolve().parent / "golden"
SETS = {d.name: json.loads((d / "manifest.json").read_text())
        for d in sorted(GOLDEN.iterdir()) if (d / "manifest.json").is_file()}
CURRENT = (GOLDEN / "current.txt").read_text().strip()
#: Largest difference (in 16-bit steps) allowed between the decoded audio and
#: the committed reference when the exact PCM differs (float rounding of
#: another CPU's kernels); an audible change is hundreds of steps.
PCM_TOLERANCE_LSB = 2
#: Share of frames whose RVQ indices a re-encode may change when its bytes
#: differ: the NumPy resampler and transforms of the torch-free runtime equal
#: the torch ones to float rounding, which flipped one near-tie (1 frame of
#: 151, the ambient stream) when the runtime replaced torch.
MAX_REENCODE_FRAME_CHANGES = 0.01
ALL_STREAMS = [(s, name) for s, m in SETS.items() for name in sorted(m["streams"])]


def _tool():
    path = GOLDEN.parent.parent / "tools" / "make_golden_streams.py"
    spec = importlib.util.spec_from_file_location("make_golden_streams", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def golden_codec():
    from adaptive_codec import AdaptiveCodec
    from adaptive_codec.threads import pin_threads

    pin_threads(1)  # the streams were written on one thread
    codec = AdaptiveCodec.default()
    for set_name, manifest in SETS.items():
        if codec.weights_meta["weights_id"] != manifest["weights_id"]:
            pytest.fail(f"golden set {set_name} was made with weights {manifest['weights_id']}, the package "
                        f"ships {codec.weights_meta['weights_id']}: new weights need new golden streams "
                        "(tools/make_golden_streams.py --set NAME) and a FORMAT.md note")
    return codec


def _pcm16(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.atleast_2d(audio).T * 32767.0), -32768, 32767).astype("<i2")


@pytest.mark.parametrize("set_name,name", ALL_STREAMS)
def test_golden_stream_decodes_to_recorded_audio(golden_codec, set_name, name):
    entry = SETS[set_name]["streams"][name]
    folder = GOLDEN / set_name
    blob = (folder / f"{name}.acx").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == entry["stream_sha256"], "the committed stream itself changed"
    audio, sr = golden_codec.decode(blob)
    assert sr == entry["sample_rate_hz"]
    assert np.atleast_2d(audio).shape[0] == entry["channels"]
    pcm = _pcm16(audio)
    if hashlib.sha256(pcm.tobytes()).hexdigest() == entry["decoded_pcm16_sha256"]:
        return
    reference, ref_sr = sf.read(folder / f"{name}.decoded.flac", dtype="int16", always_2d=True)
    assert ref_sr == sr and reference.shape == pcm.shape, f"{name}: decoded shape {pcm.shape} != {reference.shape}"
    worst = int(np.abs(pcm.astype(np.int32) - reference.astype(np.int32)).max())
    assert worst <= PCM_TOLERANCE_LSB, f"{set_name}/{name}: decoded audio differs by up to {worst} 16-bit steps"


@pytest.mark.parametrize("name", sorted(SETS[CURRENT]["streams"]) if CURRENT in SETS else [])
def test_golden_source_reencodes_to_the_same_bytes(golden_codec, name):
    tool = _tool()
    entry = SETS[CURRENT]["streams"][name]
    audio, sr = tool.source_audio(entry)
    profile = entry["profile"]
    if profile.endswith(".toml"):
        profile = str(GOLDEN / CURRENT / profile)
    blob = golden_codec.encode(audio if audio.shape[0] > 1 else audio[0], sr, profile=profile,
                               bitrate_scale=entry.get("bitrate_scale"))
    if hashlib.sha256(blob).hexdigest() == entry["stream_sha256"]:
        return
    # Float rounding may flip a near-tie of the RVQ search: the same stream but for a few frames.
    assert abs(len(blob) - entry["bytes"]) <= 0.01 * entry["bytes"], f"{name}: {len(blob)} bytes, not {entry['bytes']}"
    ours, golden = _codes(golden_codec, blob), _codes(golden_codec, (GOLDEN / CURRENT / f"{name}.acx").read_bytes())
    assert ours.shape == golden.shape
    changed = float((ours != golden).any(axis=0).mean())
    assert changed <= MAX_REENCODE_FRAME_CHANGES, f"{name}: re-encoded codes differ on {changed:.1%} of frames"


def _codes(codec, blob: bytes) -> np.ndarray:
    """RVQ indices ``(levels, channels · frames)`` of a stream (each channel's frames in turn)."""
    import io

    from adaptive_codec.container.acx import AcxReader
    from adaptive_codec.entropy.coder import decode_frames

    reader = AcxReader(io.BytesIO(blob))
    h = reader.header
    out = []
    for chunk in reader.iter_chunks(0, h.n_frames):
        lo, hi = chunk.start_frame, chunk.end_frame
        layout, priors, _ = h.frame_layout(chunk.channel, lo, hi)
        codes = decode_frames(codec.entropy_model, chunk.data, layout, priors, h.max_levels,
                              adaptive=h.adaptive_frames(chunk.channel, lo, hi))
        out.append(codes)
    return np.concatenate(out, axis=1)


def test_current_set_exists():
    assert CURRENT in SETS, f"tests/golden/current.txt names {CURRENT!r}, not a set in {sorted(SETS)}"


@pytest.mark.parametrize("set_name", sorted(SETS))
def test_golden_set_covers_every_kind_of_stream(set_name):
    streams = SETS[set_name]["streams"]
    assert {"speech", "music", "ambient"} <= {s["profile"] for s in streams.values()}
    assert any(s["channels"] == 2 for s in streams.values())
    assert any(s["profile"].endswith(".toml") for s in streams.values())
    assert all((GOLDEN / set_name / f"{name}.acx").stat().st_size < 8192 for name in streams)
