"""What names a backbone weights file, read the same by the torch side and the torch-free runtime.

Light on imports (no torch): :mod:`adaptive_codec.backbone.weights` writes
and loads the file for training, :mod:`adaptive_codec.runtime.weights` reads
it for inference; both check :data:`WEIGHTS_FORMAT` and hash it with
:func:`file_sha256`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["WEIGHTS_FORMAT", "file_sha256"]

#: ``format`` metadata of a backbone weights file.
WEIGHTS_FORMAT = "adaptive-codec-backbone/1"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
