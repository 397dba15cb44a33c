"""Backbone codec: transforms, shapes, bitrate accounting, streaming, training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adaptive_codec.backbone.losses import LOSS_TERMS, ReconstructionLoss, code_bits, rate_bits
from adaptive_codec.backbone.mdct import MDCT
from adaptive_codec.backbone.model import (
    Backbone,
    BackboneConfig,
    bitrate_for_n_q,
    n_q_for_bitrate,
)
from adaptive_codec.backbone.streaming import decode_signal, encode_signal
from adaptive_codec.backbone.weights import export_weights, load_weights

TINY = BackboneConfig(dim=32, encoder_blocks=2, decoder_blocks=2, latent_dim=32,
                      n_levels=4, codebook_size=64, code_dim=4, cond_dim=8)


@pytest.fixture(scope="module")
def speech_24k():
    from adaptive_codec.audio import load_audio, resample, to_mono
    from adaptive_codec.resources import example_path

    audio, info = load_audio(example_path("speech"))
    mono = resample(to_mono(audio), info.sample_rate_hz, 24000)
    return np.asarray(mono, dtype=np.float32)[:48000]


@pytest.mark.parametrize("n_samples", [1, 319, 320, 24000, 24007])
def test_mdct_perfect_reconstruction(n_samples):
    mdct = MDCT(320)
    x = torch.randn(2, n_samples, generator=torch.Generator().manual_seed(n_samples))
    coef = mdct(x)
    assert coef.shape == (2, 320, mdct.n_frames(n_samples))
    torch.testing.assert_close(mdct.inverse(coef, n_samples), x, atol=1e-5, rtol=0)


def test_fft_inverse_mdct_equals_basis_product():
    """The FFT inverse is the basis product (overlap-added) for any coefficients, not only MDCT output."""
    mdct = MDCT(320)
    coef = torch.randn(2, 320, 9, generator=torch.Generator().manual_seed(3))
    windows = torch.einsum("bkt,kn->bnt", coef, mdct.basis)
    want = torch.nn.functional.fold(windows, output_size=(1, 10 * 320), kernel_size=(1, 640),
                                    stride=(1, 320))[:, 0, 0, 320 : 320 + 2500]
    torch.testing.assert_close(mdct.inverse(coef, 2500), want, atol=2e-5, rtol=0)
    with pytest.raises(ValueError, match="even"):
        MDCT(321)


def test_bitrate_accounting():
    cfg = BackboneConfig()
    assert cfg.frame_rate_hz == 75.0
    # levels × bits × frame rate: 8 levels × 10 bits × 75 = 6 kbps.
    assert bitrate_for_n_q(8, cfg) == pytest.approx(6.0)
    assert n_q_for_bitrate(6.0, cfg) == 8
    assert n_q_for_bitrate(1.5, cfg) == 2
    assert n_q_for_bitrate(12.0, cfg) == 16
    assert n_q_for_bitrate(100.0, cfg) == cfg.n_levels
    assert n_q_for_bitrate(0.1, cfg) == 1


@pytest.mark.parametrize("n_samples", [1000, 24000, 30001])
def test_forward_shapes_and_codes(n_samples):
    model = Backbone(TINY).eval()
    x = 0.1 * torch.randn(3, n_samples, generator=torch.Generator().manual_seed(0))
    cond = model.frame_conditioning(torch.tensor([0, 1, 2]))
    out = model(x, cond, torch.tensor([1, 2, 4]))
    frames = model.mdct.n_frames(n_samples)
    assert out.audio.shape == x.shape
    assert out.quantized.codes.shape == (3, TINY.n_levels, frames)
    assert int(out.quantized.codes.max()) < TINY.codebook_size


def test_quantized_equals_decode_of_codes():
    model = Backbone(TINY).eval()
    latent = torch.randn(2, 20, TINY.latent_dim)
    n_q = torch.tensor([3, 3])
    q = model.quantizer(latent, n_q)
    codes = model.quantizer.encode(latent, 3)
    torch.testing.assert_close(codes, q.codes[:, :3])
    torch.testing.assert_close(model.quantizer.decode(codes), q.quantized, atol=1e-5, rtol=1e-5)
    depths = torch.full((2, 20), 3)
    torch.testing.assert_close(model.quantizer.decode_masked(q.codes, depths), q.quantized,
                               atol=1e-5, rtol=1e-5)


def test_losses_finite_on_silence_and_zero_for_identity():
    loss = ReconstructionLoss()
    silence = torch.zeros(2, 24000)
    terms = loss(silence, silence)
    assert set(terms) == set(LOSS_TERMS)
    for name, value in terms.items():
        assert torch.isfinite(value).all(), name
    x = 0.1 * torch.randn(2, 24000, generator=torch.Generator().manual_seed(1))
    same = loss(x, x)
    for name, value in same.items():
        assert float(value.abs().max()) < 1e-4, name
    noisy = loss(x + 0.05 * torch.randn_like(x), x)
    assert all(float(noisy[k].min()) > 0 for k in ("waveform", "mel", "stft"))


def test_phase_term_sees_phase_that_magnitude_terms_miss(speech_24k):
    """A polarity flip is inaudible to magnitude terms but maximal for ``phase``."""
    loss = ReconstructionLoss()
    x = torch.from_numpy(speech_24k[:24000]).float()[None]
    flipped = loss(-x, x)
    assert float(flipped["phase"]) == pytest.approx(2.0, abs=1e-3)
    assert float(flipped["mel"]) < 1e-4 and float(flipped["stft"]) < 1e-4
    # Level-invariant: the same relative error scores the same at any level.
    shifted = torch.roll(x, 24, -1)
    assert float(loss(shifted, x)["phase"]) == pytest.approx(
        float(loss(0.01 * shifted, 0.01 * x)["phase"]), rel=1e-3)
    assert 0.5 < float(loss(shifted, x)["phase"]) < 2.0


def test_phase_term_ignores_phase_above_its_cutoff(speech_24k):
    """Flipping the polarity of everything above PHASE_MAX_HZ costs ``phase`` nothing;
    flipping the band below it does."""
    from adaptive_codec.backbone.losses import PHASE_MAX_HZ

    loss = ReconstructionLoss()
    x = speech_24k[:24000].astype(np.float64)
    spectrum = np.fft.rfft(x)
    high = np.fft.rfftfreq(x.size, 1 / 24000) > PHASE_MAX_HZ + 600  # clear of the STFT's leakage
    ref = torch.from_numpy(x).float()[None]
    highs_flipped = torch.from_numpy(np.fft.irfft(np.where(high, -spectrum, spectrum), n=x.size)).float()[None]
    lows_flipped = torch.from_numpy(np.fft.irfft(np.where(high, spectrum, -spectrum), n=x.size)).float()[None]
    assert float(loss(highs_flipped, ref)["phase"]) < 0.1
    assert float(loss(lows_flipped, ref)["phase"]) > 1.5
    # the magnitude terms see neither flip
    assert float(loss(highs_flipped, ref)["mel"]) < 1e-3


def test_band_level_term_measures_steady_level_not_detail(speech_24k):
    """``band_level`` is the long-term band balance: a gain costs in proportion to its level,
    a muffled top octave costs, and noise with the same long-term spectrum costs little."""
    loss = ReconstructionLoss()
    x = torch.from_numpy(speech_24k[: 2 * 24000]).float()[None]
    # -6 dB is 0.6 bels in every audible band; the clip's empty bands (above its
    # source's 8 kHz, floored on both sides) count as matched
    half, quarter = float(loss(0.5 * x, x)["band_level"]), float(loss(0.25 * x, x)["band_level"])
    assert 0.3 < half < 2 * np.log10(2) and quarter == pytest.approx(2 * half, rel=0.1)
    spectrum = np.fft.rfft(x[0].double().numpy())
    top = np.fft.rfftfreq(x.shape[-1], 1 / 24000) > 4000
    muffled = torch.from_numpy(np.fft.irfft(np.where(top, 0.5 * spectrum, spectrum), n=x.shape[-1])).float()[None]
    assert 0.1 < float(loss(muffled, x)["band_level"]) < 2 * np.log10(2)
    # random phases: the same long-term spectrum, stationary noise instead of speech
    phases = np.exp(2j * np.pi * np.random.default_rng(0).uniform(size=spectrum.shape))
    phases[[0, -1]] = 1
    scrambled = loss(torch.from_numpy(np.fft.irfft(spectrum * phases, n=x.shape[-1])).float()[None], x)
    assert float(scrambled["band_level"]) < 0.05 < 0.5 < float(scrambled["mel"])


def test_intelligibility_term_tracks_stoi(speech_24k):
    """The differentiable STOI stand-in is 0 for a copy or a gain change and follows 1 - STOI."""
    pystoi = pytest.importorskip("pystoi", reason="pystoi comes with the bench extra")
    import torchaudio

    loss = ReconstructionLoss()
    x = speech_24k[:48000]
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(x.size).astype(np.float32) * x.std()
    to16 = lambda a: torchaudio.functional.resample(torch.from_numpy(a), 24000, 16000).numpy()  # noqa: E731
    terms, stois = [], []
    for y in (x, 0.3 * x, x + 0.1 * noise, x + 0.3 * noise, x + 0.6 * noise):
        terms.append(float(loss(torch.from_numpy(y)[None], torch.from_numpy(x)[None])["intelligibility"]))
        stois.append(1.0 - pystoi.stoi(to16(x), to16(y), 16000))
    assert terms[:2] == pytest.approx([0.0, 0.0], abs=1e-4)
    assert terms[2] < terms[3] < terms[4]
    np.testing.assert_allclose(terms, stois, atol=0.03)
    assert float(loss(torch.zeros(1, 24000), torch.zeros(1, 24000))["intelligibility"]) == 0.0


def test_rate_bits_uniform_prior_is_log2_k():
    k, levels, frames = 64, 4, 10
    prior = torch.zeros(2, levels, k)
    codes = torch.randint(0, k, (2, levels, frames))
    soft = [torch.softmax(torch.randn(2, frames, k), -1) for _ in range(levels)]
    soft_bits, hard_bits = rate_bits(soft, codes, prior, torch.tensor([4, 2]))
    torch.testing.assert_close(hard_bits, torch.tensor([4 * 6.0, 2 * 6.0]))
    torch.testing.assert_close(soft_bits, torch.tensor([4 * 6.0, 2 * 6.0]))


def test_rate_bits_per_frame_depths_count_only_coded_levels():
    k, levels, frames = 64, 4, 10
    prior = torch.zeros(2, levels, k)
    codes = torch.randint(0, k, (2, levels, frames))
    soft = [torch.softmax(torch.randn(2, frames, k), -1) for _ in range(levels)]
    depths = torch.tensor([[4] * 5 + [1] * 5, [2] * 10])
    soft_bits, hard_bits = rate_bits(soft, codes, prior, depths)
    torch.testing.assert_close(hard_bits, torch.tensor([2.5 * 6.0, 2 * 6.0]))
    torch.testing.assert_close(soft_bits, hard_bits)


def test_code_bits_are_minus_log2_of_the_coded_indices_probabilities():
    # Level 0 puts half the mass on index 3, level 1 a quarter on index 5; level 2 is never coded.
    k = 8
    probs = torch.full((1, 3, k), 1.0)
    probs[0, 0, 3] = (k - 1) * 1.0  # 7 / 14 = 1/2
    probs[0, 1, 5] = (k - 1) / 3.0  # (7/3) / (28/3) = 1/4
    codes = torch.tensor([[[3, 0], [5, 5], [1, 1]]])
    bits = code_bits(codes, probs.log(), torch.tensor([[2, 1]]))
    p_other = 1.0 / 14.0  # level 0, index 0
    expected = torch.tensor([[1.0 + 2.0, -np.log2(p_other)]], dtype=torch.float32)
    torch.testing.assert_close(bits, expected)


def test_training_forward_with_per_frame_depths_matches_the_coder():
    """What training quantizes with a depth map is what the decoder gets from the coded depths."""
    model = Backbone(TINY).eval()
    latent = torch.randn(2, 12, TINY.latent_dim)
    depths = torch.tensor([[1, 1, 3, 3, 2, 2, 2, 4, 1, 3, 3, 3], [2] * 12])
    q = model.quantizer(latent, depths)
    torch.testing.assert_close(q.depths, depths)
    torch.testing.assert_close(model.quantizer.decode_masked(q.codes, depths), q.quantized,
                               atol=1e-5, rtol=1e-5)
    uniform = model.quantizer(latent, torch.tensor([2, 2]))
    torch.testing.assert_close(q.quantized[1], uniform.quantized[1])
    # Frames coded with fewer levels pay less commitment than the same example at full depth.
    full = model.quantizer(latent, torch.tensor([4, 4]))
    assert float(q.commitment_loss[0].detach()) < float(full.commitment_loss[0].detach())


def _tiny_piece(speech_24k, profile):
    """A seeded TINY backbone, 30,001 samples of speech and one profile's per-frame conditioning."""
    torch.manual_seed(0)
    model = Backbone(TINY).eval()
    audio = speech_24k[:30001]
    frames = model.mdct.n_frames(audio.size)
    cond = model.profile_vector(profile).detach()[None].expand(frames, -1)
    return model, audio, frames, cond


