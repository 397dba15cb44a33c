"""Coding tools around the backbone: each restores or adds what the 24 kHz backbone does not code.

- :mod:`adaptive_codec.tools.highband`: the band above 12 kHz of 44.1/48 kHz
  sources, as a coded envelope filled by patching and noise.

NumPy/SciPy only (no torch), so decoding them needs only the base install.
"""
