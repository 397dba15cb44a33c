"""Benchmarks: quality metrics, baseline codecs, BD-rate, the ``bench`` runner and its reports.

Modules
-------
metrics    quality metrics (ViSQOL, PESQ-WB, STOI, mel/STFT distance, SI-SDR, loudness)
baselines  reference codecs behind one small interface (Opus, FLAC, Codec2)
systems    the adaptive codec (auto routing or one forced profile) behind the same interface
bd_rate    Bjøntegaard delta rate / quality between two rate-quality curves
comparison the BD-rate table, per-class headline and the mixed-file routing target
corpus     which clips a benchmark runs on (folder or manifest CSV)
environment peak memory, package versions, git revision and machine of a run
runner     ``adaptive-codec bench``: code, score and time every clip x system x bitrate
report     summary.csv, BD-rate table, report.md and a self-contained report.html
cli        the ``bench`` command
"""