def test_streaming_matches_whole_signal(speech_24k):
    model, audio, frames, cond = _tiny_piece(speech_24k, "speech")
    whole = encode_signal(model, audio, cond, 4, chunk_frames=10_000)
    chunked = encode_signal(model, audio, cond, 4, chunk_frames=37)
    # Ties in nearest-codeword search can flip on float rounding; demand near-identity.
    assert (whole == chunked).mean() > 0.99
    depths = np.full(frames, 4)
    y_whole = decode_signal(model, whole, depths, cond, audio.size, chunk_frames=10_000)
    y_chunk = decode_signal(model, whole, depths, cond, audio.size, chunk_frames=41)
    assert y_whole.shape == (audio.size,)
    np.testing.assert_allclose(y_chunk, y_whole, atol=1e-4)


def test_tiny_model_overfits_one_clip(speech_24k):
    """The training objective really trains: loss on one clip falls fast."""
    torch.manual_seed(0)
    model = Backbone(TINY)
    loss_fn = ReconstructionLoss()
    x = torch.from_numpy(speech_24k[:12000])[None]
    x = x / x.abs().max() * 0.5
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = last = None
    for _ in range(60):
        out = model(x, model.frame_conditioning(torch.tensor([0])), torch.tensor([4]))
        terms = loss_fn(out.audio, x)
        loss = (terms["mel"] + terms["stft"] + 0.25 * out.quantized.commitment_loss
                + out.quantized.codebook_loss).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = float(terms["mel"].detach())
        first = first if first is not None else last
    assert last < 0.6 * first


