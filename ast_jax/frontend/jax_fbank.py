"""Kaldi fbank and AST feature extraction as pure JAX functions, to jit, vmap and shard.

The NumPy front end (`ast_jax.frontend.kaldi`, `ast_jax.frontend.extractor`) is the reference;
this module restates its pipeline in ``jax.numpy`` so that features and model can run as one XLA
program on an accelerator, with no host round trip. Options, window and mel bank are shared with
the NumPy module (``FbankOptions``), and all shapes are static: a batch of equal-length waveforms
``(B, S)`` gives ``(B, T, F)``.

Arithmetic is float32 (as torchaudio's), so bands more than ~70 dB below a frame's strongest band
carry FFT rounding; elsewhere the result matches the NumPy extractor to float32 precision.

Shape legend: B batch, S samples, T frames, L samples per frame, K FFT bins, F mel bins.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ast_jax.frontend.extractor import FeatureExtractor
from ast_jax.frontend.kaldi import (
    EPSILON,
    FbankOptions,
    extend_signal,
    mel_banks,
    num_frames,
    window_function,
)

__all__ = ["extract_features", "fbank"]


def _frame_indices(num_samples: int, options: FbankOptions) -> np.ndarray:
    """``(T, L)`` sample indices of every frame in the (extended) signal."""
    count = num_frames(num_samples, options)
    starts = np.arange(count) * options.window_shift  # (T,)
    return starts[:, None] + np.arange(options.window_size)  # (T, L)


def _log_energy(frames: jax.Array, energy_floor: float) -> jax.Array:
    energy = jnp.log(jnp.maximum(jnp.sum(frames * frames, axis=-1), EPSILON))  # (..., T)
    return energy if energy_floor == 0.0 else jnp.maximum(energy, math.log(energy_floor))


def fbank(
    waveforms: jax.Array, options: FbankOptions, *, key: jax.Array | None = None
) -> jax.Array:
    """Kaldi log-mel filterbank of ``(..., S)`` float waveforms -> ``(..., T, F)`` float32.

    Args:
      waveforms: equal-length float waveforms; any leading axes are batch axes.
      options: fbank options (torchaudio's names and defaults), static.
      key: PRNG key for the dither noise; required when ``options.dither != 0``.

    Returns:
      float32 ``(..., T, F)``, as `ast_jax.frontend.kaldi.fbank` row by row.

    Raises:
      ValueError: fewer samples than one window, or dither without a key.
    """
    num_samples = waveforms.shape[-1]
    if num_samples < options.window_size:
        raise ValueError(
            f"waveforms have {num_samples} samples, fewer than one window ({options.window_size})"
        )
    if options.dither != 0.0 and key is None:
        raise ValueError("options.dither != 0 needs a PRNG key")
    signals = extend_signal(jnp.asarray(waveforms, jnp.float32), options, xp=jnp)
    frames = signals[..., _frame_indices(num_samples, options)]  # (..., T, L)
    if options.dither != 0.0:
        frames = frames + options.dither * jax.random.normal(key, frames.shape, frames.dtype)
    if options.remove_dc_offset:
        frames = frames - jnp.mean(frames, axis=-1, keepdims=True)
    if options.raw_energy:
        energy = _log_energy(frames, options.energy_floor)  # (..., T)
    c = options.preemphasis_coefficient
    if c != 0.0:
        # Per frame; the sample before the frame is taken to be the frame's first sample.
        previous = jnp.concatenate([frames[..., :1], frames[..., :-1]], axis=-1)
        frames = frames - c * previous
    frames = frames * window_function(options)
    if not options.raw_energy:
        energy = _log_energy(frames, options.energy_floor)
    spectrum = jnp.abs(jnp.fft.rfft(frames, n=options.padded_window_size, axis=-1))  # (..., T, K)
    if options.use_power:
        spectrum = spectrum * spectrum
    banks = mel_banks(**dataclasses.asdict(options))  # (F, K)
    mel = jnp.einsum("...tk,fk->...tf", spectrum, banks, precision=jax.lax.Precision.HIGHEST)
    if options.use_log_fbank:
        mel = jnp.log(jnp.maximum(mel, EPSILON))
    if options.use_energy:
        parts = (mel, energy[..., None]) if options.htk_compat else (energy[..., None], mel)
        mel = jnp.concatenate(parts, axis=-1)
    if options.subtract_mean:
        mel = mel - jnp.mean(mel, axis=-2, keepdims=True)
    return mel


def extract_features(waveforms: jax.Array, extractor: FeatureExtractor) -> jax.Array:
    """AST model input of ``(B, S)`` equal-length waveforms -> ``(B, max_length, F)`` float32.

    The JAX twin of ``extractor(waveforms)["input_values"]``: fbank, keep the first
    ``max_length`` frames or append ``padding_value`` rows, then ``(x - mean) / (2 std)``. Only the
    samples the first ``max_length`` frames need are read.
    """
    needed = extractor.samples_needed
    features = fbank(waveforms[..., :needed], extractor.fbank_options)  # (B, T <= max_length, F)
    missing = extractor.max_length - features.shape[-2]
    padding = [(0, 0)] * (features.ndim - 2) + [(0, missing), (0, 0)]
    features = jnp.pad(features, padding, constant_values=extractor.padding_value)
    if extractor.do_normalize:
        features = (features - extractor.mean) / (2 * extractor.std)
    return features
