"""Kaldi log-mel filterbanks as ``torchaudio.compliance.kaldi.fbank`` computes them, in NumPy,
vectorised over frames and clips.

Shape legend: B batch, C channels, S samples, T frames, L samples per frame (``window_size``),
K FFT bins (``padded_window_size // 2 + 1``), F output columns (mel bins, plus one for energy).

Numerics follow torchaudio (docs/numerics.md): same option names, units, defaults and order of
operations. The mel bank and windows are built in float32 exactly as torchaudio builds them; the
per-frame arithmetic and the FFT run in float64 by default (torchaudio: float32; `fbank_stacked`
takes ``dtype=np.float32``), then the power spectrum is rounded to float32 for the mel product and
log. Output is float32.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import os
import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import scipy.fft
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "EPSILON",
    "FbankOptions",
    "as_signal_array",
    "check_value",
    "extend_signal",
    "fbank",
    "fbank_batch",
    "fbank_stacked",
    "mel_band_centers",
    "mel_banks",
    "num_frames",
    "samples_for_frames",
    "window_function",
]

WindowType = Literal["hamming", "hanning", "povey", "rectangular", "blackman"]
WINDOW_TYPES: tuple[str, ...] = ("hamming", "hanning", "povey", "rectangular", "blackman")

# torchaudio floors energies at float32 machine epsilon (2**-23) whatever the input dtype.
EPSILON = float(np.finfo(np.float32).eps)


@dataclasses.dataclass(frozen=True, kw_only=True)
class FbankOptions:
    """Options of ``torchaudio.compliance.kaldi.fbank``, with its names, units and defaults.

    Frequencies are in Hz, ``frame_length``/``frame_shift`` in milliseconds, ``min_duration`` in
    seconds. Values are validated on construction (``ValueError`` naming the value and valid range).
    See docs/numerics.md for the computation each option controls.

    Attributes:
      blackman_coeff: coefficient of Kaldi's generalised Blackman window (used only with
        ``window_type="blackman"``). Default 0.42.
      dither: standard deviation of the Gaussian noise added to every sample of every frame; 0.0
        means none (Kaldi's own default is 1.0). Default 0.0; must be >= 0.
      energy_floor: floor on the log-energy column, as an absolute energy (applied as
        ``log(energy_floor)``); 0.0 disables it. The mel energies have their own fixed floor,
        float32 epsilon. Default 1.0; must be >= 0.
      frame_length: frame length in milliseconds. Default 25.0; must give at least 2 samples (an
        even number when ``round_to_power_of_two`` is False).
      frame_shift: hop between frame starts in milliseconds. Default 10.0; must be > 0 and give at
        least one sample.
      high_freq: upper edge of the mel bank in Hz; values <= 0 are offsets from Nyquist. Default
        0.0 (Nyquist); must end up in ``(low_freq, nyquist]``.
      htk_compat: put the energy column last instead of first; no other effect. Default False.
      low_freq: lower edge of the mel bank in Hz. Default 20.0; must be in ``[0, nyquist)``.
      min_duration: minimum clip duration in seconds; a shorter clip gives ``(0, F)``. Default
        0.0; must be >= 0.
      num_mel_bins: number of triangular mel filters. Default 23; must be an integer > 3.
      preemphasis_coefficient: pre-emphasis coefficient ``c`` in ``y[j] = x[j] - c x[j-1]``,
        applied per frame; 0.0 disables it. Default 0.97; must be in ``[0, 1]``.
      raw_energy: compute the energy before pre-emphasis and windowing (else after). Default True.
      remove_dc_offset: subtract each frame's mean. Default True.
      round_to_power_of_two: zero-pad each frame to the next power of two for the FFT. Default
        True.
      sample_frequency: sampling rate of the waveform in Hz. Default 16000.0; must be > 0.
      snip_edges: keep only frames that fit wholly in the signal (frame count depends on the
        frame length); if False, the frame count depends only on the shift and the signal is
        reflected at both ends. Default True.
      subtract_mean: subtract each column's mean over the clip's frames at the end. Default False.
      use_energy: add a log-energy column. Default False.
      use_log_fbank: natural log of the mel energies (floored at float32 epsilon); else linear
        energies. Default True.
      use_power: use the power spectrum (squared magnitude); else the magnitude. Default True.
      vtln_high: upper inflection point of the piecewise-linear VTLN warp in Hz; negative values
        are offsets from Nyquist. Default -500.0; with warping, must end up in
        ``(vtln_low, high_freq)``.
      vtln_low: lower inflection point of the VTLN warp in Hz. Default 100.0; with warping, must be
        in ``(low_freq, high_freq)``.
      vtln_warp: VTLN warp factor; 1.0 means no warping. Default 1.0; must be > 0.
      window_type: analysis window: "hamming", "hanning" (Kaldi's name for the symmetric Hann
        window), "povey" (the hanning window to the power 0.85), "rectangular" or "blackman".
        Default "povey".
    """

    blackman_coeff: float = 0.42
    dither: float = 0.0
    energy_floor: float = 1.0
    frame_length: float = 25.0
    frame_shift: float = 10.0
    high_freq: float = 0.0
    htk_compat: bool = False
    low_freq: float = 20.0
    min_duration: float = 0.0
    num_mel_bins: int = 23
    preemphasis_coefficient: float = 0.97
    raw_energy: bool = True
    remove_dc_offset: bool = True
    round_to_power_of_two: bool = True
    sample_frequency: float = 16000.0
    snip_edges: bool = True
    subtract_mean: bool = False
    use_energy: bool = False
    use_log_fbank: bool = True
    use_power: bool = True
    vtln_high: float = -500.0
    vtln_low: float = 100.0
    vtln_warp: float = 1.0
    window_type: WindowType = "povey"

    def __post_init__(self) -> None:
        check_value(self.sample_frequency > 0, "sample_frequency", self.sample_frequency, "> 0")
        check_value(self.frame_shift > 0, "frame_shift", self.frame_shift, "> 0 ms")
        check_value(
            self.window_shift > 0,
            "frame_shift",
            self.frame_shift,
            f"at least one sample ({1000.0 / self.sample_frequency:g} ms)",
        )
        check_value(
            self.window_size >= 2,
            "frame_length",
            self.frame_length,
            f"at least two samples ({2000.0 / self.sample_frequency:g} ms)",
        )
        check_value(
            self.padded_window_size % 2 == 0,
            "frame_length",
            self.frame_length,
            "an even number of samples when round_to_power_of_two=False",
        )
        check_value(
            0.0 <= self.preemphasis_coefficient <= 1.0,
            "preemphasis_coefficient",
            self.preemphasis_coefficient,
            "[0, 1]",
        )
        check_value(self.dither >= 0, "dither", self.dither, ">= 0")
        check_value(self.energy_floor >= 0, "energy_floor", self.energy_floor, ">= 0 (0 disables)")
        check_value(self.min_duration >= 0, "min_duration", self.min_duration, ">= 0 s")
        check_value(
            isinstance(self.num_mel_bins, int | np.integer) and self.num_mel_bins > 3,
            "num_mel_bins",
            self.num_mel_bins,
            "an integer > 3",
        )
        check_value(self.window_type in WINDOW_TYPES, "window_type", self.window_type, WINDOW_TYPES)
        nyquist = 0.5 * self.sample_frequency
        check_value(0 <= self.low_freq < nyquist, "low_freq", self.low_freq, f"[0, {nyquist:g}) Hz")
        check_value(
            0 < self.effective_high_freq <= nyquist and self.low_freq < self.effective_high_freq,
            "high_freq",
            self.high_freq,
            f"({self.low_freq:g}, {nyquist:g}] Hz, or <= 0 as an offset from Nyquist",
        )
        if self.vtln_warp != 1.0:
            self._check_vtln()

    def _check_vtln(self) -> None:
        low, high, vtln_high = self.low_freq, self.effective_high_freq, self.effective_vtln_high
        check_value(self.vtln_warp > 0, "vtln_warp", self.vtln_warp, "> 0")
        check_value(
            low < self.vtln_low < high, "vtln_low", self.vtln_low, f"({low:g}, {high:g}) Hz"
        )
        check_value(
            self.vtln_low < vtln_high < high,
            "vtln_high",
            self.vtln_high,
            f"({self.vtln_low:g}, {high:g}) Hz after adding Nyquist to negative values",
        )

    @property
    def window_shift(self) -> int:
        """Samples between frame starts (truncated toward zero, as torchaudio)."""
        return int(self.sample_frequency * self.frame_shift * 0.001)

    @property
    def window_size(self) -> int:
        """Samples per frame (truncated toward zero, as torchaudio)."""
        return int(self.sample_frequency * self.frame_length * 0.001)

    @property
    def padded_window_size(self) -> int:
        """FFT length: the next power of two >= ``window_size`` when ``round_to_power_of_two``."""
        if self.round_to_power_of_two:
            return 1 << (self.window_size - 1).bit_length()
        return self.window_size

    @property
    def effective_high_freq(self) -> float:
        """``high_freq`` with values <= 0 taken as offsets from Nyquist."""
        if self.high_freq <= 0:
            return self.high_freq + 0.5 * self.sample_frequency
        return self.high_freq

    @property
    def effective_vtln_high(self) -> float:
        """``vtln_high`` with negative values taken as offsets from Nyquist."""
        if self.vtln_high < 0:
            return self.vtln_high + 0.5 * self.sample_frequency
        return self.vtln_high

    @property
    def num_features(self) -> int:
        """Output columns F: mel bins plus the energy column when ``use_energy``."""
        return self.num_mel_bins + int(self.use_energy)


def check_value(ok: bool, name: str, value: Any, valid: Any) -> None:
    """Raises ``ValueError`` naming an option, its value and the valid range unless ``ok``."""
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid; expected {valid}")


def num_frames(num_samples: int, options: FbankOptions) -> int:
    """Number of frames ``fbank`` produces for ``num_samples`` samples (docs/numerics.md,
    Framing)."""
    shift, size = options.window_shift, options.window_size
    if options.snip_edges:
        return 1 + (num_samples - size) // shift if num_samples >= size else 0
    return (num_samples + shift // 2) // shift


def samples_for_frames(frames: int, options: FbankOptions) -> int:
    """Samples that ``frames`` whole frames span: ``(frames - 1) * shift + frame length``.

    With ``snip_edges`` this is the fewest samples that give ``frames`` frames, and the first
    ``frames`` frames of a longer signal read no sample past it.
    """
    return (frames - 1) * options.window_shift + options.window_size


# ----------------------------------------------------------------------------------------------
# Windows and mel banks, built once per option set. torchaudio builds both in float32.


@functools.lru_cache(maxsize=32)
def _window(window_type: str, window_size: int, blackman_coeff: float) -> NDArray[np.float32]:
    """Symmetric (periodic=False) window of length L, float32, read-only."""
    n = np.arange(window_size, dtype=np.float32)
    phase = np.float32(2 * math.pi / (window_size - 1)) * n  # (L,)
    if window_type == "rectangular":
        window = np.ones(window_size, dtype=np.float32)
    elif window_type == "hamming":
        window = np.float32(0.54) - np.float32(0.46) * np.cos(phase)
    elif window_type == "blackman":
        # Kaldi's generalised Blackman, not numpy/torch's fixed-coefficient one.
        coeff = np.float32(blackman_coeff)
        window = (
            coeff - np.float32(0.5) * np.cos(phase) + (np.float32(0.5) - coeff) * np.cos(2 * phase)
        )
    else:
        # Kaldi's "hanning" is the symmetric Hann window (zero at both ends); "povey" is it ** 0.85.
        window = np.float32(0.5) - np.float32(0.5) * np.cos(phase)
        if window_type == "povey":
            window = window ** np.float32(0.85)
    window = window.astype(np.float32)
    window.flags.writeable = False
    return window


def window_function(options: FbankOptions) -> NDArray[np.float32]:
    """The analysis window ``(L,)`` float32 of ``options`` (cached, read-only)."""
    return _window(options.window_type, options.window_size, options.blackman_coeff)


def _mel(freq: ArrayLike) -> NDArray:
    """Kaldi mel scale, natural log: ``1127 ln(1 + f/700)``; ``log(1 + x)``, not ``log1p``, as
    torchaudio rounds ``1 + x`` first in float32."""
    return 1127.0 * np.log(1.0 + np.asarray(freq) / 700.0)


def _inverse_mel(mel: ArrayLike) -> NDArray:
    return 700.0 * (np.exp(np.asarray(mel) / 1127.0) - 1.0)


def _vtln_warp_freq(freq: NDArray, options: FbankOptions) -> NDArray:
    """Piecewise-linear VTLN frequency warp (docs/numerics.md, VTLN warp); identity outside
    [low, high]."""
    low, high, warp = options.low_freq, options.effective_high_freq, options.vtln_warp
    lower = options.vtln_low * max(1.0, warp)
    upper = options.effective_vtln_high * min(1.0, warp)
    scale = 1.0 / warp
    scale_left = (scale * lower - low) / (lower - low)
    scale_right = (high - scale * upper) / (high - upper)
    warped = np.where(
        freq < lower,
        low + scale_left * (freq - low),
        np.where(freq < upper, scale * freq, high + scale_right * (freq - high)),
    )
    return np.where((freq < low) | (freq > high), freq, warped).astype(freq.dtype)


@functools.lru_cache(maxsize=32)
def _mel_banks_cached(options: FbankOptions) -> NDArray[np.float32]:
    num_fft_bins = options.padded_window_size // 2
    fft_bin_width = options.sample_frequency / options.padded_window_size
    mel_low = _mel(options.low_freq)
    mel_delta = (_mel(options.effective_high_freq) - mel_low) / (options.num_mel_bins + 1)
    # Edges as base + multiple of delta (not linspace), in float32, as torchaudio does.
    bins = np.arange(options.num_mel_bins, dtype=np.float32)[:, None]  # (F, 1)
    left = np.float32(mel_low) + bins * np.float32(mel_delta)
    center = np.float32(mel_low) + (bins + 1) * np.float32(mel_delta)
    right = np.float32(mel_low) + (bins + 2) * np.float32(mel_delta)
    if options.vtln_warp != 1.0:
        left, center, right = (
            _mel(_vtln_warp_freq(_inverse_mel(edge), options)).astype(np.float32)
            for edge in (left, center, right)
        )
    fft_freqs = np.float32(fft_bin_width) * np.arange(num_fft_bins, dtype=np.float32)
    mel = _mel(fft_freqs).astype(np.float32)[None, :]  # (1, K-1)
    up = (mel - left) / (center - left)  # (F, K-1)
    down = (right - mel) / (right - center)
    if options.vtln_warp == 1.0:
        # Triangles linear in mel (not Hz).
        weights = np.maximum(0.0, np.minimum(up, down))
    else:
        # With warped edges torchaudio assigns slopes by strict regions instead of min/max.
        rising = (mel > left) & (mel <= center)
        falling = (mel > center) & (mel < right)
        weights = np.where(rising, up, np.where(falling, down, 0.0))
    # The Nyquist bin gets a zero column: (F, K).
    weights = np.pad(weights.astype(np.float32), ((0, 0), (0, 1)))
    weights.flags.writeable = False
    return weights


def mel_banks(**options: Any) -> NDArray[np.float32]:
    """Kaldi mel filterbank matrix ``(num_mel_bins, padded_window_size // 2 + 1)``, float32.

    Takes the ``fbank`` options (e.g. ``num_mel_bins=128``); the result is cached per option set and
    read-only. The last column (Nyquist bin) is zero, as in torchaudio.
    """
    return _mel_banks_cached(_bank_key(FbankOptions(**options)))


def mel_band_centers(options: FbankOptions) -> NDArray[np.float64]:
    """Centre frequency in Hz of each of the ``num_mel_bins`` bands (without VTLN warping): the
    peaks of the triangles, equally spaced on the mel scale between ``low_freq`` and
    ``high_freq``."""
    mel_low = _mel(options.low_freq)
    mel_delta = (_mel(options.effective_high_freq) - mel_low) / (options.num_mel_bins + 1)
    return _inverse_mel(mel_low + mel_delta * np.arange(1, options.num_mel_bins + 1))


# A mel band covers a few FFT bins and its neighbours the next few, so the (T, K) x (K, M) product
# is split into groups of consecutive bands, each multiplied with only the bins it covers: an
# eighth of the full product's work at 128 bands.
_MEL_GROUPS = 8


@dataclasses.dataclass(frozen=True)
class _MelGroup:
    bands: slice  # consecutive mel bands
    bins: slice  # the FFT bins they cover
    weights: NDArray[np.float32]  # (bins, bands)


def _mel_groups(banks: NDArray[np.float32]) -> tuple[_MelGroup, ...]:
    """Split a ``(M, K)`` mel bank into `_MEL_GROUPS` groups of bands with their bin ranges."""
    groups = []
    for bands in np.array_split(np.arange(banks.shape[0]), _MEL_GROUPS):
        if bands.size == 0:  # fewer bands than groups
            continue
        covered = np.flatnonzero(banks[bands].any(axis=0))
        bins = slice(covered[0], covered[-1] + 1) if covered.size else slice(0, 0)
        weights = np.ascontiguousarray(banks[bands, bins].T)
        groups.append(_MelGroup(slice(bands[0], bands[-1] + 1), bins, weights))
    return tuple(groups)


@functools.lru_cache(maxsize=32)
def _mel_groups_cached(options: FbankOptions) -> tuple[_MelGroup, ...]:
    return _mel_groups(_mel_banks_cached(options))


def _mel_product(
    spectrum: NDArray[np.float32], groups: tuple[_MelGroup, ...], out: NDArray[np.float32]
) -> NDArray[np.float32]:
    """``(N, K)`` spectrum times the grouped mel bank, written to ``out`` ``(N, M)``."""
    for group in groups:
        out[:, group.bands] = spectrum[:, group.bins] @ group.weights
    return out


def _bank_key(options: FbankOptions) -> FbankOptions:
    """Options with the fields the mel bank ignores reset, so equal banks share one cache entry."""
    return FbankOptions(
        num_mel_bins=options.num_mel_bins,
        frame_length=options.frame_length,
        round_to_power_of_two=options.round_to_power_of_two,
        sample_frequency=options.sample_frequency,
        low_freq=options.low_freq,
        high_freq=options.high_freq,
        vtln_low=options.vtln_low,
        vtln_high=options.vtln_high,
        vtln_warp=options.vtln_warp,
    )


# ----------------------------------------------------------------------------------------------
# Framing and per-frame processing.
#
# All clips of a call are laid out in one flat signal; a frame is a start offset into it. Frames are
# then processed in blocks small enough to stay in cache, on a thread pool (NumPy, SciPy's FFT and
# BLAS release the GIL), so a batch costs one pass whatever its shape.

_BLOCK_FRAMES = 256  # ~1.5 MB of float64 work buffers per block; 512 starts BLAS threads


def extend_signal(signals: Any, options: FbankOptions, xp: Any = np) -> Any:
    """``(..., S)`` -> ``(..., S')``: the signal framing reads (docs/numerics.md, Framing);
    identity with ``snip_edges``. ``xp`` is the array module (``numpy`` or ``jax.numpy``)."""
    if options.snip_edges:
        return signals
    # Symmetric reflection (the edge sample repeats). Left: the first `pad` samples reversed, or
    # drop -pad samples when pad < 0; right: the whole signal reversed.
    pad = options.window_size // 2 - options.window_shift // 2
    reversed_signals = signals[..., ::-1]
    left = reversed_signals[..., signals.shape[-1] - pad :] if pad > 0 else signals[..., :0]
    body = signals if pad >= 0 else signals[..., -pad:]
    return xp.concatenate([left, body, reversed_signals], axis=-1)


def _frame_starts(offsets: NDArray, counts: NDArray, shift: int) -> NDArray[np.intp]:
    """Start of every frame in the flat signal: clip ``b`` has ``counts[b]`` frames from
    ``offsets[b]`` on, ``shift`` apart. Returns ``(sum counts,)``."""
    first = np.cumsum(counts) - counts  # (B,) index of each clip's first frame
    frame = np.arange(counts.sum())  # (N,)
    return np.repeat(offsets, counts) + (frame - np.repeat(first, counts)) * shift


def _log_energy(frames: NDArray, energy_floor: float) -> NDArray:
    """``log(max(sum x^2, eps))`` per frame of ``(n, L)`` ``frames``, floored at
    ``log(energy_floor)``; summed in float64 so a float32 frame's 400-term sum adds no rounding."""
    energy = np.einsum("nl,nl->n", frames, frames, dtype=np.float64)  # (n,)
    energy = np.log(np.maximum(energy, EPSILON))
    return energy if energy_floor == 0.0 else np.maximum(energy, math.log(energy_floor))


class _Workspace(threading.local):
    """Per-thread scratch arrays, reused across blocks and calls: fresh multi-MB temporaries
    cost more in page faults than the arithmetic done in them."""

    def __init__(self) -> None:
        self.arrays: dict[tuple[str, tuple[int, ...], type], NDArray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type) -> NDArray:
        """An uninitialised ``shape`` array, a view of a buffer kept per name, trailing shape and
        dtype (its first axis grows as needed)."""
        key = (name, shape[1:], dtype)
        array = self.arrays.get(key)
        if array is None or array.shape[0] < shape[0]:
            array = self.arrays[key] = np.empty((max(shape[0], _BLOCK_FRAMES), *shape[1:]), dtype)
        return array[: shape[0]]


_WORKSPACE = _Workspace()


def _frame_view(span: NDArray, options: FbankOptions) -> NDArray:
    """``(n, L)`` frames of ``span``, one every shift samples from its start, as a view."""
    return np.lib.stride_tricks.sliding_window_view(span, options.window_size)[
        :: options.window_shift
    ]


def _preemphasised_frames(
    span: NDArray, raw: NDArray, options: FbankOptions, dithered: bool
) -> NDArray:
    """``(n, L)`` frames with ``y[j] = x[j] - c x[j-1]`` in every column but the first (the caller
    sets that one). Undithered frames overlap, so the signal ``span`` is pre-emphasised once and
    framed (a view); dithered frames ``raw`` are each their own signal."""
    c = options.preemphasis_coefficient
    if c == 0.0:
        return raw
    if dithered:
        emphasised = raw.copy()
        emphasised[:, 1:] -= c * raw[:, :-1]
        return emphasised
    emphasised = _WORKSPACE.get("preemphasised", span.shape, span.dtype)
    np.multiply(span[:-1], c, out=emphasised[1:])
    np.subtract(span[1:], emphasised[1:], out=emphasised[1:])
    return _frame_view(emphasised, options)


def _window_frames(
    span: NDArray, raw: NDArray, means: NDArray, options: FbankOptions, dithered: bool, out: NDArray
) -> None:
    """DC removal, pre-emphasis and window of the ``(n, L)`` frames ``raw`` (means ``(n,)``) in
    one pass, written to ``out`` ``(n, L)``: ``w[j] (p[j] - (1 - c) m)`` with ``p`` the
    pre-emphasised frame, equal in exact arithmetic to pre-emphasising the DC-free frame; the
    first sample, whose predecessor is itself, gets ``w[0] (1 - c) (s[0] - m)``."""
    retained = out.dtype.type(1.0 - options.preemphasis_coefficient)
    emphasised = _preemphasised_frames(span, raw, options, dithered)
    np.subtract(emphasised, (retained * means)[:, None], out=out)
    out[:, 0] = retained * (raw[:, 0] - means)
    out *= window_function(options)


def _power_spectrum(padded: NDArray, use_power: bool) -> NDArray[np.float32]:
    """``(n, P)`` real frames -> ``(n, K)`` float32 power (or magnitude) spectrum, in a per-thread
    buffer. SciPy's FFT: several times faster than numpy.fft on these short rows."""
    spectrum = scipy.fft.rfft(padded, axis=-1)  # (n, K) complex, ours to overwrite
    parts = spectrum.view(padded.dtype)  # (n, 2K): re, im, re, im, ...
    np.square(parts, out=parts)
    power = _WORKSPACE.get("power", spectrum.shape, np.float32)
    np.add(parts[:, 0::2], parts[:, 1::2], out=power)
    return power if use_power else np.sqrt(power, out=power)


def _block_features(
    span: NDArray,
    options: FbankOptions,
    rng: np.random.Generator | None,
    out: NDArray[np.float32],
) -> None:
    """The Kaldi pipeline (docs/numerics.md, Per-frame pipeline) for the ``n`` frames that start
    every shift samples from the start of the signal ``span`` (``((n - 1) shift + L,)``, float32
    or float64: the precision of the frames and FFT), written to ``out`` ``(n, F)``."""
    n, size, dtype = out.shape[0], options.window_size, span.dtype
    raw = _frame_view(span, options)  # (n, L), a view
    dithered = options.dither != 0.0
    if dithered:
        # Fresh noise per frame: overlapping samples get different noise in each frame.
        raw = raw + (options.dither * rng.standard_normal((n, size))).astype(dtype)
    means = raw.mean(axis=-1) if options.remove_dc_offset else np.zeros(n, dtype)  # (n,)
    # htk_compat only decides where the energy column goes: last, else first.
    energy_column = options.num_mel_bins if options.htk_compat else 0
    mel = out[:, :-1] if options.htk_compat else out[:, 1:]
    if not options.use_energy:
        mel = out
    elif options.raw_energy:
        out[:, energy_column] = _log_energy(raw - means[:, None], options.energy_floor)
    padded = _WORKSPACE.get("padded", (n, options.padded_window_size), dtype)  # (n, P)
    padded[:, size:] = 0.0
    _window_frames(span, raw, means, options, dithered, out=padded[:, :size])
    if options.use_energy and not options.raw_energy:
        out[:, energy_column] = _log_energy(padded, options.energy_floor)  # padding adds nothing
    power = _power_spectrum(padded, options.use_power)  # (n, K)
    _mel_product(power, _mel_groups_cached(_bank_key(options)), out=mel)  # (n, M)
    if options.use_log_fbank:
        np.log(np.maximum(mel, np.float32(EPSILON), out=mel), out=mel)


# Past a few threads the blocks' short NumPy calls queue on the GIL: on a 16-core host, 10-s clips
# at batch 64 took 2.1-2.2 ms/clip with 4 threads, 2.3 with 8 and 3.4 with 16.
_MAX_THREADS = 4


@functools.cache
def _thread_pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, _MAX_THREADS))


def _clip_blocks(counts: NDArray) -> list[slice]:
    """Blocks of at most `_BLOCK_FRAMES` consecutive frames of one clip, starting at each clip's
    first frame, so a clip's frames fall into the same blocks whatever clips share the call (BLAS
    rounds a row of the mel product by its place in its block: seen 9e-8 of a log energy)."""
    blocks = []
    for first, count in zip(np.cumsum(counts) - counts, counts, strict=True):
        blocks += [
            slice(first + i, first + min(i + _BLOCK_FRAMES, count))
            for i in range(0, count, _BLOCK_FRAMES)
        ]
    return blocks


def _features(
    signal: NDArray,
    starts: NDArray[np.intp],
    counts: NDArray[np.intp],
    options: FbankOptions,
    rng: np.random.Generator | None,
    dtype: type,
) -> NDArray[np.float32]:
    """Features of the frames of flat ``signal`` ``(S,)`` at ``starts`` -> ``(N, F)``; ``counts``
    ``(B,)`` are the frames of each clip, in order (a clip's frames are one shift apart). The
    frames and their FFT are computed in ``dtype``.

    Blocks of frames (`_clip_blocks`) run on a thread pool, each through the whole pipeline. The
    mel product stays in the blocks: one product over all frames would start BLAS's own threads,
    which spin against a busy core (measured 5x slower on a loaded 2-core machine).
    """
    output = np.empty((starts.size, options.num_features), dtype=np.float32)  # (N, F)
    blocks = _clip_blocks(counts)
    if options.dither != 0.0:
        # One child generator per block: reproducible for a given rng, whatever the threading.
        rngs = (rng or np.random.default_rng()).spawn(len(blocks))
    else:
        rngs = [None] * len(blocks)

    def run(block: slice, block_rng: np.random.Generator | None) -> None:
        first = starts[block.start]
        span = signal[first : first + samples_for_frames(block.stop - block.start, options)]
        # Converted block by block, while in cache, rather than the whole signal up front.
        _block_features(span.astype(dtype, copy=False), options, block_rng, output[block])

    if len(blocks) == 1:
        run(blocks[0], rngs[0])
    else:
        list(_thread_pool().map(run, blocks, rngs))
    return output


def _subtract_mean(
    features: NDArray[np.float32], counts: NDArray, options: FbankOptions
) -> NDArray[np.float32]:
    """Per clip, subtract each column's mean over the clip's frames (``(N, F)`` stacked clips)."""
    if not options.subtract_mean or features.shape[0] == 0:
        return features
    kept = counts > 0
    first = (np.cumsum(counts) - counts)[kept]
    sums = np.add.reduceat(features.astype(np.float64), first, axis=0)  # (B_kept, F)
    means = (sums / counts[kept][:, None]).astype(np.float32)
    return features - np.repeat(means, counts[kept], axis=0)


# ----------------------------------------------------------------------------------------------
# Input checks.


def as_signal_array(waveform: Any, name: str = "waveform") -> NDArray[np.floating]:
    """A float array view of ``waveform``; integer/bool/complex audio is rejected, not rescaled."""
    array = np.asarray(waveform)
    if array.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got ragged or object data")
    if not np.issubdtype(array.dtype, np.floating):
        hint = ""
        if np.issubdtype(array.dtype, np.integer):
            hint = (
                "; AST expects float audio in [-1, 1]: scale integer PCM explicitly, e.g. "
                "x.astype(np.float32) / 32768 for int16"
            )
        raise TypeError(f"{name} must have a floating dtype, got {array.dtype}{hint}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array.reshape(-1)))
        raise ValueError(
            f"{name} contains {bad.size} NaN/Inf sample(s), first at flat index {bad[0]}"
        )
    return array


def _check_length(num_samples: int, options: FbankOptions, name: str) -> None:
    if num_samples < options.window_size:
        raise ValueError(
            f"{name} has {num_samples} samples, shorter than one analysis window "
            f"({options.window_size} samples = {options.frame_length:g} ms at "
            f"{options.sample_frequency:g} Hz); no frame can be computed"
        )


def _too_short(num_samples: int, options: FbankOptions) -> bool:
    return num_samples < options.min_duration * options.sample_frequency


# ----------------------------------------------------------------------------------------------
# Public fbank API.


def fbank(
    waveform: ArrayLike,
    *,
    channel: int = -1,
    rng: np.random.Generator | None = None,
    **options: Any,
) -> NDArray[np.float32]:
    """Kaldi log-mel filterbank of one signal, as ``torchaudio.compliance.kaldi.fbank``.

    Args:
      waveform: float audio, ``(S,)`` or torchaudio-style ``(C, S)``. Integer PCM is rejected
        (``TypeError``): scale it to [-1, 1] explicitly first.
      channel: row of a ``(C, S)`` input to use; negative values mean row 0 (as torchaudio).
        Ignored for 1-D input.
      rng: NumPy ``Generator`` drawing the dither noise; ``None`` uses fresh OS entropy. Only used
        when ``dither != 0``.
      **options: any field of ``FbankOptions`` (torchaudio's keyword names, units and defaults:
        blackman_coeff, dither, energy_floor, frame_length, frame_shift, high_freq, htk_compat,
        low_freq, min_duration, num_mel_bins, preemphasis_coefficient, raw_energy,
        remove_dc_offset, round_to_power_of_two, sample_frequency, snip_edges, subtract_mean,
        use_energy, use_log_fbank, use_power, vtln_high, vtln_low, vtln_warp, window_type).

    Returns:
      float32 ``(T, F)``: frames by mel bins, plus an energy column (last if ``htk_compat``, else
      first) when ``use_energy``. A signal shorter than ``min_duration`` gives ``(0, F)``
      (torchaudio returns a 1-D empty tensor there; we keep the 2-D shape).

    Raises:
      TypeError: unknown option name, or non-float audio.
      ValueError: invalid option value; empty, non-finite, 3-D or too-short (< one window) audio;
        ``channel`` out of range.
    """
    opts = FbankOptions(**options)
    signal = _select_channel(as_signal_array(waveform), channel)
    features, _ = _fbank_equal_lengths(signal[None], opts, rng)
    return features


def _select_channel(array: NDArray, channel: int) -> NDArray:
    if array.ndim == 1:
        return array
    if array.ndim != 2:
        raise ValueError(f"waveform must be (S,) or (C, S), got shape {array.shape}")
    row = max(channel, 0)
    if row >= array.shape[0]:
        raise ValueError(f"channel={channel} is out of range for {array.shape[0]} channel(s)")
    return array[row]


def fbank_batch(
    waveforms: ArrayLike | Sequence[ArrayLike],
    *,
    rng: np.random.Generator | None = None,
    **options: Any,
) -> NDArray[np.float32] | list[NDArray[np.float32]]:
    """``fbank`` of many clips in one vectorised pass (no Python loop over clips or frames).

    Args:
      waveforms: an equal-length batch ``(B, S)``, or a sequence of 1-D clips of any lengths.
      rng: dither noise generator, as in ``fbank``.
      **options: ``fbank`` options.

    Returns:
      ``(B, T, F)`` float32 for a ``(B, S)`` array; a list of ``(T_i, F)`` float32 arrays for a
      sequence. Each entry equals ``fbank`` of that clip alone (dither aside).

    Raises:
      TypeError, ValueError: as ``fbank``; the message names the offending clip.
    """
    opts = FbankOptions(**options)
    if isinstance(waveforms, np.ndarray) and waveforms.dtype != object:
        batch = as_signal_array(waveforms, "waveforms")
        features, counts = _fbank_equal_lengths(batch, opts, rng)
        return features.reshape(counts.size, -1, opts.num_features)
    if not isinstance(waveforms, Sequence) or isinstance(waveforms, str | bytes):
        raise TypeError(
            f"waveforms must be a (B, S) array or a sequence of 1-D arrays, got {type(waveforms)}"
        )
    clips = [as_signal_array(clip, f"waveforms[{i}]") for i, clip in enumerate(waveforms)]
    features, counts = _fbank_ragged(clips, opts, rng)
    return np.split(features, np.cumsum(counts)[:-1])


def fbank_stacked(
    waveforms: NDArray | list[NDArray],
    options: FbankOptions,
    *,
    rng: np.random.Generator | None = None,
    name: str = "waveforms",
    dtype: type = np.float64,
) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
    """Features of every clip stacked along frames, for callers that lay them out themselves.

    Args:
      waveforms: a float ``(B, S)`` array, or a list of float 1-D clips of any lengths (both
        already checked with `as_signal_array`).
      options: fbank options.
      rng: dither noise generator, as in ``fbank``.
      name: the argument named in errors.
      dtype: precision of the per-frame arithmetic and the FFT: ``np.float64`` (the default,
        what the other functions use) or ``np.float32`` (torchaudio's precision: ~1.7x faster,
        bands far below a frame's peak less accurate; docs/numerics.md, Precision).

    Returns:
      ``(sum T_i, F)`` float32 features, clip after clip, and the ``(B,)`` frame counts ``T_i``.
    """
    if isinstance(waveforms, np.ndarray):
        return _fbank_equal_lengths(waveforms, options, rng, name, dtype)
    return _fbank_ragged(waveforms, options, rng, name, dtype)


def _fbank_equal_lengths(
    batch: NDArray,
    options: FbankOptions,
    rng: np.random.Generator | None,
    name: str = "waveforms",
    dtype: type = np.float64,
) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
    """``(B, S)`` -> stacked features ``(B*T, F)`` and frame counts ``(B,)`` (all ``T``).
    ``name`` is the argument named in errors; ``dtype`` as in `fbank_stacked`."""
    if batch.ndim != 2:
        raise ValueError(f"{name} must be a (B, S) batch, got shape {batch.shape}")
    _check_length(batch.shape[-1], options, f"each clip in {name}")
    count = 0 if _too_short(batch.shape[-1], options) else num_frames(batch.shape[-1], options)
    extended = np.ascontiguousarray(extend_signal(batch, options))  # (B, S')
    offsets = np.arange(batch.shape[0]) * extended.shape[-1]
    counts = np.full(batch.shape[0], count)
    starts = _frame_starts(offsets, counts, options.window_shift)  # (B*T,)
    features = _features(extended.reshape(-1), starts, counts, options, rng, dtype)
    return _subtract_mean(features, counts, options), counts


def _fbank_ragged(
    clips: list[NDArray],
    options: FbankOptions,
    rng: np.random.Generator | None,
    name: str = "waveforms",
    dtype: type = np.float64,
) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
    """1-D clips of any lengths -> stacked features ``(sum T_i, F)`` and counts ``(B,)``; all
    frames are processed together. ``name`` is the argument named in errors; ``dtype`` as in
    `fbank_stacked`."""
    if not clips:
        raise ValueError(f"{name} is an empty sequence")
    for i, clip in enumerate(clips):
        if clip.ndim != 1:
            raise ValueError(f"{name}[{i}] must be 1-D, got shape {clip.shape}")
        _check_length(clip.shape[0], options, f"{name}[{i}]")
    extended = [extend_signal(clip, options) for clip in clips]
    lengths = np.array([clip.shape[0] for clip in extended])  # (B,)
    counts = np.array(
        [
            0 if _too_short(clip.shape[0], options) else num_frames(clip.shape[0], options)
            for clip in clips
        ]
    )  # (B,)
    starts = _frame_starts(np.cumsum(lengths) - lengths, counts, options.window_shift)
    signal = np.concatenate(extended, dtype=np.result_type(*extended))  # (sum S'_i,)
    features = _features(signal, starts, counts, options, rng, dtype)
    return _subtract_mean(features, counts, options), counts
