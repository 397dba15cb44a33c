"""The enhancement layer: the MDCT residual between the input and the backbone's decoded output.

Above the backbone's useful depth, quality keeps rising only if the bits
go to what the decoder does not reproduce (docs/RESULTS.md, issue 34). The
layer codes the residual of the input's 24 kHz MDCT against the backbone's
decoded MDCT, band by band, with a scalar quantizer whose steps follow the
decoded band energies (:mod:`~adaptive_codec.tools.enhance.quantizer`),
fixed integer Laplace tables (:mod:`~adaptive_codec.tools.enhance.tables`)
and constriction's range coder, one self-contained payload per chunk whose
gain byte sets its size (:mod:`~adaptive_codec.tools.enhance.payload`).
The decoder adds the dequantized residual before the inverse MDCT.
"""

from adaptive_codec.tools.enhance.payload import code_layer, decode_layer, decode_payload, encode_payload, fit_gain
from adaptive_codec.tools.enhance.quantizer import LayerConfig, band_bins
from adaptive_codec.tools.enhance.tables import estimated_bytes, table_digest

__all__ = ["LayerConfig", "band_bins", "code_layer", "decode_layer", "decode_payload", "encode_payload",
           "estimated_bytes", "fit_gain", "table_digest"]
