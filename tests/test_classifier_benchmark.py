"""benchmarks/classifier.py: bad set-ups are one-line errors, not tracebacks."""

from __future__ import annotations


def test_missing_corpus_is_a_one_line_error(bench_script, tmp_path, capsys):
    code = bench_script("classifier").main(["--corpus", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: no corpus at") and len(err.strip().splitlines()) == 1
