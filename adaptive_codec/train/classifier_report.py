"""Reporting for classifier training: cross-validation summaries and the model card."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaptive_codec.analysis.classifier import ContentClassifier
from adaptive_codec.analysis.features import feature_names

__all__ = ["CVReport", "write_card"]


@dataclass
class CVReport:
    """Grouped cross-validation result on window level.

    Attributes
    ----------
    labels : list of str
        Row/column order of ``confusion``.
    confusion : np.ndarray [shape=(n_labels, n_labels)]
        Rows: true label, columns: predicted label (window counts).
    n_splits : int
    n_groups : int
        Recording groups that were held out in turn.
    """

    labels: list[str]
    confusion: np.ndarray
    n_splits: int
    n_groups: int

    @classmethod
    def from_predictions(cls, y_true: np.ndarray, y_pred: np.ndarray, *, n_splits: int, n_groups: int) -> CVReport:
        """Confusion matrix of out-of-fold predictions.

        Parameters
        ----------
        y_true, y_pred : np.ndarray [shape=(n_windows,)], str
        n_splits, n_groups : int
            Stored for the summary line.
        """
        labels = sorted(set(y_true) | set(y_pred))
        index = {label: i for i, label in enumerate(labels)}
        confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
        np.add.at(confusion, ([index[v] for v in y_true], [index[v] for v in y_pred]), 1)
        return cls([str(v) for v in labels], confusion, n_splits, n_groups)

    @classmethod
    def from_dict(cls, data: dict) -> CVReport:
        """Inverse of :meth:`to_dict` (as stored in an artifact's training summary)."""
        return cls(data["labels"], np.asarray(data["confusion"]), data["n_splits"], data["n_groups"])

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(1, self.confusion.sum()))

    def per_class(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support per label."""
        out = {}
        for i, label in enumerate(self.labels):
            tp = self.confusion[i, i]
            precision = tp / max(1, self.confusion[:, i].sum())
            recall = tp / max(1, self.confusion[i].sum())
            f1 = 2 * precision * recall / max(1e-12, precision + recall)
            out[label] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                          "support": int(self.confusion[i].sum())}
        return out

    @property
    def macro_f1(self) -> float:
        return float(np.mean([m["f1"] for m in self.per_class().values()]))

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "labels": self.labels,
                "confusion": self.confusion.tolist(), "per_class": self.per_class(),
                "n_splits": self.n_splits, "n_groups": self.n_groups}

    def format(self) -> str:
        """Plain-text summary: accuracy, macro-F1, confusion, per-class P/R/F1."""
        width = max(8, *(len(lab) for lab in self.labels)) + 2
        lines = [f"window accuracy {self.accuracy:.4f}, macro-F1 {self.macro_f1:.4f} "
                 f"({self.n_splits}-fold grouped CV over {self.n_groups} recordings)",
                 "confusion (rows true, columns predicted):",
                 "".ljust(width) + "".join(lab.rjust(width) for lab in self.labels)]
        for label, row in zip(self.labels, self.confusion):
            lines.append(label.ljust(width) + "".join(str(int(v)).rjust(width) for v in row))
        lines.append("label".ljust(width) + "precision".rjust(11) + "recall".rjust(9) + "f1".rjust(8) + "windows".rjust(9))
        for label, m in self.per_class().items():
            lines.append(label.ljust(width) + f"{m['precision']:11.3f}{m['recall']:9.3f}{m['f1']:8.3f}{m['support']:9d}")
        return "\n".join(lines)


def _data_line(d: dict) -> str:
    windows = ", ".join(f"{k} {v}" for k, v in d["windows"].items())
    return f"- `{d['source']}`: {d['files']} files, {d['groups']} recording groups; windows: {windows}"


def _data_notes(summary: dict) -> str:
    notes = (f"Long files contribute evenly spread 10 s excerpts up to {summary['max_seconds_per_file']} s per "
             "file; windows below the silence gate are not used.")
    if summary.get("max_files_per_label"):
        notes += f" Extra sources: at most {summary['max_files_per_label']} files per label (seeded random choice)."
    if summary.get("narrowband"):
        notes += (" Every file is also used as an 8 kHz (telephone-band) copy, for training only, so that "
                  "bandwidth is not a class cue.")
    if summary.get("noisy_speech"):
        notes += (" Every speech file is also mixed with a random ambient file at 5-20 dB SNR (training only), "
                  "so that speech in background sound stays speech.")
    if summary.get("extra_share") is not None and summary.get("extra"):
        notes += (f" The extra sources are weighted per class so that they count {summary['extra_share']:g} times "
                  "as much as the main data's windows of that class (in every CV fold and in the final fit)")
        if summary.get("extra_balance") == "group":
            notes += (", split evenly over the class's recording groups (a Debian package, a speaker) before "
                      "their windows, so that a big source does not drown a small one.")
        else:
            notes += "."
    if summary.get("mixtures"):
        notes += (f" {summary['mixtures']} synthetic mixtures of the main clips (alternating labels, hard cuts and "
                  f"cross-fades) add {summary.get('mixture_windows', 0)} windows whose temporal context crosses a "
                  "label change (training only; a CV fold uses a mixture only if none of its recordings is held "
                  "out), so that a class does not bleed into its neighbour.")
    if summary.get("augment"):
        notes += (f" Every file is also used as {summary['augment']} degraded cop"
                  f"{'y' if summary['augment'] == 1 else 'ies'} (training only): a seeded chain of two or three of "
                  "level change, EQ tilt, background noise, reverberation, low-pass at 4/8/11 kHz, Opus or MP3 "
                  "round trip at a low rate, telephone band (300-3400 Hz at 8 kHz), so that what archives do to "
                  "recordings is not a class cue.")
    if summary.get("speech_over_music"):
        notes += (" Every speech file is also mixed over a random music file at -5 to +10 dB speech-to-music "
                  "ratio and labelled speech (training only; a presenter over a music bed is speech), from the main "
                  "data and, up to 600 copies, from the extra sources.")
    if summary.get("train_exclude"):
        matched = ", ".join(f"`{g}`" for g in summary.get("excluded_groups", [])) or "nothing"
        notes += (f" Never trained on (known label problems; still scored by the CV): files matching "
                  f"{', '.join(repr(t) for t in summary['train_exclude'])} ({matched}).")
    return notes


def _calibration_line(calibration: dict) -> str:
    loss = (f"log loss {calibration['log_loss_before']:.3f} -> {calibration['log_loss_after']:.3f} nats, "
            if "log_loss_before" in calibration else "")
    return (f"Probabilities calibrated by temperature {calibration['temperature']:.2f}, fitted on the grouped-CV fold "
            f"models' probabilities for the {calibration['windows']} windows of recordings they never saw ({loss}"
            f"expected calibration error {calibration['ece_before']:.3f} -> {calibration['ece_after']:.3f}, 10 bins).")


def write_card(path: str | os.PathLike, classifier: ContentClassifier, artifact: str | os.PathLike, summary: dict,
               *, speed_x_realtime: float | None = None, extra_sections: str = "") -> Path:
    """Write a Markdown model card next to an artifact.

    Parameters
    ----------
    path : path
        Card file (``README.md`` or ``<artifact>.md``).
    classifier : ContentClassifier
        The fitted classifier.
    artifact : path
        The saved artifact (its size is reported).
    summary : dict
        As returned by :func:`~adaptive_codec.train.classifier.train_classifier`.
    speed_x_realtime : float, optional
        Measured features + inference speed.
    extra_sections : str
        Markdown appended at the end (e.g. benchmark results).

    Returns
    -------
    Path
    """
    artifact = Path(artifact)
    config = classifier.config_
    params = {k: v for k, v in classifier.get_params().items() if k != "feature_config"}
    cv_sections = ["```", CVReport.from_dict(summary["cv"]).format(), "```"]
    if summary.get("cv_without_excluded"):
        cv_sections += ["", "The same predictions without the never-trained-on files above:", "",
                        "```", CVReport.from_dict(summary["cv_without_excluded"]).format(), "```"]
    lines = [
        f"# Content classifier `{artifact.name}`",
        "",
        f"Labels: {', '.join(str(c) for c in classifier.classes_)} (+ `silence` from the energy gate "
        f"below {classifier.silence_dbfs:g} dBFS window power).",
        "",
        "## Training data",
        "",
        _data_line(summary["data"]) + " (trained on and cross-validated)",
        *[_data_line(d) + " (training only, never scored)" for d in summary["extra"]],
        "",
        _data_notes(summary),
        "",
        "## Features",
        "",
        f"{len(feature_names(config))} level-invariant values per {config.window_s:g} s window "
        f"(hop {config.hop_s:g} s), from one STFT ({config.n_fft} points, hop {config.frame_hop}) at "
        f"{config.sample_rate_hz} Hz: mean and std of {config.n_mels}-band mel shape, MFCC 1-{config.n_mfcc}, "
        "spectral contrast, flatness, rolloff, centroid, bandwidth, zero-crossing rate, harmonicity, "
        "chroma peak; std of MFCC deltas; the window's chroma profile sorted by strength (key-invariant); "
        "spectral flux mean/std, energy std, low-energy-frame ratio, 1-3 / 3-6 / 6-12 Hz envelope modulation, "
        "onset periodicity, spectral stationarity, chroma flux; voicing (power-weighted harmonicity and "
        "flatness, harmonicity percentiles, voiced-frame ratio, voicing changes per second) and pitch contour "
        "(pitch spread, share of steady and gliding pitch steps); all spectra limited to "
        f"{config.fmax_hz:g} Hz; plus mean and std of all of these over +-{config.context_windows} neighbouring "
        "windows (temporal context), the window's level relative to that context and the level's spread over it "
        "(`adaptive_codec/features.py`).",
        "",
        "## Model",
        "",
        f"StandardScaler + `{classifier.model}` ({', '.join(f'{k}={v}' for k, v in params.items())}).",
        "Stored as safetensors arrays + JSON metadata (no pickle).",
        *([_calibration_line(summary["calibration"])] if summary.get("calibration") else []),
        "",
        "## Grouped cross-validation (window level)",
        "",
        *cv_sections,
        "",
        "## Size and speed",
        "",
        f"- artifact: {artifact.stat().st_size / 1024:.1f} KiB",
    ]
    if speed_x_realtime is not None:
        lines.append(f"- features + inference: {speed_x_realtime:.0f}x real time (one thread, 44.1 kHz input)")
    text = "\n".join(lines) + "\n" + (("\n" + extra_sections.strip() + "\n") if extra_sections else "")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
