"""Profiles: what each class of content is coded and trained with, as data.

``profile``   the :class:`Profile` dataclass, its loss weights and TOML schema
``registry``  :class:`ProfileRegistry`: built-ins, plug-ins, users' folders
``builtin``   :data:`BUILTIN_CLASSES`, the built-in classes in embedding order
``toml``      the package's one TOML reader (one-line errors naming file and line)

Nothing here imports torch: the package root imports this folder.
"""

from adaptive_codec.profiles.builtin import BUILTIN_CLASSES
from adaptive_codec.profiles.profile import (
    ENTRY_POINT_GROUP,
    ENV_VAR,
    LOSS_TERMS,
    MAX_DEPTH_SLOPE,
    LossWeights,
    Profile,
)
from adaptive_codec.profiles.registry import ProfileRegistry

__all__ = [
    "BUILTIN_CLASSES",
    "ENTRY_POINT_GROUP",
    "ENV_VAR",
    "LOSS_TERMS",
    "MAX_DEPTH_SLOPE",
    "LossWeights",
    "Profile",
    "ProfileRegistry",
]
