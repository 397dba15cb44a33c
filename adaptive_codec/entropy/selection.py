"""Which entropy tables a codec codes with: the shipped tables of its weights, or a fallback.

The tables (context model of the RVQ indices) live next to the weights in
``entropy.safetensors``, built for exactly those weights by
``adaptive-codec train entropy``. Without a matching table the codec falls
back to the weights' own per-level priors, with a warning: files are then
about a quarter larger, and decode only with the same fallback.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from adaptive_codec.entropy.tables import EntropyModel
from adaptive_codec.errors import FormatError, ModelError

__all__ = ["ENTROPY_TABLE_NAME", "EntropyTableWarning", "PRIOR_UNIFORM_SHARE", "coding_prior_logits",
           "entropy_model_for"]

#: File name of the entropy tables, next to the backbone weights they belong to.
ENTROPY_TABLE_NAME = "entropy.safetensors"

#: Share of the uniform distribution mixed into the learned priors: caps the
#: cost of a code the training data rarely used at log2(K / share) bits, so
#: unusual audio never costs much more than fixed-length indices. 0.1 was the
#: best of 0 / 0.02 / 0.05 / 0.1 on the bundled examples with weights 0.dev1600
#: (the young priors are stale; revisit as training converges).
PRIOR_UNIFORM_SHARE = 0.1


class EntropyTableWarning(UserWarning):
    """The entropy tables next to the weights are missing or belong to other weights."""


def coding_prior_logits(prior_logits: np.ndarray) -> np.ndarray:
    """Logits of the fallback coder: learned priors mixed with a little uniform, float64.

    Parameters
    ----------
    prior_logits : np.ndarray or torch.Tensor [shape=(n_priors, n_levels, codebook_size)]
        The backbone's learned per-level priors.
    """
    if hasattr(prior_logits, "detach"):  # a torch parameter (training), without importing torch here
        prior_logits = prior_logits.detach().cpu().numpy()
    x = np.asarray(prior_logits, dtype=np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    probs = e / e.sum(-1, keepdims=True)
    k = probs.shape[-1]
    return np.log((1 - PRIOR_UNIFORM_SHARE) * probs + PRIOR_UNIFORM_SHARE / k)


def entropy_model_for(backbone, weights_meta: dict[str, str], table: Path) -> EntropyModel:
    """The entropy tables at ``table`` if built for these weights, else the weights' own priors.

    The fallback (per-level priors without contexts, from the weights'
    ``prior_logits``) codes about a quarter more bytes; a warning
    (:class:`EntropyTableWarning`) says so and how to rebuild the tables.

    Raises
    ------
    ModelError
        If a table built for these weights does not fit the backbone's shape.
    """
    cfg = backbone.config
    reason = None
    if not Path(table).is_file():
        reason = f"no entropy tables at {table}"
    else:
        try:
            model, meta = EntropyModel.load(table)
        except FormatError as exc:
            reason = str(exc)
        else:
            if meta.get("weights_sha256") != weights_meta["sha256"]:
                reason = (f"{table} was built for weights {meta.get('weights_id')}, "
                          f"not {weights_meta['weights_id']}")
            elif (model.n_priors, model.n_levels, model.codebook_size) != (
                    len(cfg.profiles), cfg.n_levels, cfg.codebook_size):
                raise ModelError(f"{table}: tables of shape {model.frequencies.shape} do not fit the "
                                 f"backbone ({len(cfg.profiles)} profiles, {cfg.n_levels} levels, "
                                 f"{cfg.codebook_size} codes)")
            else:
                return model
    warnings.warn(f"{reason}: coding with the weights' static priors (larger files); build matching "
                  "tables with `adaptive-codec train entropy`", EntropyTableWarning, stacklevel=3)
    return EntropyModel.from_logits(coding_prior_logits(backbone.prior_logits))
