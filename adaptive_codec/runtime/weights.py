"""The shipped backbone weights read as NumPy arrays, with the identity streams record.

The same file, metadata and id rule as :func:`adaptive_codec.backbone.weights.load_weights`
(``<weights_version>+<first 16 hex of the file's SHA-256>``), without torch:
the fp16 tensors are widened to float32 exactly as the torch loader does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from adaptive_codec.backbone.config import BackboneConfig
from adaptive_codec.backbone.weights_file import WEIGHTS_FORMAT, file_sha256
from adaptive_codec.errors import ModelError

__all__ = ["WEIGHTS_FORMAT", "BackboneArrays", "file_sha256", "read_weights"]

@dataclass(frozen=True)
class BackboneArrays:
    """A weights file's tensors (float32) and metadata.

    Attributes
    ----------
    config : BackboneConfig
    arrays : dict of str to np.ndarray
        The torch state-dict names (``encoder.blocks.0.pw1.weight``, …), float32.
    meta : dict of str to str
        The file's metadata plus ``sha256`` and ``weights_id``.
    """

    config: BackboneConfig
    arrays: dict[str, np.ndarray] = field(repr=False)
    meta: dict[str, str]


def read_weights(path: Path) -> BackboneArrays:
    """Read a backbone weights file (safetensors, fp16) without torch.

    Raises
    ------
    ModelError
        Not a readable adaptive-codec backbone weights file.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="np") as fh:
            meta = dict(fh.metadata() or {})
            if meta.get("format") != WEIGHTS_FORMAT:
                raise ModelError(f"{path}: not adaptive-codec backbone weights "
                                 f"(format {meta.get('format')!r}, expected {WEIGHTS_FORMAT!r})")
            arrays = {k: fh.get_tensor(k).astype(np.float32) for k in fh.keys()}
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{path}: not a readable safetensors weights file ({exc})") from None
    try:
        config = BackboneConfig.from_dict(json.loads(meta["backbone_config"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable backbone_config metadata ({exc})") from None
    meta["sha256"] = file_sha256(path)
    meta["weights_id"] = f"{meta['weights_version']}+{meta['sha256'][:16]}"
    return BackboneArrays(config, arrays, meta)
