"""adaptive-codec: a content-adaptive neural audio codec.

A lightweight classifier routes each segment of a recording to a profile
(speech, music, ambient or a user's own); the profile sets bitrate, quantizer
depth and loss weights for one shared, profile-conditioned backbone codec.

Importing the package stays light (no torch); heavy parts load on first use.
"""

__version__ = "0.1.0.dev0"

from adaptive_codec.audio import (  # noqa: E402 - __version__ first: setup reads it
    INTERNAL_SAMPLE_RATE_HZ,
    AudioInfo,
    load_audio,
    resample,
    save_audio,
    to_mono,
    validate_audio,
)
from adaptive_codec.errors import (  # noqa: E402
    AdaptiveCodecError,
    AudioError,
    FormatError,
    ModelError,
    ProfileError,
)
from adaptive_codec.profiles import LossWeights, Profile, ProfileRegistry  # noqa: E402
from adaptive_codec.planning.rate import Rate  # noqa: E402
from adaptive_codec.planning.rate_control import RateOutcome, cap_message  # noqa: E402

__all__ = [
    "__version__",
    # audio
    "INTERNAL_SAMPLE_RATE_HZ",
    "AudioInfo",
    "load_audio",
    "save_audio",
    "resample",
    "to_mono",
    "validate_audio",
    # profiles
    "LossWeights",
    "Profile",
    "ProfileRegistry",
    "Rate",
    "RateOutcome",
    "cap_message",
    # errors
    "AdaptiveCodecError",
    "AudioError",
    "FormatError",
    "ModelError",
    "ProfileError",
    # codec, classifier, routing, backbone (imported on first use: they pull in
    # onnxruntime / sklearn; Backbone needs torch, the train extra)
    "AdaptiveCodec",
    "ContentClassifier",
    "Segment",
    "Backbone",
    "BackboneConfig",
    "RuntimeBackbone",
    "load_backbone",
]

_LAZY = {
    "AdaptiveCodec": ".codec",
    "ContentClassifier": ".analysis.classifier",
    "Segment": ".analysis.routing",
    "Backbone": ".backbone.model",
    "BackboneConfig": ".backbone.config",
    "RuntimeBackbone": ".runtime",
    "load_backbone": ".runtime",
}


def __getattr__(name: str):
    # PEP 562: heavy parts load on first use, so `import adaptive_codec` stays fast.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'adaptive_codec' has no attribute {name!r}")
