"""benchmarks/routing_ablation.py: its profile swaps load and route as intended."""

from __future__ import annotations

from pathlib import Path

from adaptive_codec.profiles import ProfileRegistry


def test_swaps_route_labels_to_the_swapped_conditioning(bench_script, tmp_path):
    ablation = bench_script("routing_ablation")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "stale.toml").write_text("not toml [")
    root = ablation._profiles_dir(tmp_path / "profiles", ablation.VARIANTS["all-on-music"])
    assert not (root / "stale.toml").exists()
    registry = ProfileRegistry.default()
    registry.load_path(root)
    ambient, speech = registry.for_label("ambient"), registry.for_label("speech")
    assert (ambient.base, ambient.bitrate_kbps) == ("music", 4.5)  # own bitrate kept
    assert (speech.base, speech.bitrate_kbps) == ("music", 6.0)
    assert registry.for_label("silence").name == ambient.name
    assert registry.for_label("music").name == "music"
    uniform = ablation._profiles_dir(tmp_path / "u", ablation.VARIANTS["routed-uniform-rate"])
    registry = ProfileRegistry.default()
    registry.load_path(uniform)
    # A rerated built-in keeps its name (streams reference it; nothing embedded).
    for label in ("ambient", "music"):
        rerated = registry.for_label(label)
        assert (rerated.name, rerated.base, rerated.bitrate_kbps) == (label, None, 6.0)
    assert ablation._profiles_dir(tmp_path / "none", ablation.VARIANTS["routed"]) is None


def test_manifest_lists_mixed_files_with_segments(bench_script, tmp_path, capsys, monkeypatch):
    ablation = bench_script("routing_ablation")
    mixed = tmp_path / "corpus" / "mixed"
    mixed.mkdir(parents=True)
    for name in ("a", "b", "c"):
        (mixed / f"{name}.flac").write_bytes(b"")
    for name in ("a", "b"):
        (mixed / f"{name}.segments.csv").write_text("start_s,end_s,label\n")
    monkeypatch.chdir(tmp_path)  # a relative --corpus, as in the docstring's usage
    (tmp_path / "out").mkdir()
    assert ablation._mixed_manifest(Path("corpus"), tmp_path / "out" / "m.csv") == 2
    lines = (tmp_path / "out" / "m.csv").read_text().splitlines()
    assert lines[0] == "path,label,segments" and len(lines) == 3
    # bench resolves relative manifest paths against the manifest's folder: these must not be
    for row in lines[1:]:
        audio, _, segments = row.split(",")
        assert Path(audio).is_absolute() and Path(audio).is_file() and Path(segments).is_file()
    assert ablation.main(["--corpus", str(tmp_path / "absent")]) == 1
    assert "no mixed/ folder" in capsys.readouterr().err


def test_a_rerated_builtin_codes_exactly_like_the_builtin(bench_script, tmp_path):
    """No embedded profile in the stream: the rerated variants pay no header bytes."""
    import dataclasses

    import numpy as np

    from adaptive_codec import AdaptiveCodec, load_audio
    from adaptive_codec.resources import example_path

    ablation = bench_script("routing_ablation")
    root = ablation._profiles_dir(tmp_path / "p", ablation.VARIANTS["routed-uniform-rate"])
    registry = ProfileRegistry.default()
    registry.load_path(root)
    audio, info = load_audio(example_path("mixed"))
    x = audio.mean(axis=0)[: 2 * info.sample_rate_hz].astype(np.float32)
    codec = AdaptiveCodec.default()
    builtin = dataclasses.replace(codec.registry.get("music"), bitrate_kbps=6.0)
    assert codec.encode(x, info.sample_rate_hz, profile=registry.get("music")) == \
        codec.encode(x, info.sample_rate_hz, profile=builtin)
