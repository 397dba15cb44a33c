"""benchmarks/classifier.py: bad set-ups are one-line errors, not tracebacks."""

from __future__ import annotations


def test_missing_corpus_is_a_one_line_error(bench_script, tmp_path, capsys):
    code = bench_script("classifier").main(["--corpus", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: no corpus at") and len(err.strip().splitlines()) == 1


def test_missing_artifact_is_a_one_line_error(bench_script, tmp_path, capsys):
    (tmp_path / "manifest.csv").write_text("path,label,source\n")
    code = bench_script("classifier").main(["--corpus", str(tmp_path), "--classifier", str(tmp_path / "none.safetensors")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "none.safetensors" in err and len(err.strip().splitlines()) == 1


def test_missing_extra_training_folder_is_a_one_line_error(bench_script, tmp_path, capsys, monkeypatch):
    from adaptive_codec.analysis.classifier import ContentClassifier

    module = bench_script("classifier")
    real = ContentClassifier.read_metadata

    def with_missing_extra(path):
        meta = real(path)
        meta["training"] = {**meta.get("training", {}), "extra": [{"source": str(tmp_path / "gone")}]}
        return meta

    monkeypatch.setattr(ContentClassifier, "read_metadata", staticmethod(with_missing_extra))
    (tmp_path / "manifest.csv").write_text("path,label,source\n")
    assert module.main(["--corpus", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: training data not found:") and "gone" in err and len(err.strip().splitlines()) == 1


def test_silero_side_by_side_without_silero_is_a_one_line_error(bench_script, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "silero_vad", None)  # as if not installed
    (tmp_path / "manifest.csv").write_text("path,label,source\n")
    code = bench_script("classifier").main(["--corpus", str(tmp_path), "--silero-out", str(tmp_path / "v.txt")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --silero-out needs silero-vad") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "v.txt").exists()