def test_weights_round_trip_without_pickle(tmp_path):
    model = Backbone(TINY)
    path = export_weights(model, tmp_path / "w.safetensors", steps=7)
    assert path.read_bytes()[:8] != b"\x80\x02\x80\x03"[:8]  # not a pickle
    loaded, meta = load_weights(path)
    assert meta["steps"] == "7" and meta["weights_id"].startswith("0.dev7+")
    assert loaded.config == TINY
    ref = model.state_dict()
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, ref[k].half().float())


def test_load_weights_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors at all")
    with pytest.raises(ValueError, match="safetensors"):
        load_weights(bad)


# -- inference path == the model's plain math ---------------------------------------


def _reference_stack(stack, x, cond):
    """ConvNeXtStack.forward written plainly: Conv1d, LayerNorm, FiLM, MLP, residual."""
    x = stack.inp(x)
    for blk in stack.blocks:
        h = blk.dwconv(x.transpose(1, 2)).transpose(1, 2)
        scale, shift = blk.film(cond).chunk(2, dim=-1)
        h = torch.nn.functional.layer_norm(h, (h.shape[-1],)) * (1 + scale) + shift
        x = x + blk.gamma * blk.pw2(torch.nn.functional.gelu(blk.pw1(h)))
    return stack.out(stack.norm(x))


