"""High-band coding: 44.1/48 kHz sources get back what lies above the backbone's 12 kHz.

The encoder measures the original's band levels above the crossover on a
band × frame grid (:mod:`~adaptive_codec.tools.highband.analysis`),
quantizes and entropy-codes them (:mod:`~adaptive_codec.tools.highband.coding`);
the decoder regenerates the band by patching the decoded 5-11 kHz band
up and adding noise, shaped to the decoded levels
(:mod:`~adaptive_codec.tools.highband.synthesis`), on the STFT grid of
:mod:`~adaptive_codec.tools.highband.grid`. :mod:`~adaptive_codec.tools.highband.stage`
is what the pipeline calls. What SBR does in HE-AAC and band energies with
spectral folding in Opus/CELT, in a few hundred bits per second.
"""

from adaptive_codec.tools.highband.stage import (
    analyzer_for,
    code_highband,
    highband_blocks,
    highband_bytes_by_label,
)

__all__ = ["analyzer_for", "code_highband", "highband_blocks", "highband_bytes_by_label"]
