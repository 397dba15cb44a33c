"""AdaptiveCodec: the public facade over the encoder and decoder pipelines.

Encoding (:mod:`adaptive_codec.pipeline.encoder`): the input is read block by
block and measured (for ``profile="auto"`` the classifier's segments come
from the same pass), the segments are routed to profiles and planned
(:mod:`adaptive_codec.planning.plan`), and a second read is coded by the
shared backbone, its depths allocated per frame, entropy-coded and written as
an ``.acx`` stream. Decoding (:mod:`adaptive_codec.pipeline.decoder`) runs
the way back. :meth:`AdaptiveCodec.encode_file` and
:meth:`AdaptiveCodec.decode_to` never hold a whole recording in memory.

This class loads the parts (weights, entropy tables, profiles, classifier)
and wires the stages; it holds no coding logic of its own.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_codec.audio import AudioInfo, AudioWriter, as_channels_first, audio_info, iter_audio_blocks, validate_audio
from adaptive_codec.backbone.streaming import inference_backbone
from adaptive_codec.container.acx import AcxReader
from adaptive_codec.entropy.selection import ENTROPY_TABLE_NAME, entropy_model_for
from adaptive_codec.errors import AdaptiveCodecError, ModelError
from adaptive_codec.pipeline.decoder import decode_range
from adaptive_codec.pipeline.encoder import SIDE_SILENT_RATIO, encode_stream, plan_total_kbps
from adaptive_codec.pipeline.rate_stream import rate_controlled
from adaptive_codec.pipeline.parts import CodecParts
from adaptive_codec.pipeline.signal import BLOCK_SECONDS, SignalScan, array_blocks, scan_blocks
from adaptive_codec.planning.plan import PlannedSegment, is_auto, plan_segments
from adaptive_codec.planning.rate import Rate
from adaptive_codec.profiles import Profile
from adaptive_codec.profiles.registry import ProfileRegistry
from adaptive_codec.resources import weights_dir
from adaptive_codec.tools.highband import analyzer_for, code_highband
from adaptive_codec.tools.parametric_stereo import analyzer_for as stereo_analyzer_for
from adaptive_codec.tools.parametric_stereo import code_parametric, param_frames_for
from adaptive_codec.tools.stereo import stereo_tool

__all__ = ["AdaptiveCodec", "EXECUTOR_ENV_VAR"]

#: Environment variable naming the backbone executor of :meth:`AdaptiveCodec.default`.
EXECUTOR_ENV_VAR = "ADAPTIVE_CODEC_EXECUTOR"

ProfileSpec = str | Path | Profile


class AdaptiveCodec:
    """The content-adaptive codec: shipped backbone + classifier + profiles.

    Parameters
    ----------
    backbone : RuntimeBackbone or Backbone
        The backbone's inference side (:func:`adaptive_codec.runtime.load_backbone`),
        or a torch :class:`~adaptive_codec.backbone.model.Backbone` in eval
        mode (coded through the same interface; needs the ``train`` extra).
    weights_meta : dict
        Metadata of the loaded weights (``weights_id``, ``sha256``).
    registry : ProfileRegistry
    classifier : ClassifierModel or ContentClassifier, optional
        Needed only for ``profile="auto"``; the shipped artifact (scored in
        NumPy, :class:`~adaptive_codec.analysis.classifier_model.ClassifierModel`)
        is loaded on first use when not given.
    chunk_frames : int
        Frames per entropy-coded chunk (450 frames = 6 s: the unit of range
        decoding; longer chunks cost fewer header bytes).
    entropy_model : EntropyModel, optional
        Tables to code RVQ indices with; by default the shipped
        ``entropy.safetensors`` when it was built for these weights (see
        :func:`~adaptive_codec.entropy.selection.entropy_model_for`).
    """

    def __init__(self, backbone, weights_meta: dict[str, str], registry: ProfileRegistry,
                 classifier=None, chunk_frames: int = 450, entropy_model=None) -> None:
        self.backbone = inference_backbone(backbone)
        self.weights_meta = dict(weights_meta)
        self.registry = registry
        self._classifier = classifier
        self.chunk_frames = chunk_frames
        if entropy_model is None:
            entropy_model = entropy_model_for(backbone, self.weights_meta, weights_dir() / ENTROPY_TABLE_NAME)
        self.entropy_model = entropy_model

    # -- construction -------------------------------------------------------
    @classmethod
    def default(cls, *, profiles_dirs: Sequence[str | Path] = (), weights: str | Path | None = None,
                classifier: str | Path | None = None, executor: str | None = None) -> "AdaptiveCodec":
        """The shipped weights, classifier and built-in (+ user) profiles; no network, no torch.

        ``executor`` runs the backbone's stacks: ``"auto"`` (ONNX Runtime on
        the stacks exported next to the weights, NumPy where there are none),
        ``"onnxruntime"``, ``"numpy"``, or ``"torch"`` (the torch model, for
        reference; needs the ``train`` extra). Default: ``$ADAPTIVE_CODEC_EXECUTOR``
        if set (so every process of a command, pool workers included, runs
        the same one), else ``"auto"``.
        """
        executor = executor or os.environ.get(EXECUTOR_ENV_VAR) or "auto"
        path = Path(weights) if weights else weights_dir() / "backbone.safetensors"
        if not path.is_file():
            raise ModelError(f"backbone weights not found: {path} (reinstall adaptive-codec)")
        if executor == "torch":
            import importlib.util

            if importlib.util.find_spec("torch") is None:
                raise ModelError("the torch executor needs PyTorch: pip install 'adaptive-codec[train]'")
            from adaptive_codec.backbone.inference import torch_backbone

            model = torch_backbone(path)
        else:
            from adaptive_codec.runtime import load_backbone

            model = load_backbone(path, executor)
        meta = model.meta
        clf = None
        if classifier is not None:
            from adaptive_codec.analysis.classifier_model import ClassifierModel

            clf = ClassifierModel.load(classifier)
        entropy = entropy_model_for(model, meta, path.with_name(ENTROPY_TABLE_NAME))
        return cls(model, meta, ProfileRegistry.default(profiles_dirs), classifier=clf, entropy_model=entropy)

    @property
    def classifier(self):
        """The content classifier (the shipped one unless given; loaded on first use)."""
        if self._classifier is None:
            from adaptive_codec.analysis.classifier_model import ClassifierModel

            self._classifier = ClassifierModel.default()
        return self._classifier

    @property
    def parts(self) -> CodecParts:
        """The loaded parts every pipeline stage reads."""
        return CodecParts(self.backbone, self.weights_meta, self.entropy_model, self.registry, self.chunk_frames)

    @property
    def frame_rate_hz(self) -> float:
        return self.backbone.config.frame_rate_hz

    def n_frames(self, n_samples: int, sample_rate_hz: int) -> int:
        """Frames of a stream of ``n_samples`` samples at ``sample_rate_hz``."""
        return self.parts.n_frames(n_samples, sample_rate_hz)

    # -- analysis and planning ------------------------------------------------
    def classify(self, audio: Any, sample_rate_hz: int) -> list:
        """Labelled segments ``[Segment(start_s, end_s, label, confidence)]`` of ``audio``."""
        x = as_channels_first(audio)
        validate_audio(x, sample_rate_hz)
        from adaptive_codec.analysis import classify as classify_array  # scipy.fft: only when classifying

        return classify_array(x, sample_rate_hz, self.classifier)

    def resolve_profile(self, spec: ProfileSpec) -> Profile:
        """A profile by name, TOML path or object (validated against the registry)."""
        return self.registry.resolve(spec)

    def prior_and_vector(self, profile: Profile) -> tuple[int, np.ndarray]:
        """Entropy prior id and conditioning vector ``(cond_dim,)`` float32 of ``profile``."""
        return self.parts.prior_and_vector(profile)

    def depth_for(self, profile: Profile, bitrate_kbps: float | None = None,
                  bitrate_scale: float | None = None, *, rate: Rate | None = None) -> int:
        """RVQ depth of a profile under a bitrate request.

        Parameters
        ----------
        profile : Profile
        bitrate_kbps : float, optional
            Overrides the profile's bitrate (``--bitrate``): every profile gets
            the same depth.
        bitrate_scale : float, optional
            Multiplies the profile's own bitrate (``--bitrate-scale``): the
            profiles keep their relative allocation. Not together with ``bitrate_kbps``.
        rate : Rate, optional
            The request as one object, instead of the two above.

        Notes
        -----
        A bitrate maps to the deepest depth whose expected size after entropy
        coding fits (the tables' ``level_bits`` for the profile's prior,
        cross-fitted on their training codes); tables without them, or the
        fallback priors, count every index at its fixed length
        (:class:`~adaptive_codec.planning.rate.DepthRule`).
        """
        rate = _rate(bitrate_kbps, bitrate_scale, rate)
        rule = self.parts.depth_rule()
        return rule.depth(profile, rate, self.prior_and_vector(profile)[0] if rule.needs_prior else None)

    def plan(self, audio: np.ndarray | None, sample_rate_hz: int, n_frames: int,
             profile: ProfileSpec = "auto", bitrate_kbps: float | None = None,
             segments: Sequence | None = None, *, bitrate_scale: float | None = None,
             rate: Rate | None = None, reserved_kbps: dict[str, float] | None = None) -> list[PlannedSegment]:
        """Frame-aligned segments with their profiles and depths (:func:`~adaptive_codec.planning.plan.plan_segments`).

        With ``profile="auto"``, ``audio`` is classified unless ``segments``
        (the classifier's segments, e.g. from a streaming pass over a file)
        are given. Bitrate arguments: see :meth:`depth_for`. ``reserved_kbps``
        (per profile name) is taken off each profile's bitrate before its
        depth is chosen: what its frames' high band already spends.
        """
        rate = _rate(bitrate_kbps, bitrate_scale, rate)  # before paying for classification
        if is_auto(profile) and segments is None:
            segments = self.classify(audio, sample_rate_hz)
        parts = self.parts
        rule = parts.depth_rule()
        if reserved_kbps:
            rule = dataclasses.replace(rule, reserved_kbps=dict(reserved_kbps))
        return plan_segments(segments, self.registry, profile, n_frames, self.frame_rate_hz, rule,
                             rate, lambda p: parts.prior_and_vector(p)[0])

    # -- encode ---------------------------------------------------------------
    def encode(self, audio: Any, sample_rate_hz: int, profile: ProfileSpec = "auto",
               bitrate_kbps: float | None = None, progress: Callable[[float], None] | None = None, *,
               bitrate_scale: float | None = None, rate: Rate | None = None) -> bytes:
        """Encode audio ``(samples,)`` or ``(channels, samples)`` to ``.acx`` bytes.

        ``bitrate_kbps`` gives every segment that bitrate; ``bitrate_scale``
        scales each segment's profile bitrate instead (see :meth:`depth_for`).
        """
        buf = io.BytesIO()
        self.encode_to(buf, audio, sample_rate_hz, profile, bitrate_kbps, progress,
                       bitrate_scale=bitrate_scale, rate=rate)
        return buf.getvalue()

    def encode_to(self, target, audio: Any, sample_rate_hz: int, profile: ProfileSpec = "auto",
                  bitrate_kbps: float | None = None, progress: Callable[[float], None] | None = None, *,
                  bitrate_scale: float | None = None, rate: Rate | None = None) -> list[PlannedSegment]:
        """Encode to a path (written atomically) or binary file object; returns the plan.

        The array is coded block by block, exactly as :meth:`encode_file`
        codes a file with the same samples.
        """
        rate = _rate(bitrate_kbps, bitrate_scale, rate)
        x = as_channels_first(audio)
        validate_audio(x, sample_rate_hz)
        block = max(1, int(BLOCK_SECONDS * sample_rate_hz))
        plan, _ = self._encode_blocks(target, lambda: array_blocks(x, block), sample_rate_hz, profile, rate,
                                      progress)
        return plan

    def encode_file(self, target, path: str | Path, profile: ProfileSpec = "auto",
                    bitrate_kbps: float | None = None, progress: Callable[[float], None] | None = None,
                    on_block: Callable[[np.ndarray], None] | None = None, *, bitrate_scale: float | None = None,
                    rate: Rate | None = None) -> tuple[list[PlannedSegment], AudioInfo]:
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
        profile, bitrate_kbps, progress, bitrate_scale, rate
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
        info = audio_info(path)
        sr = info.sample_rate_hz
        block = max(1, int(BLOCK_SECONDS * sr))
        rate = _rate(bitrate_kbps, bitrate_scale, rate)  # before reading the file
        plan, scan = self._encode_blocks(target, lambda: iter_audio_blocks(path, block), sr, profile, rate,
                                         progress, on_block)
        return plan, dataclasses.replace(info, n_samples=scan.n_samples, duration_s=scan.n_samples / sr)

    def measure_and_plan(self, blocks: Callable[[], Iterable[np.ndarray]], sample_rate_hz: int,
                         profile: ProfileSpec = "auto", rate: Rate | None = None,
                         on_block: Callable[[np.ndarray], None] | None = None, *,
                         stereo: str = "auto") -> tuple[SignalScan, list[PlannedSegment]]:
        """The encoder's first read: measure ``blocks()`` (classify it for ``"auto"``) and plan it.

        Parameters
        ----------
        blocks : callable
            Returns an iterable of the input's blocks ``(channels, samples)``.
        on_block : callable, optional
            Called with every block of the read.
        stereo : str
            Stereo tool of a two-channel input under rate control: "auto"
            (by the asked total, :func:`~adaptive_codec.tools.stereo.stereo_tool`),
            "mid_side" or "parametric" (for benchmarks; a forced tool on a
            mono input is an error).

        Returns
        -------
        scan : SignalScan
        plan : list of PlannedSegment
        """
        cfg = self.backbone.config
        highband, image = None, None

        def first_read():
            nonlocal highband, image
            for b in blocks():
                if on_block is not None:
                    on_block(b)
                if highband is None:  # the first block tells the channel count
                    highband = analyzer_for(sample_rate_hz, b.shape[0], cfg.sample_rate_hz, cfg.hop) or False
                    # A stereo input gets its image measured unless the asked rate already rules
                    # parametric stereo out (6 % of a 12 kbps stereo encode).
                    image = may_use_image and stereo_analyzer_for(sample_rate_hz, b.shape[0], cfg.sample_rate_hz,
                                                                  cfg.hop, self.chunk_frames) or False
                if highband:
                    highband.push(b)
                if image:
                    image.push(b)
                yield b

        rate = Rate() if rate is None else rate
        may_use_image = rate.kbps is None or stereo_tool(rate.kbps, stereo) != "mid_side"
        scan = scan_blocks(first_read(), sample_rate_hz, self.classifier if is_auto(profile) else None)
        if stereo != "auto" and scan.channels != 2:
            raise AdaptiveCodecError(f"stereo tool {stereo!r} needs a 2-channel input, got {scan.channels} channel(s)")
        n_frames = self.n_frames(scan.n_samples, sample_rate_hz)
        plan = self.plan(None, sample_rate_hz, n_frames, profile, segments=scan.segments, rate=rate)
        # The high band's bits are known now, before any depth: the depths get what they leave.
        section, kbps = code_highband(highband.finish(n_frames) if highband else None, plan, n_frames,
                                      self.chunk_frames, self.frame_rate_hz)
        if section is not None:
            plan = self.plan(None, sample_rate_hz, n_frames, profile, segments=scan.segments, rate=rate,
                             reserved_kbps=kbps)
            scan = dataclasses.replace(scan, highband=section)
        # Parametric stereo: a low total goes to the mid alone plus the image's parameters,
        # which rate control pays from the same budget (they are in the header).
        if image and rate_controlled(plan) and scan.side_rms > SIDE_SILENT_RATIO * scan.mid_rms \
                and stereo_tool(plan_total_kbps(plan), stereo) == "parametric":
            section = code_parametric(image, n_frames, param_frames_for(plan_total_kbps(plan)))
            scan = dataclasses.replace(scan, stereo=section)
        return scan, plan

    def _encode_blocks(self, target, blocks: Callable[[], Iterable[np.ndarray]], sample_rate_hz: int,
                       profile: ProfileSpec, rate: Rate, progress, on_block=None):
        """First read (measure, plan), then the second read through the encoder's stages."""
        scan, plan = self.measure_and_plan(blocks, sample_rate_hz, profile, rate, on_block)
        encode_stream(self.parts, target, blocks, sample_rate_hz, scan, plan, progress)
        return plan, scan

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
        # One reader for header and chunks: a file object is read from the
        # position it was given at, once.
        with AcxReader(_source(source)) as reader:
            n, blocks = decode_range(self.parts, reader, start_s, end_s)
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
        with AcxReader(_source(source)) as reader:
            n, blocks = decode_range(self.parts, reader, start_s, end_s)
            header = reader.header
        with AudioWriter(path, header.original_sample_rate_hz, header.channels, subtype=subtype) as writer:
            for block in blocks:
                writer.write(block)
        return n, header.original_sample_rate_hz


def _rate(bitrate_kbps: float | None, bitrate_scale: float | None, rate: Rate | None) -> Rate:
    """One checked request from the API's keyword arguments."""
    if rate is None:
        return Rate.of(bitrate_kbps, bitrate_scale)
    if bitrate_kbps is not None or bitrate_scale is not None:
        raise ValueError("give rate or bitrate_kbps / bitrate_scale, not both")
    return rate


def _source(source):
    return bytes(source) if isinstance(source, (bytearray, memoryview)) else source
