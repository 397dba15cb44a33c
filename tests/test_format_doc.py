"""docs/FORMAT.md is the source of truth: check its field tables, bounds and examples against the code."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from _format_samples import tiny_stream

from adaptive_codec.container import aca as archive
from adaptive_codec.container.binary import fixed_size
from adaptive_codec.container.acx import read_acx, to_bytes

DOC = Path(__file__).resolve().parents[1] / "docs" / "FORMAT.md"
LAYOUT_TYPE = re.compile(r"^(u8|u16|u32|u64|f32|f64|varint|str8|str16|str32|vstr|bytes\d+)$")
VARIABLE_SIZE = {"varint", "str8", "str16", "str32", "vstr"}
LAYOUT_MODULES = ["adaptive_codec.container.acx", "adaptive_codec.container.acx_header",
                  "adaptive_codec.container.acx_extensions", "adaptive_codec.container.aca", "adaptive_codec.container.aca_format"]
UNDOCUMENTED_OK: set[str] = set()


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _table_after(text: str, pos: int) -> list[list[str]]:
    """Rows (cells stripped of backticks) of the first markdown table after ``pos``, header row excluded."""
    rows = []
    lines = text[pos:].splitlines()[1:]
    for line in lines:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        rows.append(cells)
    assert len(rows) >= 2, "marker not followed by a table"
    return [r for r in rows[1:] if not set("".join(r)) <= set("-: ")]


def _markers(kind: str) -> list[tuple[str, int]]:
    text = _doc()
    return [(m.group(1), m.end()) for m in re.finditer(rf"<!-- {kind}: ([\w.]+) -->", text)]


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("dotted,pos", _markers("layout"), ids=[m[0] for m in _markers("layout")])
def test_field_table_matches_code(dotted, pos):
    layout = list(_resolve(dotted))
    rows = _table_after(_doc(), pos)
    documented = []
    for offset, kind, name, *_ in rows:
        if not LAYOUT_TYPE.match(kind):
            break  # arrays, CRCs, bodies: what follows the fixed layout
        documented.append((name, kind, offset))
    assert [(n, k) for n, k, _ in documented] == layout, f"{dotted}: docs/FORMAT.md table differs from the code"
    # Offsets are exact while every earlier field has a fixed size, then "var".
    at = 0
    for name, kind, offset in documented:
        if at is None:
            assert offset == "var", f"{dotted}.{name}: offset should be 'var'"
        else:
            assert offset == str(at), f"{dotted}.{name}: documented offset {offset}, code has {at}"
            at = None if kind in VARIABLE_SIZE else at + fixed_size([(name, kind)])
    # Every documented row has a unit and a meaning.
    assert all(len(r) == 5 and r[3] and r[4] for r in rows)


def test_every_code_layout_is_documented():
    documented = {id(_resolve(d)) for d, _ in _markers("layout")}
    allowed = {id(_resolve(d)) for d in UNDOCUMENTED_OK}
    for module_name in LAYOUT_MODULES:
        module = importlib.import_module(module_name)
        for name in dir(module):
            if name.endswith("_LAYOUT"):
                assert id(getattr(module, name)) in documented | allowed, f"{module_name}.{name} missing from docs/FORMAT.md"


@pytest.mark.parametrize("module_name,pos", _markers("constants"), ids=[m[0] for m in _markers("constants")])
def test_bounds_tables_match_code(module_name, pos):
    module = importlib.import_module(module_name)
    for name, value, _meaning in _table_after(_doc(), pos):
        assert getattr(module, name) == int(value), f"{module_name}.{name}"


def _hex_block(label: str) -> bytes:
    match = re.search(rf"```hex {label}\n(.*?)```", _doc(), re.S)
    assert match, f"no hex block {label}"
    out = bytearray()
    for line in match.group(1).splitlines():
        code = line.split("#", 1)[0].strip()
        if not code:
            continue
        offset, _, hexes = code.partition(":")
        assert int(offset, 16) == len(out), f"{label}: line offset {offset} but {len(out):04x} bytes so far"
        out += bytes.fromhex(hexes)
    return bytes(out)


def test_acx_worked_example():
    doc_bytes = _hex_block("acx-example")
    assert to_bytes(tiny_stream()) == doc_bytes
    stream = read_acx(doc_bytes)
    assert (stream.n_frames, stream.codebook_size, stream.profiles[0].name) == (2, 16, "speech")


def test_depth_map_worked_example():
    from adaptive_codec.entropy.coder import decode_frames, encode_frames
    from adaptive_codec.entropy.tables import EntropyModel

    model = EntropyModel.uniform(1, 1, 16, precision_bits=8)
    adaptive, priors = np.ones(3, bool), np.zeros(3, np.int64)
    data = encode_frames(model, np.array([[5, 0, 9]]), np.array([1, 0, 1]), priors, adaptive=adaptive)
    assert data == _hex_block("depth-map-example")
    codes, depths = decode_frames(model, data, np.ones(3, np.int64), priors, 1, adaptive=adaptive, return_depths=True)
    assert depths.tolist() == [1, 0, 1] and codes.tolist() == [[5, 0, 9]]


def test_aca_worked_example(tmp_path):
    import zlib

    path = tmp_path / "example.aca"
    archive.create_archive(path, [("a.acx", b"\x00\x01\x02\x03", {"duration_s": 1.0, "class_mix": {"speech": 1.0}, "original_size_bytes": 32000})])
    assert path.read_bytes() == _hex_block("aca-example")
    assert archive.verify_archive(path).ok
    # The documented index entries are what the zlib stream inflates to.
    doc = _hex_block("aca-example")
    assert zlib.decompress(doc[0x2D : len(doc) - archive.END_BYTES - 4]) == _hex_block("aca-index-example")
    (entry,) = archive.list_archive(path)
    assert (entry.name, entry.size_bytes, entry.duration_s, entry.original_size_bytes) == ("a.acx", 4, 1.0, 32000)


def test_magic_and_chunk_tags_documented():
    text = _doc()
    for token in ["ACX1", "ACA1", "ACAD", "ACAE", "ACAI", "ACAZ"]:
        assert f"`{token}`" in text
