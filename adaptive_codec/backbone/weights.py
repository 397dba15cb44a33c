"""Backbone weights on disk: safetensors (fp16) with config and provenance metadata.

No pickle: the file holds tensors and a string→string metadata map
(``backbone_config`` as JSON, ``weights_version``, ``steps``). The weights
id that bitstreams record is ``<version>+<first 16 hex of sha256 of the file>``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from adaptive_codec.backbone.model import Backbone, BackboneConfig
from adaptive_codec.backbone.weights_file import WEIGHTS_FORMAT, file_sha256

def export_weights(model: Backbone, path: Path, *, steps: int, version: str | None = None,
                   extra: dict[str, str] | None = None) -> Path:
    """Write ``model`` as fp16 safetensors atomically; returns ``path``.

    Buffers that are recomputed at construction (MDCT basis, usage counters)
    are not stored. (A codec's inference backbone gives its torch model
    through :func:`~adaptive_codec.backbone.inference.torch_model`.)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.float16).contiguous().cpu()
               for k, v in model.state_dict().items()}
    meta = {
        "format": WEIGHTS_FORMAT,
        "backbone_config": json.dumps(model.config.to_dict()),
        "steps": str(int(steps)),
        "weights_version": version or f"0.dev{int(steps)}",
    }
    meta.update(extra or {})
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; weights are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_metadata(path: Path) -> dict[str, str]:
    """Metadata map of a weights file (raises ValueError if it is not one)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a readable safetensors weights file ({exc})") from None
    if meta.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path}: not adaptive-codec backbone weights "
                         f"(format {meta.get('format')!r}, expected {WEIGHTS_FORMAT!r})")
    return meta


def load_weights(path: Path, device: str = "cpu") -> tuple[Backbone, dict[str, str]]:
    """Backbone in eval mode (float32) and its metadata, from a safetensors file."""
    meta = read_metadata(path)
    config = BackboneConfig.from_dict(json.loads(meta["backbone_config"]))
    model = Backbone(config)
    state = {k: v.float() for k, v in load_file(str(path), device=device).items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"{path}: weights do not match the backbone ({first})") from None
    meta["sha256"] = file_sha256(path)
    meta["weights_id"] = f"{meta['weights_version']}+{meta['sha256'][:16]}"
    return model.to(device).eval(), meta
