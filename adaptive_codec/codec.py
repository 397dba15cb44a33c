"""AdaptiveCodec: classify → route → encode per segment → bitstream, and back.

Encoding: the mono downmix is classified into labelled segments, each
segment's label picks a profile (or one forced profile covers the file), the
profile gives the RVQ depth and the conditioning vector of its frames; every
channel (two as mid/side) is resampled to 24 kHz, encoded by the shared
backbone in chunks, entropy-coded chunk by chunk and written as an ``.acx``
stream. The signal path runs block by block (:mod:`adaptive_codec.pipeline.signal`):
:meth:`AdaptiveCodec.encode_file` and :meth:`AdaptiveCodec.decode_to` never
hold a whole recording in memory.

Decoding needs no classifier and no profile files: the profile table in the
stream names each built-in profile (whose embedding is in the weights) and
carries every custom profile's parameters and conditioning vector. It does
need the exact backbone weights and entropy tables the stream names; any
others are a clear error, never garbage audio.

The entropy tables (context model of the RVQ indices) live next to the
weights in ``entropy.safetensors``, built for exactly those weights by
``adaptive-codec train entropy``. Without a matching table the codec falls
back to the weights' own per-level priors, with a warning: files are then
about a quarter larger, and decode only with the same fallback.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adaptive_codec.audio.files import INTERNAL_SAMPLE_RATE_HZ, as_channels_first, validate_audio
from adaptive_codec.planning.depth_allocation import allocate_depths, depth_bounds
from adaptive_codec.errors import AdaptiveCodecError, FormatError, ModelError, ProfileError
from adaptive_codec.profiles.profile import Profile, ProfileRegistry
from adaptive_codec.planning.rate import check_bitrate

#: File name of the entropy tables, next to the backbone weights they belong to.
ENTROPY_TABLE_NAME = "entropy.safetensors"


class EntropyTableWarning(UserWarning):
    """The entropy tables next to the weights are missing or belong to other weights."""

_CONDITIONING_KEY = "embedding"
#: Side below this fraction of the mid's RMS (-30 dB) is not coded at all:
#: at that level it is recording noise or a trace of width nobody hears
#: next to the codec's own error, and coding it costs half a mono stream.
SIDE_SILENT_RATIO = 0.03
#: The side channel gets the mid's depth divided by this (at least 1 level).
SIDE_DEPTH_DIVISOR = 2


@dataclass(frozen=True)
class PlannedSegment:
    """A run of frames and how it is coded."""

    start_frame: int
    end_frame: int
    profile: Profile
    n_q: int
    label: str
    confidence: float


class AdaptiveCodec:
    """The content-adaptive codec: shipped backbone + classifier + profiles.

    Parameters
    ----------
    backbone : Backbone
        Trained backbone in eval mode.
    weights_meta : dict
        Metadata of the loaded weights (``weights_id``, ``sha256``).
    registry : ProfileRegistry
    classifier : ContentClassifier, optional
        Needed only for ``profile="auto"``; loaded lazily from the shipped
        artifact when not given.
    chunk_frames : int
        Frames per entropy-coded chunk (450 frames = 6 s: the unit of range
        decoding; longer chunks cost fewer header bytes).
    entropy_model : EntropyModel, optional
        Tables to code RVQ indices with; by default the shipped
        ``entropy.safetensors`` when it was built for these weights (see
        :func:`entropy_model_for`).
    """

    def __init__(self, backbone, weights_meta: dict[str, str], registry: ProfileRegistry,
                 classifier=None, chunk_frames: int = 450, entropy_model=None) -> None:
        self.backbone = backbone
        self.weights_meta = dict(weights_meta)
        self.registry = registry
        self._classifier = classifier
        self.chunk_frames = chunk_frames
        if entropy_model is None:
            from adaptive_codec.resources import weights_dir

            entropy_model = entropy_model_for(backbone, self.weights_meta, weights_dir() / ENTROPY_TABLE_NAME)
        self.entropy_model = entropy_model

    # -- construction -------------------------------------------------------
    @classmethod
    def default(cls, *, profiles_dirs: Sequence[str | Path] = (), weights: str | Path | None = None,
                classifier: str | Path | None = None) -> "AdaptiveCodec":
        """The shipped weights, classifier and built-in (+ user) profiles; no network."""
        from adaptive_codec.backbone.weights import load_weights
        from adaptive_codec.resources import weights_dir

        path = Path(weights) if weights else weights_dir() / "backbone.safetensors"
        if not path.is_file():
            raise ModelError(f"backbone weights not found: {path} (reinstall adaptive-codec)")
        try:
            model, meta = load_weights(path)
        except ValueError as exc:
            raise ModelError(str(exc)) from None
        clf = None
        if classifier is not None:
            from adaptive_codec.analysis.classifier import ContentClassifier

            clf = ContentClassifier.load(classifier)
        entropy = entropy_model_for(model, meta, path.with_name(ENTROPY_TABLE_NAME))
        return cls(model, meta, ProfileRegistry.default(profiles_dirs), classifier=clf, entropy_model=entropy)

    @property
    def classifier(self):
        if self._classifier is None:
            from adaptive_codec.analysis.classifier import ContentClassifier

            self._classifier = ContentClassifier.default()
        return self._classifier

    @property
    def frame_rate_hz(self) -> float:
        return self.backbone.config.frame_rate_hz

    # -- analysis -----------------------------------------------------------
    def classify(self, audio: Any, sample_rate_hz: int) -> list:
        """Labelled segments ``[Segment(start_s, end_s, label, confidence)]`` of ``audio``."""
        from adaptive_codec.analysis.routing import classify

        x = as_channels_first(audio)
        validate_audio(x, sample_rate_hz)
        return classify(x, sample_rate_hz, self.classifier)

    def resolve_profile(self, spec: str | Path | Profile) -> Profile:
        """A profile by name, TOML path or object (validated against the registry)."""
        return self.registry.resolve(spec)

    def depth_for(self, profile: Profile, bitrate_kbps: float | None = None,
                  bitrate_scale: float | None = None) -> int:
        """RVQ depth of a profile.

        Parameters
        ----------
        profile : Profile
        bitrate_kbps : float, optional
            Overrides the profile's bitrate (``--bitrate``): every profile gets
            the same depth.
        bitrate_scale : float, optional
            Multiplies the profile's own bitrate (``--bitrate-scale``): the
            profiles keep their relative allocation (each built-in's
            ``bitrate_kbps`` times the scale). Not together with ``bitrate_kbps``.

        Notes
        -----
        A bitrate maps to the deepest depth whose expected size after entropy
        coding fits (the tables' ``level_bits`` for the profile's prior,
        cross-fitted on their training codes); tables without them, or the
        fallback priors, count every index at its fixed length.
        """
        from adaptive_codec.backbone.model import n_q_for_bitrate

        cfg = self.backbone.config
        check_bitrate(bitrate_kbps, bitrate_scale)
        scale = 1.0 if bitrate_scale is None else float(bitrate_scale)
        if bitrate_kbps is None and profile.n_q is not None:
            return max(1, min(cfg.n_levels, int(round(profile.n_q * scale))))
        level_bits = None
        if self.entropy_model.level_bits is not None:
            level_bits = self.entropy_model.level_bits[self._prior_and_vector(profile)[0]]
        kbps = bitrate_kbps if bitrate_kbps is not None else profile.bitrate_kbps * scale
        return n_q_for_bitrate(kbps, cfg, level_bits)

    def plan(self, audio: np.ndarray | None, sample_rate_hz: int, n_frames: int,
             profile: str | Path | Profile = "auto", bitrate_kbps: float | None = None,
             segments: Sequence | None = None, *, bitrate_scale: float | None = None) -> list[PlannedSegment]:
        """Frame-aligned segments with their profiles and depths.

        With ``profile="auto"``, ``audio`` is classified unless ``segments``
        (the classifier's segments, e.g. from a streaming pass over a file)
        are given. ``bitrate_kbps`` / ``bitrate_scale``: see :meth:`depth_for`.
        """
        check_bitrate(bitrate_kbps, bitrate_scale)  # before paying for classification
        if isinstance(profile, str) and profile == "auto":
            from adaptive_codec.analysis.routing import route

            if segments is None:
                segments = self.classify(audio, sample_rate_hz)
            pairs = route(segments, self.registry)
            bounds = [int(round(s.start_s * self.frame_rate_hz)) for s, _ in pairs[1:]]
            starts = [0] + bounds
            ends = bounds + [n_frames]
            planned = []
            for (seg, prof), a, b in zip(pairs, starts, ends):
                a, b = min(a, n_frames), min(b, n_frames)
                if b > a:
                    planned.append(PlannedSegment(a, b, prof, self.depth_for(prof, bitrate_kbps, bitrate_scale),
                                                  seg.label, float(seg.confidence)))
            if planned:
                # Rounding can leave a gap at the end: the last segment covers it.
                last = planned[-1]
                planned[-1] = PlannedSegment(last.start_frame, n_frames, last.profile, last.n_q,
                                             last.label, last.confidence)
                return _merge(planned)
            profile = "ambient"
        prof = self.resolve_profile(profile)
        return [PlannedSegment(0, n_frames, prof, self.depth_for(prof, bitrate_kbps, bitrate_scale),
                               prof.labels[0] if prof.labels else prof.name, 1.0)]

    # -- profiles → conditioning ------------------------------------------------
    def _prior_and_vector(self, profile: Profile, seen: tuple[str, ...] = ()) -> tuple[int, np.ndarray]:
        builtins = self.backbone.config.profiles
        if profile.name in builtins and profile.conditioning is None:
            i = builtins.index(profile.name)
            return i, self.backbone.profile_embedding.weight[i].detach().numpy().astype(np.float32)
        base_prior, base_vec = None, None
        if profile.base is not None:
            if profile.base in seen:
                raise ProfileError(f"profile {profile.name!r}: circular base chain {seen}")
            base_prior, base_vec = self._prior_and_vector(
                self.registry.get(profile.base), seen + (profile.name,))
        if profile.conditioning is not None:
            vec, prior = load_conditioning(profile, self.backbone.config.cond_dim)
            return (base_prior if base_prior is not None else prior), vec
        if base_vec is not None:
            return base_prior, base_vec
        raise ProfileError(
            f"profile {profile.name!r} has neither a 'base' profile nor a 'conditioning' file, "
            "so the backbone has no embedding for it; set base = \"speech\"|\"music\"|\"ambient\"")

    # -- encode ---------------------------------------------------------------
    def encode(self, audio: Any, sample_rate_hz: int, profile: str | Path | Profile = "auto",
               bitrate_kbps: float | None = None,
               progress: Callable[[float], None] | None = None, *, bitrate_scale: float | None = None) -> bytes:
        """Encode audio ``(samples,)`` or ``(channels, samples)`` to ``.acx`` bytes.

        ``bitrate_kbps`` gives every segment that bitrate; ``bitrate_scale``
        scales each segment's profile bitrate instead (see :meth:`depth_for`).
        """
        buf = io.BytesIO()
        self.encode_to(buf, audio, sample_rate_hz, profile, bitrate_kbps, progress, bitrate_scale=bitrate_scale)
        return buf.getvalue()

    def encode_to(self, target, audio: Any, sample_rate_hz: int,
                  profile: str | Path | Profile = "auto", bitrate_kbps: float | None = None,
                  progress: Callable[[float], None] | None = None, *,
                  bitrate_scale: float | None = None) -> list[PlannedSegment]:
        """Encode to a path (written atomically) or binary file object; returns the plan.

        The array is coded block by block (:mod:`adaptive_codec.pipeline.signal`),
        exactly as :meth:`encode_file` codes a file with the same samples.
        """
        from adaptive_codec.pipeline.signal import BLOCK_SECONDS, array_blocks, scan_blocks

        x = as_channels_first(audio)
        validate_audio(x, sample_rate_hz)
        block = max(1, int(BLOCK_SECONDS * sample_rate_hz))
        scan = scan_blocks(array_blocks(x, block), sample_rate_hz)
        plan = self.plan(x, sample_rate_hz, self._n_frames(scan.n_samples, sample_rate_hz), profile,
                         bitrate_kbps, bitrate_scale=bitrate_scale)
        self._write_stream(target, lambda: array_blocks(x, block), sample_rate_hz, scan, plan, progress)
        return plan

    def encode_file(self, target, path: str | Path, profile: str | Path | Profile = "auto",
                    bitrate_kbps: float | None = None, progress: Callable[[float], None] | None = None,
                    on_block: Callable[[np.ndarray], None] | None = None, *, bitrate_scale: float | None = None):
        """Encode an audio file read block by block (bounded memory, any length).

        The file is read twice: once to measure it and, with
        ``profile="auto"``, classify it; once to code it. The stream equals
        :meth:`encode_to` of the same samples.

        Parameters
        ----------
        target : path or binary file object
            Written atomically when a path.
        path : str or Path
            Audio file (anything :func:`~adaptive_codec.audio.files.load_audio` reads).
        profile, bitrate_kbps, progress, bitrate_scale
            As in :meth:`encode` (checked before the file is read).
        on_block : callable, optional
            Called with every block ``(channels, samples)`` of the first
            read (e.g. to measure a lossless reference in the same pass).

        Returns
        -------
        plan : list of PlannedSegment
        info : AudioInfo
            The input's rate, channels and the samples actually read.

        Raises
        ------
        AudioError
            Missing, unreadable, corrupt or truncated file.
        """
        import dataclasses

        from adaptive_codec.audio.files import audio_info, iter_audio_blocks
        from adaptive_codec.pipeline.signal import BLOCK_SECONDS, scan_blocks

        info = audio_info(path)
        sr = info.sample_rate_hz
        block = max(1, int(BLOCK_SECONDS * sr))
        check_bitrate(bitrate_kbps, bitrate_scale)  # before reading the file

        def first_read():
            for b in iter_audio_blocks(path, block):
                if on_block is not None:
                    on_block(b)
                yield b

        auto = isinstance(profile, str) and profile == "auto"
        scan = scan_blocks(first_read(), sr, self.classifier if auto else None)
        plan = self.plan(None, sr, self._n_frames(scan.n_samples, sr), profile, bitrate_kbps,
                         segments=scan.segments, bitrate_scale=bitrate_scale)
        self._write_stream(target, lambda: iter_audio_blocks(path, block), sr, scan, plan, progress)
        return plan, dataclasses.replace(info, n_samples=scan.n_samples, duration_s=scan.n_samples / sr)

    def _n_frames(self, n_samples: int, sample_rate_hz: int) -> int:
        from adaptive_codec.pipeline.signal import resampled_length

        cfg = self.backbone.config
        return self.backbone.mdct.n_frames(resampled_length(n_samples, sample_rate_hz, cfg.sample_rate_hz))

    def _write_stream(self, target, blocks: Callable[[], Any], sample_rate_hz: int, scan,
                      plan: list[PlannedSegment], progress: Callable[[float], None] | None) -> None:
        """Header from the scan and plan, then the second read coded and entropy-coded."""
        from adaptive_codec.container.acx import AcxChunk, AcxHeader, AcxWriter, chunk_order
        from adaptive_codec.backbone.streaming import CHUNK_FRAMES
        from adaptive_codec.pipeline.signal import encode_blocks
        from adaptive_codec.entropy.coder import encode_frames

        cfg = self.backbone.config
        n_frames = self._n_frames(scan.n_samples, sample_rate_hz)
        # Two channels are coded as mid/side: the side usually needs far fewer
        # levels, and a near-mono file (side below -30 dB) spends none on it.
        mid_side = scan.channels == 2
        side_scale = None
        if mid_side:
            side_scale = 0 if scan.side_rms <= SIDE_SILENT_RATIO * scan.mid_rms else 1
        entries: list = []
        index: dict[str, int] = {}
        for seg in plan:
            if seg.profile.name not in index:
                index[seg.profile.name] = len(entries)
                entries.append(self._profile_entry(seg.profile))
        header = AcxHeader(
            original_sample_rate_hz=int(sample_rate_hz), channels=int(scan.channels),
            length_samples=int(scan.n_samples), internal_sample_rate_hz=cfg.sample_rate_hz,
            hop_samples=cfg.hop, n_frames=n_frames, codebook_size=cfg.codebook_size,
            max_levels=cfg.n_levels, weights_version=self.weights_meta["weights_id"].rsplit("+", 1)[0],
            weights_sha256_prefix=self.weights_meta["sha256"][:16],
            entropy_digest_prefix=self.entropy_model.digest()[:16],
            profiles=entries,
            segments=_segment_table(plan, index, side_scale),
            stereo_mode="mid_side" if mid_side else ("mono" if scan.channels == 1 else "independent"),
            chunk_frames=self.chunk_frames,
        )
        cond = self._frame_conditioning(header, 0)
        # Codes of every channel first (small: levels x frames int16), then the
        # chunks in file order (each time span: channel 0, 1, ...).
        levels = [max((depth_bounds(s.n_q, cfg.n_levels)[1] if s.adaptive else s.n_q
                       for s in header.segments_for_channel(ch)), default=0) for ch in range(scan.channels)]
        slopes = {index[seg.profile.name]: seg.profile.depth_slope for seg in plan}
        depths = [header.frame_layout(ch, 0, n_frames)[0] for ch in range(scan.channels)]
        # Adaptive depths are allocated piece by piece inside the encoder, so
        # each frame is searched only at the levels it codes; that needs the
        # encoder's pieces to hold whole bitstream chunks, else allocate after.
        inline = CHUNK_FRAMES % header.chunk_frames == 0
        adaptive = [any(s.adaptive for s in header.segments_for_channel(ch)) for ch in range(scan.channels)]
        depth_fns = [self._depth_fn(header, ch, depths[ch], slopes) if inline and adaptive[ch] else None
                     for ch in range(scan.channels)]
        energies: list = []
        codes = encode_blocks(self.backbone, blocks(), sample_rate_hz, scan.n_samples, mid_side, cond,
                              levels, progress, energies=energies, depth_fns=depth_fns)
        for ch in range(scan.channels):
            if adaptive[ch] and not inline:
                self._allocate(header, ch, depths[ch], energies[ch], 0, n_frames, slopes)
        with AcxWriter(target, header) as writer:
            for ch, a, n in chunk_order(header):
                _, priors, _ = header.frame_layout(ch, a, a + n)
                data = encode_frames(self.entropy_model, codes[ch][:, a : a + n], depths[ch][a : a + n], priors,
                                     adaptive=header.adaptive_frames(ch, a, a + n))
                writer.write_chunk(AcxChunk(ch, a, n, data))

    def _depth_fn(self, header, channel: int, depths: np.ndarray, slopes: dict[int, float]):
        """The encoder's ``depth_fn``: allocates frames ``[a, b)`` into ``depths`` and returns them."""
        def depth_fn(a: int, b: int, log_energy: np.ndarray) -> np.ndarray:
            self._allocate(header, channel, depths, log_energy, a, b, slopes)
            return depths[a:b]

        return depth_fn

    def _allocate(self, header, channel: int, depths: np.ndarray, log_energy: np.ndarray, lo: int, hi: int,
                  slopes: dict[int, float]) -> None:
        """Energy-adaptive depths of the adaptive frames in ``[lo, hi)`` (chunk-aligned), in place.

        ``log_energy`` holds the frames ``[lo, hi)``. Each segment is
        allocated per chunk span, so every span of a long segment
        keeps the segment's rate (a loud minute cannot starve a quiet one)
        and a chunk's allocation needs nothing outside the chunk.
        """
        cfg = self.backbone.config
        cf = header.chunk_frames
        level_bits = self.entropy_model.level_bits
        for seg in header.segments_for_channel(channel):
            a = max(seg.start_frame, lo)
            end = min(seg.end_frame, hi)
            # Budget in the bits the tables expect per level (the same costs
            # that chose seg.n_q), not in levels: deep levels cost more.
            bits = (cfg.bits_per_index if level_bits is None
                    else level_bits[header.profiles[seg.profile_index].prior_id])
            while seg.adaptive and a < end:
                b = min(end, (a // cf + 1) * cf)
                prev = int(depths[a - 1]) if a % cf else 0
                depths[a:b] = allocate_depths(log_energy[a - lo : b - lo], seg.n_q, slopes[seg.profile_index],
                                              cfg.n_levels, bits, previous=prev)
                a = b

    def _profile_entry(self, profile: Profile):
        """Profile-table row: a reference for a built-in, everything for a custom profile."""
        from adaptive_codec.container.acx import ProfileEntry

        builtins = self.backbone.config.profiles
        if profile.name in builtins and profile.conditioning is None:
            return ProfileEntry.builtin(profile.name, builtins.index(profile.name))
        prior, vec = self._prior_and_vector(profile)
        return ProfileEntry(profile.name, prior, _stream_parameters(profile), vec)

    # -- decode ---------------------------------------------------------------
    def decode(self, source, start_s: float | None = None, end_s: float | None = None
               ) -> tuple[np.ndarray, int]:
        """Decode ``.acx`` bytes, a path or a file object.

        Returns
        -------
        audio : np.ndarray [shape=(samples,) for mono, (channels, samples) otherwise]
            At the original sample rate and exact length (or the requested range).
        sample_rate_hz : int
        """
        from adaptive_codec.container.acx import AcxReader

        # One reader for header and chunks: a file object is read from the
        # position it was given at, once.
        with AcxReader(bytes(source) if isinstance(source, (bytearray, memoryview)) else source) as reader:
            n, blocks = self._decode_range(reader, start_s, end_s)
            header = reader.header
        out = np.zeros((header.channels, n), np.float32)
        pos = 0
        for block in blocks:
            out[:, pos : pos + block.shape[-1]] = block
            pos += block.shape[-1]
        return (out[0] if header.channels == 1 else out), header.original_sample_rate_hz

    def decode_to(self, source, path: str | Path, start_s: float | None = None,
                  end_s: float | None = None, subtype: str | None = None) -> tuple[int, int]:
        """Decode into an audio file, piece by piece (bounded memory, written atomically).

        Parameters
        ----------
        source : bytes, path or binary file object
            The ``.acx`` stream.
        path : str or Path
            Output audio file; the container comes from its suffix
            (:class:`~adaptive_codec.audio.files.AudioWriter`).
        start_s, end_s : float, optional
            Time range, as in :meth:`decode`.
        subtype : str, optional
            libsndfile subtype (default: the container's).

        Returns
        -------
        n_samples : int
            Samples per channel written.
        sample_rate_hz : int
        """
        from adaptive_codec.audio.files import AudioWriter
        from adaptive_codec.container.acx import AcxReader

        with AcxReader(bytes(source) if isinstance(source, (bytearray, memoryview)) else source) as reader:
            n, blocks = self._decode_range(reader, start_s, end_s)
            header = reader.header
        with AudioWriter(path, header.original_sample_rate_hz, header.channels, subtype=subtype) as writer:
            for block in blocks:
                writer.write(block)
        return n, header.original_sample_rate_hz

    def _decode_range(self, reader, start_s: float | None, end_s: float | None):
        """Entropy-decode what a time range needs; returns (samples, lazy audio blocks).

        The blocks ``(channels, samples)`` cover exactly the range at the
        original rate; they are synthesised as they are consumed.
        """
        from adaptive_codec.backbone.streaming import context_frames
        from adaptive_codec.pipeline.signal import decode_blocks, resampled_length
        from adaptive_codec.entropy.coder import decode_frames

        header = reader.header
        self._check_compatible(header)
        if header.stereo_mode not in ("mono", "independent", "mid_side"):
            raise FormatError(f"unsupported stereo mode {header.stereo_mode!r}")
        cfg = self.backbone.config
        sr = header.original_sample_rate_hz
        duration = header.length_samples / sr
        start_s = 0.0 if start_s is None else float(start_s)
        end_s = duration if end_s is None else min(float(end_s), duration)
        if not (0 <= start_s < end_s):
            raise AdaptiveCodecError(
                f"empty or invalid time range {start_s:g}..{end_s:g} s (file is {duration:.3f} s)")
        hop = cfg.hop
        n_internal = resampled_length(header.length_samples, sr, cfg.sample_rate_hz)
        # Internal sample blocks to synthesise, with margin for the resampler,
        # starting on a block whose time is a whole original-rate sample.
        margin_s = 0.05 if (start_s > 0 or end_s < duration) else 0.0
        step = cfg.sample_rate_hz // math.gcd(hop * sr, cfg.sample_rate_hz)
        a = max(0, int(math.floor((start_s - margin_s) * cfg.sample_rate_hz / hop)))
        a -= a % step
        b = min(-(-n_internal // hop), int(math.ceil((end_s + margin_s) * cfg.sample_rate_hz / hop)))
        ctx = context_frames(self.backbone)
        fa, fb = max(0, a - ctx), min(header.n_frames, b + 1 + ctx)
        codes = np.zeros((header.channels, header.max_levels, header.n_frames), np.int16)
        depth_all = np.zeros((header.channels, header.n_frames), np.int64)
        for chunk in reader.iter_chunks(fa, fb):
            ch, lo, hi = chunk.channel, chunk.start_frame, chunk.end_frame
            depths, priors, _ = header.frame_layout(ch, lo, hi)
            codes[ch][:, lo:hi], depth_all[ch, lo:hi] = decode_frames(
                self.entropy_model, chunk.data, depths, priors, header.max_levels,
                adaptive=header.adaptive_frames(ch, lo, hi), return_depths=True)
        conds = [self._frame_conditioning(header, ch)
                 if any(seg.n_q for seg in header.segments_for_channel(ch)) else None
                 for ch in range(header.channels)]
        blocks = decode_blocks(self.backbone, list(codes), list(depth_all), conds, n_internal, sr,
                               header.stereo_mode == "mid_side", (a, b))
        # Map the synthesised internal range back onto original-rate samples.
        first = a * hop * sr // cfg.sample_rate_hz
        s0 = int(round(start_s * sr))
        s1 = header.length_samples if end_s >= duration else int(round(end_s * sr))
        return s1 - s0, _cut(blocks, first, s0, s1, header.channels)

    def _check_compatible(self, header) -> None:
        if header.weights_sha256_prefix != self.weights_meta["sha256"][:16]:
            raise FormatError(
                f"stream was encoded with backbone weights {header.weights_id}; this installation "
                f"has {self.weights_meta['weights_id']} - install the adaptive-codec version "
                "that wrote it to decode it")
        if header.entropy_digest_prefix != self.entropy_model.digest()[:16]:
            raise FormatError(
                f"stream was coded with entropy tables {header.entropy_digest_prefix}; this "
                f"installation uses {self.entropy_model.digest()[:16]} with the same weights "
                f"(a rebuilt or missing {ENTROPY_TABLE_NAME}?)")
        cfg = self.backbone.config
        if (header.hop_samples, header.internal_sample_rate_hz, header.codebook_size) != (
                cfg.hop, cfg.sample_rate_hz, cfg.codebook_size):
            raise FormatError("stream's frame layout does not match the installed backbone")

    def _frame_conditioning(self, header, channel: int) -> torch.Tensor:
        cond = torch.zeros(header.n_frames, self.backbone.config.cond_dim)
        for seg in header.segments_for_channel(channel):
            entry = header.profiles[seg.profile_index]
            if entry.is_builtin:
                if entry.embedding_index >= self.backbone.profile_embedding.weight.shape[0]:
                    raise FormatError(f"profile {entry.name!r}: embedding row {entry.embedding_index} "
                                      "is not in the backbone")
                vec = self.backbone.profile_embedding.weight[entry.embedding_index].detach().numpy()
            else:
                vec = np.asarray(entry.conditioning, np.float32)
            if vec.size != cond.shape[1]:
                raise FormatError(f"profile {header.profiles[seg.profile_index].name!r}: "
                                  f"conditioning has {vec.size} values, backbone needs {cond.shape[1]}")
            cond[seg.start_frame : seg.end_frame] = torch.from_numpy(vec)
        return cond


#: Share of the uniform distribution mixed into the learned priors: caps the
#: cost of a code the training data rarely used at log2(K / share) bits, so
#: unusual audio never costs much more than fixed-length indices. 0.1 was the
#: best of 0 / 0.02 / 0.05 / 0.1 on the bundled examples with weights 0.dev1600
#: (the young priors are stale; revisit as training converges).
PRIOR_UNIFORM_SHARE = 0.1


def coding_prior_logits(prior_logits: torch.Tensor) -> torch.Tensor:
    """Logits of the fallback coder: learned priors mixed with a little uniform."""
    probs = torch.softmax(prior_logits.detach().double(), dim=-1)
    k = probs.shape[-1]
    return torch.log((1 - PRIOR_UNIFORM_SHARE) * probs + PRIOR_UNIFORM_SHARE / k)


def entropy_model_for(backbone, weights_meta: dict[str, str], table: Path):
    """The entropy tables at ``table`` if built for these weights, else the weights' own priors.

    The fallback (per-level priors without contexts, from the weights'
    ``prior_logits``) codes about a quarter more bytes; a warning
    (:class:`EntropyTableWarning`) says so and how to rebuild the tables.

    Raises
    ------
    ModelError
        If a table built for these weights does not fit the backbone's shape.
    """
    from adaptive_codec.entropy.coder import EntropyModel

    cfg = backbone.config
    reason = None
    if not Path(table).is_file():
        reason = f"no entropy tables at {table}"
    else:
        try:
            model, meta = EntropyModel.load(table)
        except FormatError as exc:
            reason = str(exc)
        else:
            if meta.get("weights_sha256") != weights_meta["sha256"]:
                reason = (f"{table} was built for weights {meta.get('weights_id')}, "
                          f"not {weights_meta['weights_id']}")
            elif (model.n_priors, model.n_levels, model.codebook_size) != (
                    len(cfg.profiles), cfg.n_levels, cfg.codebook_size):
                raise ModelError(f"{table}: tables of shape {model.frequencies.shape} do not fit the "
                                 f"backbone ({len(cfg.profiles)} profiles, {cfg.n_levels} levels, "
                                 f"{cfg.codebook_size} codes)")
            else:
                return model
    warnings.warn(f"{reason}: coding with the weights' static priors (larger files); build matching "
                  "tables with `adaptive-codec train entropy`", EntropyTableWarning, stacklevel=3)
    return EntropyModel.from_logits(coding_prior_logits(backbone.prior_logits))


def _segment_table(plan: list[PlannedSegment], index: dict[str, int], side_scale: int | None) -> list:
    """Segment rows: shared by all channels, or mid (channel 0) + side (channel 1) rows."""
    from adaptive_codec.container.acx import SegmentEntry

    def adaptive(s: PlannedSegment, n_q: int) -> bool:
        return n_q > 0 and s.profile.depth_slope > 0

    if side_scale is None:
        return [SegmentEntry(s.start_frame, s.end_frame, index[s.profile.name], s.n_q,
                             s.label, s.confidence, adaptive=adaptive(s, s.n_q)) for s in plan]
    rows = []
    for ch in (0, 1):
        for s in plan:
            n_q = s.n_q if ch == 0 else side_scale * max(1, s.n_q // SIDE_DEPTH_DIVISOR)
            # The side channel keeps a fixed depth: it is a few levels of a
            # residual whose loudness follows the mid's anyway.
            rows.append(SegmentEntry(s.start_frame, s.end_frame, index[s.profile.name], n_q,
                                     s.label, s.confidence, channel=ch, adaptive=ch == 0 and adaptive(s, n_q)))
    return rows


def load_conditioning(profile: Profile, cond_dim: int) -> tuple[np.ndarray, int]:
    """Fine-tuned embedding and prior id from a profile's ``conditioning`` file."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = profile.conditioning
    if path is not None and not path.is_absolute() and profile.source is not None:
        path = Path(profile.source).parent / path
    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ProfileError(f"profile {profile.name!r}: cannot read conditioning {path}: {exc}") from None
    vec = arrays.get(_CONDITIONING_KEY)
    if vec is None or vec.shape != (cond_dim,) or not np.isfinite(vec).all():
        raise ProfileError(f"profile {profile.name!r}: {path} must hold a finite "
                           f"'{_CONDITIONING_KEY}' vector of {cond_dim} values")
    prior = int(arrays.get("prior_id", np.zeros(1))[0])
    return vec.astype(np.float32), prior


def _merge(plan: list[PlannedSegment]) -> list[PlannedSegment]:
    """Join neighbours with the same profile, depth and label (smaller tables)."""
    out = [plan[0]]
    for seg in plan[1:]:
        prev = out[-1]
        if (seg.profile.name, seg.n_q, seg.label) == (prev.profile.name, prev.n_q, prev.label):
            n_prev = prev.end_frame - prev.start_frame
            n_seg = seg.end_frame - seg.start_frame
            conf = (prev.confidence * n_prev + seg.confidence * n_seg) / (n_prev + n_seg)
            out[-1] = PlannedSegment(prev.start_frame, seg.end_frame, prev.profile, prev.n_q,
                                     prev.label, conf)
        else:
            out.append(seg)
    return out


def _stream_parameters(profile: Profile) -> dict:
    """What a stream records of a profile: enough to describe it, nothing training-only.

    Decoding needs only the conditioning vector and prior id (stored beside
    these); loss weights and descriptions would cost bytes in every file.
    """
    keys = ("bitrate_kbps", "n_q", "labels", "base")
    d = profile.to_dict()
    return {k: (list(d[k]) if k == "labels" else d[k]) for k in keys if d.get(k) not in (None, [], ())}


def _cut(blocks, first: int, s0: int, s1: int, channels: int):
    """The part of consecutive ``blocks`` (the first at sample ``first``) in ``[s0, s1)``."""
    pos, emitted = first, 0
    for block in blocks:
        lo, hi = max(pos, s0), min(pos + block.shape[-1], s1)
        if hi > lo:
            yield block[:, lo - pos : hi - pos]
            emitted += hi - lo
        pos += block.shape[-1]
    if emitted < s1 - s0:  # never expected: the range is synthesised with margin
        yield np.zeros((channels, s1 - s0 - emitted), np.float32)


__all__ = ["AdaptiveCodec", "PlannedSegment", "INTERNAL_SAMPLE_RATE_HZ", "ENTROPY_TABLE_NAME", "EntropyTableWarning",
           "entropy_model_for", "load_conditioning"]
