"""Coding tools around the backbone: each restores or adds what the 24 kHz backbone does not code.

- :mod:`adaptive_codec.tools.highband`: the band above 12 kHz of 44.1/48 kHz
  sources, as a coded envelope filled by patching and noise.
- :mod:`adaptive_codec.tools.stereo`: which stereo tool a total rate gets and
  the side's depth under mid/side; :mod:`adaptive_codec.tools.parametric_stereo`:
  the mid alone plus per-band level differences and coherence at low rates.
- :mod:`adaptive_codec.tools.enhance`: the enhancement layer's coder, the
  MDCT residual between the input and the backbone's decoded output.

NumPy/SciPy only (no torch), so decoding them needs only the base install.
"""
