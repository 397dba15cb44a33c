"""Structure-aware fuzzing of ``.aca`` readers: well-formed records, hostile values.

Bit flips (tests/test_fuzz.py) mostly die at the first CRC. These archives are
built field by field from docs/FORMAT.md section 3 with every CRC right, so
the checks behind the CRCs are reached: fields at their limits and beyond,
index and local headers that disagree, hostile names and metadata values,
wrong and damaged dictionaries, several archives back to back, truncation.
Every case must end in a valid result or an ``AdaptiveCodecError`` (never
another exception), within a time bound, without writing outside the target
folder. ``pytest -m slow tests/test_fuzz_aca.py`` runs 10,000 cases.
"""

from __future__ import annotations

import resource
import tempfile
import time
import zlib
from pathlib import Path

import pytest
from _format_samples import archive_members
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptive_codec.container import aca_format as fmt
from adaptive_codec.container.aca import extract_archive, list_archive, read_member, verify_archive
from adaptive_codec.container.binary import Writer, crc32
from adaptive_codec.errors import AdaptiveCodecError

ACX_MEMBERS = [d for _, d, _ in archive_members(2)] + [d for _, d, _ in archive_members(1, seed=5)]
CASE_SECONDS = 2.0  # the bound per case (loose: the machine is shared)
RSS_SLACK_KIB = 200 * 1024
NAMES = ["a.acx", "d/b.acx", "k.bin", "k.acx", "x.acx/y.acx", "x.acx", "../e.acx", "/abs", "a\u0085b", "g\u202e.acx",
         "n" * 252 + ".acx", "./a//c.acx", "a\\b", "", "é" * 127 + ".acx", "c:/x"]
METAS = ['{"class_mix":{}}', '{"class_mix":{"speech":1.0}}', '{"class_mix":{"speech":1e400}}', '{"class_mix":{"s":-1}}',
         '{"flac_size_bytes":-1}', '[]', '{', '{"class_mix":[1]}', '{"a":' * 40 + "1" + "}" * 40, '{"x":NaN}']
HUGE = [0, 1, 255, 4096, 4097, 65536, 65537, 1 << 20, (1 << 30) + 1, (1 << 32) - 1, 1 << 62]


def _override(draw, clean: bool, value: int) -> int:
    """The true value most of the time; a limit, a neighbour or a huge value sometimes."""
    if clean:
        return value
    kind = draw(st.integers(0, 9))
    if kind < 7:
        return value
    if kind < 9:
        return max(0, value + draw(st.integers(-2, 2)))
    return draw(st.sampled_from(HUGE))