def _reference_mdct(audio, basis, hop):
    n = audio.shape[-1]
    total = (-(-n // hop) + 2) * hop
    frames = torch.nn.functional.pad(audio, (hop, total - n - hop)).unfold(-1, 2 * hop, hop)
    return torch.einsum("btn,kn->bkt", frames, basis)


def _reference_imdct(coef, basis, hop, n):
    frames = torch.einsum("bkt,kn->bnt", coef, basis)
    out = torch.nn.functional.fold(frames, output_size=(1, (frames.shape[-1] + 1) * hop),
                                   kernel_size=(1, 2 * hop), stride=(1, hop))
    return out[:, 0, 0, hop : hop + n]


@pytest.fixture(scope="module")
def shipped():
    from adaptive_codec.resources import weights_dir

    torch.set_num_threads(1)
    return load_weights(weights_dir() / "backbone.safetensors")[0]


def test_inference_path_matches_plain_math(shipped, speech_24k):
    """The fast block (2-D conv view, addcmul, one FiLM row, NumPy argmax, frame-major
    MDCT) computes what the plain formulas compute, with the shipped weights."""
    model, hop = shipped, shipped.config.hop
    x = torch.from_numpy(speech_24k[:36000])[None]
    frames = model.mdct.n_frames(x.shape[-1])
    cond = model.profile_vector("music").detach()[None, None].expand(1, frames, -1)
    with torch.no_grad():
        coef = _reference_mdct(x, model.mdct.basis, hop).transpose(1, 2)
        p = model.config.compress_exponent
        feats = torch.cat([coef.sign() * (coef.abs() + 1e-8).pow(p),
                           torch.log10(coef.pow(2).mean(-1, keepdim=True) + 1e-10) / 5], dim=-1)
        torch.testing.assert_close(model.analysis(x), feats, atol=1e-5, rtol=1e-5)
        latent = _reference_stack(model.encoder, feats, cond)
        torch.testing.assert_close(model.encoder(feats, cond), latent, atol=1e-4, rtol=1e-4)
        residual, ref_codes = latent, []
        for level in model.quantizer.levels[:8]:
            z = torch.nn.functional.normalize(level.in_proj(residual), dim=-1)
            idx = (z @ level.normalized_codebook().T).argmax(-1)
            residual = residual - level.decode(idx)
            ref_codes.append(idx)
        ref_codes = torch.stack(ref_codes, dim=1)
        codes = model.encode_codes(x, cond, 8)
        # A near-tie may flip on float rounding; anything more is a bug.
        assert (codes == ref_codes).float().mean() > 0.999
        decoded = _reference_stack(model.decoder, model.quantizer.decode(codes), cond)
        ref_audio = _reference_imdct(model.synthesis_coefficients(decoded), model.mdct.basis, hop,
                                     x.shape[-1])
        audio = model.decode_codes(codes, cond, x.shape[-1])
    assert float(ref_audio.abs().max()) > 1e-3
    torch.testing.assert_close(audio, ref_audio, atol=1e-5, rtol=1e-4)


def test_conditioning_switch_inside_a_piece_matches_plain_math(shipped, speech_24k):
    """Per-frame FiLM (a profile switch inside the piece) takes the general path."""
    model = shipped
    x = torch.from_numpy(speech_24k[:24000])[None]
    frames = model.mdct.n_frames(x.shape[-1])
    cond = model.profile_vector("speech").detach()[None, None].repeat(1, frames, 1)
    cond[:, frames // 2 :] = model.profile_vector("ambient").detach()
    with torch.no_grad():
        feats = model.analysis(x)
        torch.testing.assert_close(model.encoder(feats, cond), _reference_stack(model.encoder, feats, cond),
                                   atol=1e-4, rtol=1e-4)


def test_chunked_encoder_is_independent_of_block_sizes(speech_24k):
    from adaptive_codec.backbone.streaming import ChunkedEncoder

    model, audio, _, cond = _tiny_piece(speech_24k, "music")
    whole = encode_signal(model, audio, cond, 4, chunk_frames=23)
    rng = np.random.default_rng(0)
    for _ in range(3):
        enc = ChunkedEncoder(model, audio.size, cond, 4, chunk_frames=23)
        cuts = np.sort(rng.choice(audio.size, size=7, replace=False))
        for piece in np.split(audio, cuts):
            enc.push(piece)
        np.testing.assert_array_equal(enc.finish(), whole)
    enc = ChunkedEncoder(model, audio.size, cond, 4)
    with pytest.raises(ValueError, match="announced"):
        enc.push(np.zeros(audio.size + 1, np.float32))


def test_decode_masked_with_mixed_depths_equals_per_frame_sums():
    model = Backbone(TINY).eval()
    codes = torch.randint(0, TINY.codebook_size, (1, TINY.n_levels, 12))
    depths = torch.tensor([[1, 1, 3, 3, 2, 2, 2, 0, 1, 3, 3, 3]])
    out = model.quantizer.decode_masked(codes, depths)
    for t in range(12):
        d = int(depths[0, t])
        want = model.quantizer.decode(codes[:, :d, t : t + 1]) if d else torch.zeros(1, 1, TINY.latent_dim)
        torch.testing.assert_close(out[:, t : t + 1], want, atol=1e-6, rtol=1e-6)
