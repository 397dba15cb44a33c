"""The package's one TOML reader: profiles, training and benchmark configs.

Python 3.11+ parses with the standard library's ``tomllib``; Python 3.10,
which ``pyproject.toml`` admits, gets the same parser from ``tomli`` (a
dependency there). Nothing else in the package imports either.

Errors are one line that names the file, the place and the problem::

    FILE:LINE:COL: invalid TOML: PROBLEM
    FILE: cannot read WHAT (REASON)
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from adaptive_codec.errors import AdaptiveCodecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

__all__ = ["TomlError", "find_key_line", "load_toml", "parse_toml", "where_key"]


class TomlError(AdaptiveCodecError, ValueError):
    """A TOML file cannot be read or parsed (when the caller names no error class)."""


# tomllib < 3.14 puts the place only in the message: "... (at line 5, column 15)".
_LOCATION_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _location(exc: Exception) -> str:
    """``"LINE:COL: "`` of a decode error, or ``" "`` when it names none."""
    line = getattr(exc, "lineno", None)  # Python >= 3.14 exposes these
    col = getattr(exc, "colno", None)
    if line is None:
        m = _LOCATION_RE.search(str(exc))
        if m is None:
            return " "
        line, col = m.group(1), m.group(2)
    return f"{line}:{col}: "


def parse_toml(text: str, where: str, *, error: type[Exception] = TomlError) -> dict[str, Any]:
    """Parse TOML text.

    Parameters
    ----------
    text : str
        The document.
    where : str
        What the text came from (a file name), the start of every message.
    error : type of Exception
        Raised with the one-line message; callers pass their own
        (``ProfileError``, ``TrainConfigError``, ...).

    Returns
    -------
    dict
        The document's top-level table.

    Raises
    ------
    error
        ``WHERE:LINE:COL: invalid TOML: PROBLEM``.
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problem = _LOCATION_RE.sub("", str(exc))
        raise error(f"{where}:{_location(exc)}invalid TOML: {problem}") from exc


def load_toml(path: str | os.PathLike[str], *, what: str = "file",
              error: type[Exception] = TomlError) -> dict[str, Any]:
    """Read and parse a UTF-8 TOML file.

    Parameters
    ----------
    path : str or PathLike
    what : str
        What the file is to the caller (``"profile"``, ``"config"``), for the
        read error.
    error : type of Exception
        Raised with the one-line message.

    Returns
    -------
    dict
        The document's top-level table.

    Raises
    ------
    error
        ``FILE: cannot read WHAT (REASON)`` or
        ``FILE:LINE:COL: invalid TOML: PROBLEM``.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error(f"{p}: cannot read {what} ({reason})") from exc
    return parse_toml(text, str(p), error=error)


# -- locating a key in the text (for errors found after parsing) ---------------

_HEADER_RE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")


def _key_pattern(key: str) -> re.Pattern[str]:
    return re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")


def find_key_line(text: str, key: str) -> int | None:
    """1-based line where ``key`` (``"a"`` or ``"table.a"``) is set, or None.

    Understands ``[table]`` sections, dotted keys (``table.a = 1``) and inline
    tables (``table = {a = 1}``, reported at the table's line). A key that is
    not set but whose table is gives the table header's line.
    """
    table, _, leaf = key.rpartition(".")
    current = ""
    table_line = None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER_RE.match(line)
        if header:
            current = header.group(1).replace(" ", "").replace('"', "")
            if current == table:
                table_line = number
            continue
        if current == table and _key_pattern(leaf).match(line):
            return number
        if table and current == "":
            if _key_pattern(key).match(line):  # dotted key: loss_weights.mel = 1
                return number
            if _key_pattern(table).match(line):  # inline table: loss_weights = {...}
                return number
    return table_line


def where_key(path: str | os.PathLike[str], key: str, text: str | None = None) -> str:
    """Message prefix ``"FILE:LINE: "`` for ``key`` in a TOML file (``"FILE: "`` if not found).

    Parameters
    ----------
    path : str or PathLike
    key : str
        ``"a"`` or ``"table.a"``.
    text : str, optional
        The file's text; read from ``path`` when not given (an unreadable
        file gives ``"FILE: "``).
    """
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return f"{path}: "
    line = find_key_line(text, key)
    return f"{path}:{line}: " if line else f"{path}: "
