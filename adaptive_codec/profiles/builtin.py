"""The built-in content classes: the one place that names them.

The shipped backbone has one profile embedding and one entropy prior per
built-in class, in this order (``.acx`` streams refer to them by index:
docs/FORMAT.md, "prior_id 0 speech, 1 music, 2 ambient"), and
``profiles/<class>.toml`` describes how each is coded. Training, the
backbone's default configuration and the benchmarks take the list from
here. Light on purpose (no imports): the package root imports ``profiles/``.
"""

from __future__ import annotations

__all__ = ["BUILTIN_CLASSES"]

#: Built-in classes in embedding / prior order (changing the order changes
#: what shipped weights and existing streams mean).
BUILTIN_CLASSES: tuple[str, ...] = ("speech", "music", "ambient")
