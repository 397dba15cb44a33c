"""Member names of ``.aca`` archives: the canonical form and what every file system can write.

docs/FORMAT.md 3.7 is the rule; writers, ``verify`` and readers all apply it
through :func:`normalize_member_name` and :func:`check_member_names`, so an
archive that verifies is an archive that extracts (both as ``.acx`` streams
and as decoded ``.wav`` files).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from adaptive_codec.errors import FormatError

__all__ = ["MAX_NAME_BYTES", "MAX_COMPONENT_BYTES", "normalize_member_name", "wav_name", "check_member_names"]

MAX_NAME_BYTES = 4096  # PATH_MAX on Linux
MAX_COMPONENT_BYTES = 255  # NAME_MAX of ext4, XFS, btrfs, APFS, NTFS (in UTF-16 units there)
_DRIVE = re.compile(r"^[A-Za-z]:")
# Control characters (Unicode category Cc: C0, DEL, C1 such as U+0085) and characters a
# terminal or file manager renders as something else: the bidi embeddings, overrides and
# isolates let "gpj.exe" show as "exe.jpg", the line and paragraph separators break
# `archive list` lines. Lone surrogates are not UTF-8.
_BAD = re.compile("[\x00-\x1f\x7f-\x9f\\\\\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _bad_character(name: str) -> str | None:
    m = _BAD.search(name)
    if m is None:
        return None
    ch = m.group()
    if ch == "\\":
        return "a backslash"
    if ord(ch) < 0xA0:
        return f"the control character U+{ord(ch):04X}"
    if "\ud800" <= ch <= "\udfff":
        return "an unpaired surrogate (not UTF-8)"
    return f"the bidirectional or separator character U+{ord(ch):04X}"


def wav_name(name: str) -> str:
    """The file a member is decoded to: its suffix replaced by ``.wav`` (``a/k.acx`` -> ``a/k.wav``).

    A last component without a suffix (or only a leading dot) gets ``.wav``
    appended, as :meth:`pathlib.PurePath.with_suffix` does.
    """
    head, _, last = name.rpartition("/")
    dot = last.rfind(".")
    stem = last[:dot] if dot > 0 and dot < len(last) - 1 else last
    return (head + "/" if head else "") + stem + ".wav"


def normalize_member_name(name: str) -> str:
    """Canonical relative POSIX member path, or :class:`FormatError` if it is unsafe.

    ``./a//b`` becomes ``a/b``; absolute paths, drive letters, ``..``
    components, backslashes, control characters (C0 and C1), bidirectional
    controls and components longer than 255 UTF-8 bytes (also once mapped to
    ``.wav``) are rejected.
    """
    if not isinstance(name, str) or not name:
        raise FormatError("member name is empty")
    bad = _bad_character(name)
    if bad:
        raise FormatError(f"member name {ascii(name)} contains {bad}")
    if name.startswith("/") or _DRIVE.match(name):
        raise FormatError(f"member name {name!r} is absolute")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise FormatError(f"member name {name!r} contains '..'")
    if not parts:
        raise FormatError(f"member name {name!r} names no file")
    out = "/".join(parts)
    if len(out.encode("utf-8")) > MAX_NAME_BYTES:
        raise FormatError(f"member name is longer than {MAX_NAME_BYTES} bytes")
    longest = max(len(p.encode("utf-8")) for p in wav_name(out).split("/") + parts)
    if longest > MAX_COMPONENT_BYTES:
        raise FormatError(f"member name {out[:40]!r}... has a component of {longest} bytes "
                          f"(once named .wav); file systems take at most {MAX_COMPONENT_BYTES}")
    return out


def check_member_names(names: Iterable[str], where: str) -> None:
    """Refuse a set of (canonical) names that cannot all be extracted side by side.

    Two members decoding to the same ``.wav`` (``k.acx``, ``k.bin``), and a
    member that is also a folder of another (``x.acx`` and ``x.acx/y.acx``,
    in either mode) are refused.

    Raises
    ------
    FormatError
        Naming both members.
    """
    files: dict[str, str] = {}
    for name in names:
        for target in {name, wav_name(name)}:
            other = files.setdefault(target, name)
            if other != name:
                raise FormatError(f"{where}: members {other!r} and {name!r} both extract to {target!r}")
    folders: dict[str, str] = {}
    for target, name in files.items():
        parts = target.split("/")
        for i in range(1, len(parts)):
            folders.setdefault("/".join(parts[:i]), name)
    for folder, name in folders.items():
        if folder in files:
            raise FormatError(f"{where}: member {files[folder]!r} is also a folder of member {name!r}")
