"""The JAX fbank/extractor against the NumPy reference implementation (itself tested against
torchaudio), under jit and vmap."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ast_jax import ASTForAudioClassification, FeatureExtractor, fbank, fbank_batch
from ast_jax.frontend.jax_fbank import extract_features
from ast_jax.frontend.jax_fbank import fbank as jax_fbank
from ast_jax.frontend.kaldi import FbankOptions
from ast_jax.model.waveforms import logits_from_waveforms

# Float32 arithmetic throughout (the NumPy path runs its FFT in float64), so the comparison uses the
# torchaudio rule: 1e-3 in log energy on resolvable bands, energies within 1e-4 of a frame's peak
# below. The normalised extractor output uses HF's bar, 1e-4, on the same rule.
LOG_TOL = 1e-3
EXTRACTOR_TOL = 1e-4
ENERGY_TOL = 1e-5
LOGITS_TOL = 2e-4


def test_jax_fbank_matches_numpy(
    speech_fbank_options, reference_wave, assert_close_in_resolvable_range
):
    options = speech_fbank_options
    wave = reference_wave("yes")
    ours = np.asarray(jax.jit(jax_fbank, static_argnums=1)(wave, FbankOptions(**options)))
    reference = fbank(wave, **options)
    assert ours.shape == reference.shape and ours.dtype == np.float32
    mel = slice(None)
    if options.get("use_energy"):
        energy = -1 if options.get("htk_compat") else 0
        np.testing.assert_allclose(ours[:, energy], reference[:, energy], atol=ENERGY_TOL)
        mel = slice(0, -1) if options.get("htk_compat") else slice(1, None)
    log_domain = options.get("use_log_fbank", True)
    assert_close_in_resolvable_range(ours[:, mel], reference[:, mel], log_domain, LOG_TOL)


def test_jax_fbank_batches_with_leading_axes_and_vmap(assert_close_in_resolvable_range):
    rng = np.random.default_rng(0)
    batch = (0.2 * rng.standard_normal((2, 3, 4000))).astype(np.float32)
    options = FbankOptions(window_type="hanning", num_mel_bins=64, subtract_mean=True)
    leading = np.asarray(jax_fbank(batch, options))  # (2, 3, T, F)
    mapped = np.asarray(jax.vmap(jax.vmap(lambda x: jax_fbank(x, options)))(batch))
    np.testing.assert_allclose(leading, mapped, atol=1e-6)
    reference = fbank_batch(
        batch.reshape(6, -1), window_type="hanning", num_mel_bins=64, subtract_mean=True
    )
    for ours, expected in zip(leading.reshape(reference.shape), reference, strict=True):
        assert_close_in_resolvable_range(ours, expected, True, LOG_TOL)


@pytest.mark.parametrize("preset", ["audioset", "speech_commands"])
def test_jax_extractor_matches_numpy_extractor(tone, assert_close_in_resolvable_range, preset):
    extractor = FeatureExtractor.from_preset(preset)
    rng = np.random.default_rng(1)
    sine = tone(440, 3.0, amplitude=0.4)
    clips = np.stack([sine, 0.1 * rng.standard_normal(sine.size)]).astype(np.float32)
    ours = np.asarray(jax.jit(extract_features, static_argnums=1)(clips, extractor))
    output = extractor(clips, sampling_rate=16000, return_num_frames=True)
    reference, counts = output["input_values"], output["num_frames"]
    assert ours.shape == reference.shape
    scale, shift = 2 * extractor.std, extractor.mean / (2 * extractor.std)
    for i, count in enumerate(counts):
        np.testing.assert_allclose(ours[i, count:], reference[i, count:], atol=1e-7)
        assert_close_in_resolvable_range(
            ours[i, :count] + shift, reference[i, :count] + shift, True, EXTRACTOR_TOL, scale
        )


def test_jax_fbank_dither_needs_a_key_and_is_reproducible():
    options = FbankOptions(dither=1.0)
    silence = jnp.zeros(4000)
    with pytest.raises(ValueError, match="PRNG key"):
        jax_fbank(silence, options)
    first = jax_fbank(silence, options, key=jax.random.key(0))
    np.testing.assert_array_equal(first, jax_fbank(silence, options, key=jax.random.key(0)))
    assert float(jnp.abs(first - jax_fbank(silence, options, key=jax.random.key(1))).max()) > 0.1


def test_jax_fbank_rejects_short_input():
    with pytest.raises(ValueError, match="fewer than one window"):
        jax_fbank(jnp.zeros(300), FbankOptions())


def test_logits_from_waveforms_equals_extractor_then_model(tiny_config, tiny_extractor):
    config = dataclasses.replace(
        tiny_config,
        intermediate_size=37,
        labels=("LABEL_0", "LABEL_1"),
        initializer_range=0.5,  # logits of order 1-10, so feature errors show
    )
    extractor = tiny_extractor
    model = ASTForAudioClassification(config)
    params = model.init(jax.random.key(0), jnp.zeros((1, 128, 128)))["params"]
    rng = np.random.default_rng(2)
    waveforms = (0.2 * rng.standard_normal((3, 16000))).astype(np.float32)
    run = jax.jit(logits_from_waveforms, static_argnames=("config", "extractor"))
    ours = np.asarray(run(params, waveforms, config=config, extractor=extractor))
    features = extractor(waveforms, sampling_rate=16000)["input_values"]
    reference = np.asarray(model.apply({"params": params}, features).logits)
    # Features agree to ~1.5e-5 here (float32 FFT); logits of scale ~5 move by ~3e-5.
    np.testing.assert_allclose(ours, reference, atol=LOGITS_TOL, rtol=0)
    with pytest.raises(ValueError, match="model takes"):
        logits_from_waveforms(params, waveforms, config, FeatureExtractor())


@pytest.mark.parametrize("dft", ["fft", "matmul"])
def test_jax_extractor_with_lengths_equals_numpy_extractor_on_each_clip(
    tone, assert_close_in_resolvable_range, dft
):
    """Clips padded to one length, with their lengths: each row gets the features of the clip
    alone (frames past its end are padding rows). "matmul" (the DFT as products with cosine and
    sine tables, for ONNX) is held to the same rule as the FFT."""
    extractor = FeatureExtractor.from_preset("speech_commands")  # 128 frames: 20,720 samples
    rng = np.random.default_rng(4)
    clips = [
        tone(440, 1.0, amplitude=0.4),
        (0.1 * rng.standard_normal(20720 + 300)).astype(np.float32),
        tone(1000, 0.2),
        tone(200, 0.02),  # 320 samples: shorter than one 400-sample frame, all padding
    ]
    waveforms = np.zeros((len(clips), 20720 + 300), np.float32)
    for row, clip in enumerate(clips):
        waveforms[row, : clip.size] = clip
    lengths = np.array([clip.size for clip in clips], np.int32)
    waveforms[2, lengths[2] :] = 0.7  # padding of any value is ignored
    run = jax.jit(extract_features, static_argnums=1, static_argnames="dft")
    ours = np.asarray(run(waveforms, extractor, lengths=lengths, dft=dft))
    output = extractor(clips[:3], sampling_rate=16000, return_num_frames=True)
    reference, counts = output["input_values"], output["num_frames"]
    assert list(counts) == [98, 128, 18]
    scale, shift = 2 * extractor.std, extractor.mean / (2 * extractor.std)
    for i, count in enumerate(counts):
        np.testing.assert_allclose(ours[i, count:], reference[i, count:], atol=1e-7)
        assert_close_in_resolvable_range(
            ours[i, :count] + shift, reference[i, :count] + shift, True, EXTRACTOR_TOL, scale
        )
    padding = (extractor.padding_value - extractor.mean) / (2 * extractor.std)
    np.testing.assert_allclose(ours[3], padding, atol=1e-7)
    with pytest.raises(ValueError, match="dft must be"):
        jax_fbank(waveforms, extractor.fbank_options, dft="dct")
