"""Parametric stereo: a stereo pair coded as its mid plus a few hundred bits per second of image.

The encoder measures, per band and parameter frame of the original, the
inter-channel level difference (ILD) and coherence (ICC)
(:mod:`~adaptive_codec.tools.parametric_stereo.analysis`), quantizes and
range-codes them (:mod:`~adaptive_codec.tools.parametric_stereo.coding`);
the backbone codes the mid alone. The decoder makes left and right from the
decoded mid and a decorrelated copy of it, mixed per band so that their
levels and coherence are the coded ones
(:mod:`~adaptive_codec.tools.parametric_stereo.synthesis`). What HE-AAC v2
parametric stereo does with IID/ICC, on the high band's STFT grid.
:mod:`~adaptive_codec.tools.parametric_stereo.stage` is what the pipeline calls.
"""

from adaptive_codec.tools.parametric_stereo.stage import analyzer_for, code_parametric, param_frames_for, parametric_blocks

__all__ = ["analyzer_for", "code_parametric", "param_frames_for", "parametric_blocks"]
