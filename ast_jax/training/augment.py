"""Training-time augmentation as the original AST recipes apply it (docs/training.md,
Augmentation order).

Order per example, as the original: (mixup of waveforms, then fbank) -> SpecAugment on the
*unnormalised* log-mel features, masked values 0.0 in the log domain -> normalise
``(x - mean) / (2 std)`` -> noise -> circular time shift. Every step is a pure JAX function of an
explicit key over a whole batch, meant to run inside the jitted train step on the device: mixup on
the waveforms, the fbank (`ast_jax.frontend.jax_fbank`), then the feature-domain steps.

Shape legend: B batch, S samples, T frames, F mel bins, C classes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "MIXUP_ALPHA",
    "add_noise",
    "mask_along_axis",
    "mixup",
    "normalize",
    "roll_time",
    "spec_augment",
    "warp_frequency",
    "warp_mel_bins",
]

# The original draws the mixing weight from Beta(10, 10): mostly near 0.5, rarely below 0.3.
MIXUP_ALPHA = 10.0


def mask_along_axis(key: jax.Array, x: jax.Array, mask_param: int, axis: int) -> jax.Array:
    """One mask per example along ``axis`` of ``(B, T, F)``, as torchaudio's ``mask_along_axis``.

    Per example: ``v = U * mask_param``, ``v0 = U' * (size - v)``, frames/bins
    ``[floor(v0), floor(v0) + floor(v))`` are set to 0.0, so the width is uniform in
    ``{0, ..., mask_param - 1}``. ``mask_param == 0`` returns ``x`` unchanged.

    Args:
      key: PRNG key.
      x: ``(B, T, F)`` features.
      mask_param: the maximum width plus one (torchaudio's ``freq_mask_param``/``time_mask_param``).
      axis: 1 (time) or 2 (frequency).

    Returns:
      ``(B, T, F)``, same dtype.

    Raises:
      ValueError: ``axis`` not 1 or 2, or ``mask_param`` negative or larger than the axis.
    """
    if axis not in (1, 2):
        raise ValueError(f"axis must be 1 (time) or 2 (frequency), got {axis}")
    size = x.shape[axis]
    if not 0 <= mask_param <= size:
        raise ValueError(
            f"mask_param must be in [0, {size}] for an axis of {size}, got {mask_param}"
        )
    if mask_param == 0:
        return x
    width_key, start_key = jax.random.split(key)
    value = jax.random.uniform(width_key, (x.shape[0],)) * mask_param  # (B,)
    start = jax.random.uniform(start_key, (x.shape[0],)) * (size - value)  # (B,)
    first = jnp.floor(start)
    last = first + jnp.floor(value)  # torchaudio: start.long() + value.long()
    index = jnp.arange(size)  # (T,) or (F,)
    masked = (index >= first[:, None]) & (index < last[:, None])  # (B, size)
    masked = masked[:, :, None] if axis == 1 else masked[:, None, :]
    return jnp.where(masked, jnp.zeros((), x.dtype), x)


def _mel(hz: jax.Array | float) -> jax.Array:
    """Kaldi's mel scale, ``1127 ln(1 + f / 700)``."""
    return 1127.0 * jnp.log1p(jnp.asarray(hz) / 700.0)


def warp_mel_bins(
    x: jax.Array, alpha: jax.Array, *, low_freq: float = 20.0, high_freq: float = 8000.0
) -> jax.Array:
    """Scale the frequency axis of log-mel features by ``alpha`` per example (vocal tract length
    perturbation, Jaitly & Hinton 2013, on the mel bins rather than the FFT).

    Output bin ``j`` takes the value at frequency ``center_j / alpha`` (Hz), linearly interpolated
    between the bins' centres and clamped to the first/last bin, so ``alpha > 1`` moves the
    spectrum up (a shorter vocal tract) and ``alpha == 1`` returns ``x``. The bin centres are those
    of Kaldi's filterbank: ``F`` triangles equally spaced in mel between ``low_freq`` and
    ``high_freq`` (Hz; the defaults are the AST extractor's 20 Hz and Nyquist at 16 kHz).

    Args:
      x: ``(B, T, F)`` log-mel features (unnormalised or normalised).
      alpha: ``(B,)`` warp factors, > 0.
      low_freq, high_freq: the filterbank's edges in Hz.

    Returns:
      ``(B, T, F)``, same dtype.
    """
    num_bins = x.shape[2]
    low, high = _mel(low_freq), _mel(high_freq)
    step = (high - low) / (num_bins + 1)
    centers = low + step * jnp.arange(1, num_bins + 1)  # (F,) mel
    centers_hz = 700.0 * jnp.expm1(centers / 1127.0)  # (F,)
    source = (_mel(centers_hz / alpha[:, None]) - low) / step - 1.0  # (B, F) fractional bin
    source = jnp.clip(source, 0.0, num_bins - 1.0)
    below = jnp.floor(source).astype(jnp.int32)  # (B, F)
    above = jnp.minimum(below + 1, num_bins - 1)
    weight = (source - below).astype(x.dtype)[:, None, :]  # (B, 1, F)
    lower = jnp.take_along_axis(x, below[:, None, :], axis=2)  # (B, T, F)
    upper = jnp.take_along_axis(x, above[:, None, :], axis=2)
    return lower + weight * (upper - lower)


def warp_frequency(key: jax.Array, x: jax.Array, max_warp: float) -> jax.Array:
    """`warp_mel_bins` with ``alpha ~ U[1 - max_warp, 1 + max_warp)`` per example; 0 returns ``x``.

    ``(B, T, F)`` -> ``(B, T, F)``.
    """
    if max_warp == 0:
        return x
    alpha = jax.random.uniform(key, (x.shape[0],), minval=1.0 - max_warp, maxval=1.0 + max_warp)
    return warp_mel_bins(x, alpha)


def spec_augment(key: jax.Array, x: jax.Array, freqm: int, timem: int) -> jax.Array:
    """SpecAugment as the original: one frequency mask, then one time mask, per example.

    Apply to log-mel features *before* normalisation (masked values are 0.0 in the log domain).

    Args:
      key: PRNG key.
      x: ``(B, T, F)`` unnormalised log-mel features.
      freqm: frequency mask parameter (width in ``{0..freqm-1}`` bins); 0 skips.
      timem: time mask parameter (width in ``{0..timem-1}`` frames); 0 skips.

    Returns:
      ``(B, T, F)``.
    """
    freq_key, time_key = jax.random.split(key)
    x = mask_along_axis(freq_key, x, freqm, axis=2)
    return mask_along_axis(time_key, x, timem, axis=1)


def normalize(x: jax.Array, mean: float, std: float) -> jax.Array:
    """AST's normalisation ``(x - mean) / (2 std)`` (it targets a std of 0.5)."""
    return (x - mean) / (2.0 * std)


def add_noise(key: jax.Array, x: jax.Array, scale: float = 0.1) -> jax.Array:
    """The Speech Commands recipe's noise: ``x + U[0,1)^(T x F) * u * scale``, ``u ~ U[0,1)`` per
    example (the original: ``scale = 1/10``), on normalised features ``(B, T, F)``."""
    level_key, noise_key = jax.random.split(key)
    level = jax.random.uniform(level_key, (x.shape[0], 1, 1)) * scale  # (B, 1, 1)
    return x + jax.random.uniform(noise_key, x.shape, x.dtype) * level


def roll_time(key: jax.Array, x: jax.Array, max_shift: int = 10) -> jax.Array:
    """Circular shift along time by an integer in ``[-max_shift, max_shift - 1]`` per example, as
    the original's ``torch.roll(fbank, randint(-10, 10), 0)``; ``(B, T, F)`` -> ``(B, T, F)``."""
    if max_shift == 0:
        return x
    shift = jax.random.randint(key, (x.shape[0], 1), -max_shift, max_shift)  # (B, 1)
    source = (jnp.arange(x.shape[1]) - shift) % x.shape[1]  # (B, T): roll moves frame t to t+shift
    return jnp.take_along_axis(x, source[:, :, None], axis=1)


def mixup(
    key: jax.Array,
    waveforms: jax.Array,
    lengths: jax.Array,
    targets: jax.Array,
    probability: float,
    alpha: float = MIXUP_ALPHA,
) -> tuple[jax.Array, jax.Array]:
    """Mixup of waveforms as the original mixes two clips, for a whole batch on the device.

    Each example is mixed with probability ``probability`` with a partner drawn uniformly from the
    batch (the original draws it from the whole dataset; a shuffled batch is a uniform sample of
    it). A mix removes each clip's mean over its real samples, makes the partner the length of the
    example (cut, or zero beyond its own end), draws ``lam ~ Beta(alpha, alpha)``, takes
    ``lam * example + (1 - lam) * partner``, and removes the mixture's mean. Targets become
    ``lam * y + (1 - lam) * y_partner`` (a class both carry gets 1).

    Args:
      key: PRNG key.
      waveforms: ``(B, S)`` float32, each row zero beyond its length.
      lengths: ``(B,)`` real samples per row.
      targets: ``(B, C)`` multi-hot targets.
      probability: chance that an example is mixed (0 returns the inputs).
      alpha: Beta parameter.

    Returns:
      The mixed ``(B, S)`` waveforms (still zero beyond each row's length) and ``(B, C)`` targets.
    """
    if probability == 0:
        return waveforms, targets
    choose_key, partner_key, lam_key = jax.random.split(key, 3)
    batch, samples = waveforms.shape
    real = jnp.arange(samples) < lengths[:, None]  # (B, S)
    count = jnp.maximum(lengths, 1)[:, None].astype(waveforms.dtype)  # (B, 1)
    centred = jnp.where(real, waveforms - waveforms.sum(-1, keepdims=True) / count, 0.0)
    partner = jax.random.randint(partner_key, (batch,), 0, batch)  # (B,)
    lam = jax.random.beta(lam_key, alpha, alpha, (batch,))  # (B,)
    mixed = lam[:, None] * centred + (1.0 - lam[:, None]) * jnp.where(real, centred[partner], 0.0)
    mixed = jnp.where(real, mixed - mixed.sum(-1, keepdims=True) / count, 0.0)
    mix = jax.random.uniform(choose_key, (batch,)) < probability  # (B,)
    mixed_targets = lam[:, None] * targets + (1.0 - lam[:, None]) * targets[partner]
    return (
        jnp.where(mix[:, None], mixed, waveforms).astype(waveforms.dtype),
        jnp.where(mix[:, None], mixed_targets, targets).astype(targets.dtype),
    )