@st.composite
def archives(draw) -> bytes:
    """A whole archive, field by field, CRCs right (one in four a clean one, as the writer makes)."""
    clean = draw(st.integers(0, 3)) == 0
    dictionary = draw(st.sampled_from([b"", ACX_MEMBERS[0][:60], ACX_MEMBERS[2][:60], b"\0" * 100]))
    head = fmt.preamble()
    if not clean and draw(st.integers(0, 19)) == 0:
        head = fmt.MAGIC + bytes([draw(st.sampled_from([1, 2, 3])), 0]) + draw(st.sampled_from([b"\0\0", b"\1\0"]))
    w = Writer()
    w.fields(fmt.DICTIONARY_LAYOUT, {"signature": fmt.DICTIONARY_SIGNATURE,
                                     "dictionary_length_bytes": _override(draw, clean, len(dictionary))})
    record = w.bytes() + dictionary
    crc = crc32(record)
    if not clean and draw(st.integers(0, 9)) == 0:
        crc ^= 1 << draw(st.integers(0, 31))  # a damaged dictionary
    buf = bytearray(head + record + crc.to_bytes(4, "little"))
    entries = []
    for i in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(NAMES)) if draw(st.booleans()) else draw(st.text(max_size=12))
        data = draw(st.sampled_from(ACX_MEMBERS)) if draw(st.booleans()) else draw(st.binary(max_size=40))
        pack_with = draw(st.sampled_from([dictionary, b"", ACX_MEMBERS[1][:80]]))
        if clean:
            name, pack_with = f"m{i}.acx", dictionary
        prefix = min(len(data), draw(st.sampled_from([0, 10, 60, 200, len(data)])))
        packed = b""
        if prefix:
            z = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, pack_with) if pack_with \
                else zlib.compressobj(9, zlib.DEFLATED, -15)
            packed = z.compress(data[:prefix]) + z.flush()
        lh = Writer()
        try:
            lh.fields(fmt.LOCAL_HEADER_LAYOUT, {
                "signature": fmt.LOCAL_SIGNATURE, "name": name,
                "data_length_bytes": _override(draw, clean, len(data)),
                "packed_prefix_length_bytes": _override(draw, clean, len(packed)),
                "prefix_length_bytes": _override(draw, clean, prefix if packed else 0)})
        except (AdaptiveCodecError, UnicodeEncodeError):
            continue  # a name the byte writer itself cannot encode (lone surrogates)
        body = lh.bytes() + packed + data[prefix if packed else 0 :]
        ecrc = crc32(body)
        offset = len(buf)
        buf += body + ecrc.to_bytes(4, "little")
        entries.append({"name": name if clean or draw(st.integers(0, 9)) else draw(st.sampled_from(NAMES[:3])),
                        "data_length_bytes": _override(draw, clean, len(data)),
                        "entry_length_bytes": _override(draw, clean, len(body) + 4),
                        "entry_crc32": ecrc if clean or draw(st.integers(0, 9)) else ecrc ^ 1,
                        "original_size_bytes": _override(draw, clean, 1000), "duration_us": _override(draw, clean, 10**6),
                        "metadata_json": METAS[1] if clean else draw(st.sampled_from(METAS))})
        del offset
    index_offset = len(buf)
    body = Writer()
    for e in entries:
        body.fields(fmt.INDEX_ENTRY_LAYOUT, e)
    raw = body.bytes()
    packed = zlib.compress(raw, 9)
    ih = Writer()
    ih.fields(fmt.INDEX_HEAD_LAYOUT, {"signature": fmt.INDEX_SIGNATURE,
                                      "entry_count": _override(draw, clean, len(entries)),
                                      "entries_length_bytes": _override(draw, clean, len(raw)),
                                      "compressed_length_bytes": _override(draw, clean, len(packed))})
    index = ih.bytes() + packed
    index += crc32(index).to_bytes(4, "little")
    end = Writer()
    end.fields(fmt.END_LAYOUT[:-1], {"signature": fmt.END_SIGNATURE,
                                     "index_offset": _override(draw, clean, index_offset),
                                     "index_length_bytes": _override(draw, clean, len(index)),
                                     "entry_count": min(_override(draw, clean, len(entries)), (1 << 32) - 1)})
    end_bytes = end.bytes()
    buf += index + end_bytes + crc32(head, end_bytes).to_bytes(4, "little")
    out = bytes(buf)
    shape = 9 if clean else draw(st.integers(0, 9))
    if shape == 0:
        out = out + out  # cat A A
    elif shape == 1:
        out = out[: draw(st.integers(0, len(out)))]
    return out


def check_archive(data: bytes) -> None:
    """Every reader on ``data``: a result or an AdaptiveCodecError, fast, nothing outside the target."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        path = d / "f.aca"
        path.write_bytes(data)
        start = time.monotonic()
        try:
            for e in list_archive(path):
                read_member(path, e.name)
        except AdaptiveCodecError:
            pass
        verify_archive(path, check_members=True)  # never raises for a damaged file
        for salvage in (False, True):
            try:
                extract_archive(path, d / "out" / str(salvage), salvage=salvage)
            except AdaptiveCodecError:
                pass
        assert time.monotonic() - start < CASE_SECONDS * 3, "a case took far too long"
        outside = {p.name for p in d.iterdir()}
        assert outside <= {"f.aca", "out"}, outside


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _run(cases):
    before = _peak_kib()

    @settings(max_examples=cases, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(archives())
    def run(data):
        check_archive(data)

    run()
    assert _peak_kib() - before < RSS_SLACK_KIB


def test_fuzz_aca_structure():
    _run(100)


@pytest.mark.slow
def test_fuzz_aca_structure_slow():
    _run(10_000)


def test_generated_archives_reach_valid_results():
    """The generator is not just noise: a clean draw gives an archive every reader accepts."""
    from hypothesis import find

    valid = find(archives(), lambda b: len(b) > 200 and _lists(b),
                 settings=settings(max_examples=2000, database=None, suppress_health_check=list(HealthCheck)))
    assert valid


def _lists(data: bytes) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.aca"
        path.write_bytes(data)
        try:
            return (len(list_archive(path)) >= 2 and verify_archive(path).ok
                    and any(read_member(path, e.name) in ACX_MEMBERS for e in list_archive(path)))
        except AdaptiveCodecError:
            return False
