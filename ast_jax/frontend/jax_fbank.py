"""Kaldi fbank and AST feature extraction as pure JAX functions, to jit, vmap and shard.

The NumPy front end (`ast_jax.frontend.kaldi`, `ast_jax.frontend.extractor`) is the reference;
this module restates its pipeline in ``jax.numpy`` so that features and model can run as one XLA
program on an accelerator, with no host round trip. Options, window and mel bank are shared with
the NumPy module (``FbankOptions``), and all shapes are static: a batch of equal-length waveforms
``(B, S)`` gives ``(B, T, F)``.

Arithmetic is float32 (as torchaudio's), so bands more than ~70 dB below a frame's strongest band
carry FFT rounding; elsewhere the result matches the NumPy extractor to float32 precision. The
power spectrum is ``re**2 + im**2`` of the DFT, as the NumPy path computes it. The DFT is
``jnp.fft.rfft`` (``dft="fft"``) or, for converters without a usable FFT (ONNX through jax2onnx),
two float32 matrix products with cosine and sine tables (``dft="matmul"``; rounding up to a few
times the FFT's, far below the 5e-4 that exported logits are held to).

Shape legend: B batch, S samples, T frames, L samples per frame, K FFT bins, F mel bins.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal

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


def _frames(signals: jax.Array, count: int, options: FbankOptions) -> jax.Array:
    """The first ``count`` frames ``(..., T, L)`` of ``(..., S')`` (extended) signals, cut with
    slices rather than a gather (XLA's CPU gather of overlapping rows is slower): the signal,
    zero-padded to whole hops, is reshaped to ``(..., T + n - 1, shift)`` rows, and frame ``t`` is
    rows ``t .. t + n - 1`` side by side (``n = ceil(L / shift)``), cut to L samples."""
    shift, size = options.window_shift, options.window_size
    hops = -(-size // shift)  # n
    needed = (count + hops - 1) * shift
    padding = [(0, 0)] * (signals.ndim - 1) + [(0, max(0, needed - signals.shape[-1]))]
    rows = jnp.pad(signals, padding)[..., :needed].reshape(*signals.shape[:-1], -1, shift)
    frames = jnp.concatenate([rows[..., i : i + count, :] for i in range(hops)], axis=-1)
    return frames[..., :size]


def _log_energy(frames: jax.Array, energy_floor: float) -> jax.Array:
    energy = jnp.log(jnp.maximum(jnp.sum(frames * frames, axis=-1), EPSILON))  # (..., T)
    return energy if energy_floor == 0.0 else jnp.maximum(energy, math.log(energy_floor))


@functools.cache
def _dft_tables(window_size: int, padded_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(L, K)`` float32 ``cos`` and ``-sin`` of the one-sided ``padded_size``-point DFT, for
    the ``window_size`` samples a frame has (the zero padding adds nothing). Angles in float64,
    reduced modulo the period before the cosine, so each entry is the correctly rounded value."""
    phase = np.outer(np.arange(window_size), np.arange(padded_size // 2 + 1)) % padded_size
    angle = 2 * np.pi * phase / padded_size
    return np.cos(angle).astype(np.float32), (-np.sin(angle)).astype(np.float32)


def _power_spectrum(frames: jax.Array, padded_size: int, dft: str) -> jax.Array:
    """``(..., L)`` windowed frames -> ``(..., K)`` power spectrum ``re**2 + im**2`` of their
    one-sided DFT at ``padded_size`` points."""
    if dft == "fft":
        spectrum = jnp.fft.rfft(frames, n=padded_size, axis=-1)  # (..., K) complex64
        real, imag = jnp.real(spectrum), jnp.imag(spectrum)
    elif dft == "matmul":
        cos, sin = _dft_tables(frames.shape[-1], padded_size)  # (L, K) each
        real, imag = (
            jnp.matmul(frames, table, precision=jax.lax.Precision.HIGHEST)  # (..., K)
            for table in (cos, sin)
        )
    else:
        raise ValueError(f"dft must be 'fft' or 'matmul', got {dft!r}")
    return real * real + imag * imag


def fbank(
    waveforms: jax.Array,
    options: FbankOptions,
    *,
    key: jax.Array | None = None,
    dft: Literal["fft", "matmul"] = "fft",
) -> jax.Array:
    """Kaldi log-mel filterbank of ``(..., S)`` float waveforms -> ``(..., T, F)`` float32.

    Args:
      waveforms: equal-length float waveforms; any leading axes are batch axes.
      options: fbank options (torchaudio's names and defaults), static.
      key: PRNG key for the dither noise; required when ``options.dither != 0``.
      dft: ``"fft"`` (``jnp.fft.rfft``) or ``"matmul"`` (cosine and sine tables, for
        converters that cannot translate an FFT, such as jax2onnx).

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
    frames = _frames(signals, num_frames(num_samples, options), options)  # (..., T, L)
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
    spectrum = _power_spectrum(frames, options.padded_window_size, dft)  # (..., T, K)
    if not options.use_power:
        spectrum = jnp.sqrt(spectrum)
    banks = mel_banks(**dataclasses.asdict(options))  # (F, K)
    # A matmul, not an einsum: the same XLA dot, and onnxruntime's MatMul (its Einsum is slow).
    mel = jnp.matmul(spectrum, banks.T, precision=jax.lax.Precision.HIGHEST)  # (..., T, F)
    if options.use_log_fbank:
        mel = jnp.log(jnp.maximum(mel, EPSILON))
    if options.use_energy:
        parts = (mel, energy[..., None]) if options.htk_compat else (energy[..., None], mel)
        mel = jnp.concatenate(parts, axis=-1)
    if options.subtract_mean:
        mel = mel - jnp.mean(mel, axis=-2, keepdims=True)
    return mel


def extract_features(
    waveforms: jax.Array,
    extractor: FeatureExtractor,
    *,
    lengths: jax.Array | None = None,
    dft: Literal["fft", "matmul"] = "fft",
) -> jax.Array:
    """AST model input of ``(B, S)`` equal-length waveforms -> ``(B, max_length, F)`` float32.

    The JAX twin of ``extractor(waveforms)["input_values"]``: fbank, keep the first
    ``max_length`` frames or append ``padding_value`` rows, then ``(x - mean) / (2 std)``. Only the
    samples the first ``max_length`` frames need are read.

    With the FFT, a CPU computes the batch one clip at a time (`jax.lax.map`): a whole batch's
    intermediates (~10 MB a 10-s clip) leave the caches and cost 2-3x more per clip at batch 32
    than at batch 1 (`benchmarks/bench_features.py`), while an accelerator wants the whole batch
    at once. The choice is a `jax.lax.platform_dependent`, resolved when the program is lowered;
    the matrix-product DFT, for converters such as jax2onnx, stays one batched program with no
    platform switch.

    Args:
      waveforms: ``(B, S)`` float waveforms.
      extractor: the feature extractor to reproduce (static).
      lengths: ``(B,)`` integers, the samples of each row that are audio (the rest is padding of
        any value); None when every row is audio throughout. A row then gets the features the
        NumPy extractor gives its first ``lengths[b]`` samples: frames that would read past them
        become ``padding_value`` rows (frames depend only on their own samples, AST's
        ``snip_edges`` framing), and a row shorter than one frame is all padding (the NumPy
        extractor rejects such a clip).
      dft: how the spectrum is computed (`fbank`).
    """
    batched = functools.partial(_extract, extractor=extractor, dft=dft)
    lengths = None if lengths is None else jnp.asarray(lengths, jnp.int32)
    if dft != "fft":
        return batched(waveforms, lengths)

    def one_clip_at_a_time(waveforms: jax.Array, lengths: jax.Array | None) -> jax.Array:
        return jax.lax.map(lambda clip: batched(*clip), (waveforms, lengths))

    return jax.lax.platform_dependent(waveforms, lengths, cpu=one_clip_at_a_time, default=batched)


def _extract(
    waveforms: jax.Array,
    lengths: jax.Array | None,
    extractor: FeatureExtractor,
    dft: Literal["fft", "matmul"],
) -> jax.Array:
    """`extract_features` of ``(..., S)`` waveforms (any leading axes, none for one clip) with
    ``lengths`` of the leading shape, in one program."""
    needed = extractor.samples_needed
    options = extractor.fbank_options
    features = fbank(waveforms[..., :needed], options, dft=dft)  # (..., T <= max_length, F)
    if lengths is not None:
        if not options.snip_edges:
            raise ValueError("lengths needs snip_edges framing (frames that read no padding)")
        # Frame t reads samples [t shift, t shift + window): real when they are all audio.
        ends = np.arange(features.shape[-2]) * options.window_shift + options.window_size  # (T,)
        real = ends <= lengths[..., None]  # (..., T)
        features = jnp.where(real[..., None], features, extractor.padding_value)
    missing = extractor.max_length - features.shape[-2]
    if missing:
        padding = [(0, 0)] * (features.ndim - 2) + [(0, missing), (0, 0)]
        features = jnp.pad(features, padding, constant_values=extractor.padding_value)
    if extractor.do_normalize:
        features = (features - extractor.mean) / (2 * extractor.std)
    return features
