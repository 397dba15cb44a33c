"""adaptive-codec: a content-adaptive neural audio codec.

A lightweight classifier routes each segment of a recording to a profile
(speech, music, ambient or a user's own); the profile sets bitrate, quantizer
depth and loss weights for one shared, profile-conditioned backbone codec.
"""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
