"""Per-channel lookup of an ``.acx`` segment table: which segments cover a frame range.

Every chunk of a stream asks which segments overlap its frames (for depths,
priors, the depth map, ``info``'s bits per class). A linear scan, let alone
a sort, per chunk makes that O(segments x chunks): 20,000 one-frame segments
with one-frame chunks took minutes in ``info``. :class:`SegmentIndex` sorts
each channel's rows once and answers by bisection.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adaptive_codec.container.acx_header import SegmentEntry

__all__ = ["SegmentIndex"]


class SegmentIndex:
    """Each channel's segments sorted by start frame, with their start frames for bisection.

    Parameters
    ----------
    segments : sequence of SegmentEntry
        The header's table (rows with ``channel`` None apply to every channel).
    channels : int
        Channels to index.
    """

    def __init__(self, segments: Sequence["SegmentEntry"], channels: int) -> None:
        self._source = segments
        self._key = (len(segments), channels)
        self._tables: list[tuple[list[int], tuple["SegmentEntry", ...]]] = []
        for c in range(max(0, channels)):
            rows = tuple(sorted((s for s in segments if s.channel is None or s.channel == c),
                                key=lambda s: s.start_frame))
            self._tables.append(([s.start_frame for s in rows], rows))

    def describes(self, segments: Sequence["SegmentEntry"], channels: int) -> bool:
        """True if this index was built from this very list (same length, same channel count)."""
        return segments is self._source and (len(segments), channels) == self._key

    def rows(self, channel: int) -> tuple["SegmentEntry", ...]:
        """Segments of ``channel`` in start order (empty for a channel the stream lacks)."""
        return self._tables[channel][1] if 0 <= channel < len(self._tables) else ()

    def overlapping(self, channel: int, start_frame: int, end_frame: int) -> tuple["SegmentEntry", ...]:
        """Segments of ``channel`` overlapping frames ``[start_frame, end_frame)``, in start order.

        Segments of a valid table tile the channel, so the first candidate is
        the one that starts at or before ``start_frame``.
        """
        if not 0 <= channel < len(self._tables):
            return ()
        starts, rows = self._tables[channel]
        first = max(0, bisect.bisect_right(starts, start_frame) - 1)
        last = bisect.bisect_left(starts, end_frame)
        return tuple(s for s in rows[first:last] if s.end_frame > start_frame and s.start_frame < end_frame)
