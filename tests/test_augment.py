"""SpecAugment, noise, time shift and mixup against the original recipe's rules (the recipe and its
augmentations: docs/training.md)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ast_jax.training.augment import (
    MIXUP_ALPHA,
    add_noise,
    mask_along_axis,
    mixup,
    normalize,
    roll_time,
    spec_augment,
    warp_frequency,
    warp_mel_bins,
)
from ast_jax.training.config import TrainConfig
from ast_jax.training.step import augment_features

B, T, F = 256, 40, 24
# The warp maps bin centres Hz -> mel -> Hz -> mel in float32: a few ulps of the mel values (~3000).
WARP_IDENTITY_TOL = 1e-5


@pytest.fixture(scope="module")
def features():
    # Strictly negative log-mel values: a masked cell (0.0) can never be mistaken for data.
    return -1.0 - jax.random.uniform(jax.random.key(0), (B, T, F))


def _masked(x, axis):
    """Per example, the masked indices along ``axis`` (cells equal to 0.0 across the other)."""
    other = 2 if axis == 1 else 1
    return np.asarray((x == 0.0).all(axis=other))  # (B, size)


@pytest.mark.parametrize(("axis", "param"), [(1, 12), (2, 7), (2, 1)])
def test_mask_widths_uniform_in_range(features, axis, param):
    x = mask_along_axis(jax.random.key(1), features, param, axis)
    masked = _masked(x, axis)
    widths = masked.sum(-1)
    assert widths.min() == 0 and widths.max() == param - 1  # {0..param-1}, both ends hit
    # One contiguous run per example.
    for row in masked[widths > 0]:
        run = np.flatnonzero(row)
        assert run[-1] - run[0] + 1 == run.size
    # Everything outside the mask is untouched.
    keep = ~masked[:, :, None] if axis == 1 else ~masked[:, None, :]
    np.testing.assert_array_equal(np.where(keep, x, 0), np.where(keep, features, 0))


def test_mask_matches_torchaudio_formula(features):
    key = jax.random.key(3)
    width_key, start_key = jax.random.split(key)
    value = np.asarray(jax.random.uniform(width_key, (B,))) * 9
    start = np.asarray(jax.random.uniform(start_key, (B,))) * (T - value)
    masked = _masked(mask_along_axis(key, features, 9, axis=1), 1)
    for row, v, v0 in zip(masked, value, start, strict=True):
        expected = np.zeros(T, bool)
        expected[int(v0) : int(v0) + int(v)] = True
        np.testing.assert_array_equal(row, expected)


def test_zero_param_skips_and_errors(features):
    assert mask_along_axis(jax.random.key(0), features, 0, 1) is features
    with pytest.raises(ValueError, match="mask_param"):
        mask_along_axis(jax.random.key(0), features, T + 1, 1)
    with pytest.raises(ValueError, match="axis"):
        mask_along_axis(jax.random.key(0), features, 3, 0)


def test_spec_augment_masks_both_axes(features):
    x = spec_augment(jax.random.key(4), features, freqm=8, timem=10)
    assert _masked(x, 2).sum(-1).max() > 0 and _masked(x, 1).sum(-1).max() > 0


def test_masks_are_in_the_log_domain_before_normalisation(features):
    config = TrainConfig(freqm=8, timem=10, noise=0.0, time_shift=0)
    mean, std = -3.0, 2.0
    out = augment_features(jax.random.key(5), features, config, mean, std)
    # Masked cells hold log-mel 0.0, which normalises to (0 - mean) / (2 std), not to 0.
    mask_key = jax.random.split(jax.random.key(5), 3)[0]
    masked = spec_augment(mask_key, features, 8, 10) == 0.0
    assert masked.any()
    np.testing.assert_allclose(out[masked], -mean / (2 * std), rtol=1e-6)
    np.testing.assert_allclose(out[~masked], normalize(features, mean, std)[~masked], rtol=1e-6)


def test_noise_and_roll(features):
    noisy = add_noise(jax.random.key(6), features, scale=0.1)
    delta = np.asarray(noisy - features)
    assert delta.min() >= 0 and delta.max() < 0.1
    rolled = roll_time(jax.random.key(7), features, max_shift=10)
    shift = jax.random.randint(jax.random.key(7), (B, 1), -10, 10)
    for b in range(0, B, 37):
        np.testing.assert_array_equal(rolled[b], jnp.roll(features[b], int(shift[b, 0]), axis=0))
    assert set(np.unique(shift)) <= set(range(-10, 10))


def _kaldi_centers_hz(num_bins, low=20.0, high=8000.0):
    """Kaldi's mel filterbank centres in Hz (float64)."""
    mel = lambda f: 1127.0 * np.log1p(f / 700.0)
    centers = np.linspace(mel(low), mel(high), num_bins + 2)[1:-1]
    return 700.0 * np.expm1(centers / 1127.0)


def test_warp_mel_bins_moves_a_peak_by_the_factor():
    num_bins, peak = 64, 30
    x = jnp.zeros((3, 2, num_bins)).at[:, :, peak].set(1.0)  # (B, T, F): one lit bin
    alpha = jnp.array([1.0, 1.1, 0.9])
    y = np.asarray(warp_mel_bins(x, alpha))
    np.testing.assert_allclose(y[0], x[0], atol=WARP_IDENTITY_TOL)
    centers = _kaldi_centers_hz(num_bins)
    for b in (1, 2):
        # The energy moves to the bins around alpha * (the peak's frequency).
        target = float(alpha[b]) * centers[peak]
        lit = np.flatnonzero(y[b, 0] > 0)
        assert centers[lit.min()] <= target * 1.02 and centers[lit.max()] >= target * 0.98, lit
        assert abs(np.argmax(y[b, 0]) - np.argmin(np.abs(centers - target))) <= 1
        np.testing.assert_array_equal(y[b, 0], y[b, 1])  # the same warp for every frame
    # Up by 10%: the peak moves up; down: it moves down.
    assert np.argmax(y[1, 0]) > peak > np.argmax(y[2, 0])


def test_warp_frequency_draws_factors_in_range(features):
    assert warp_frequency(jax.random.key(0), features, 0.0) is features
    # A ramp along frequency: the warped value at a bin tells the source bin, so its shift.
    ramp = jnp.broadcast_to(jnp.arange(F, dtype=jnp.float32), (B, 1, F))
    warped = np.asarray(warp_frequency(jax.random.key(1), ramp, 0.2))
    mid = F // 2
    shift = warped[:, 0, mid] - mid  # < 0: spectrum moved up (alpha > 1)
    assert shift.min() < -0.5 and shift.max() > 0.5  # both directions drawn
    centers = _kaldi_centers_hz(F)
    source_hz = np.interp(warped[:, 0, mid], np.arange(F), centers)
    alpha = centers[mid] / source_hz
    assert alpha.min() >= 0.8 - 1e-3 and alpha.max() < 1.2 + 1e-3


def test_augment_features_frequency_warp():
    x = -1.0 - jnp.broadcast_to(jnp.arange(F, dtype=jnp.float32), (B, T, F)) / F
    config = TrainConfig(freqm=0, timem=0, noise=0.0, time_shift=0)
    plain = augment_features(jax.random.key(2), x, config, -1.5, 0.5)
    np.testing.assert_allclose(plain, normalize(x, -1.5, 0.5), rtol=1e-6)
    warped = augment_features(
        jax.random.key(2), x, dataclasses.replace(config, freq_warp=0.1), -1.5, 0.5
    )
    assert not np.allclose(warped, plain)
    expected = warp_frequency(jax.random.fold_in(jax.random.key(2), 1), x, 0.1)
    np.testing.assert_allclose(warped, normalize(expected, -1.5, 0.5), rtol=1e-6)
    with pytest.raises(ValueError, match="freq_warp"):
        TrainConfig(freq_warp=1.0)
    with pytest.raises(ValueError, match="freq_warp"):
        TrainConfig(freq_warp=-0.1)


def _original_mixup(first, second, lam):
    """The original recipe's two-clip mixup, written out in NumPy: each clip's mean removed, the
    partner cut or zero-padded to the first clip's length, mixed, the mixture's mean removed."""
    first, second = first - first.mean(), second - second.mean()
    partner = np.zeros_like(first)
    partner[: min(first.size, second.size)] = second[: first.size]
    mixed = lam * first + (1 - lam) * partner
    return mixed - mixed.mean()


def test_mixup_of_a_batch_follows_the_original():
    rng = np.random.default_rng(0)
    lengths = np.array([100, 60, 80, 120], np.int32)
    waves = np.zeros((4, 120), np.float32)
    for row, length in enumerate(lengths):
        waves[row, :length] = rng.normal(size=length) + 3.0 * row  # distinct means
    targets = np.eye(4, dtype=np.float32)
    key = jax.random.key(7)
    mixed, mixed_targets = mixup(key, waves, lengths, targets, probability=1.0)
    # The draws of `mixup`, from its key as it splits it.
    _, partner_key, lam_key = jax.random.split(key, 3)
    partners = np.asarray(jax.random.randint(partner_key, (4,), 0, 4))
    lams = np.asarray(jax.random.beta(lam_key, MIXUP_ALPHA, MIXUP_ALPHA, (4,)))
    assert MIXUP_ALPHA == 10.0 and 0.2 < lams.min() and lams.max() < 0.8
    for row, (partner, lam) in enumerate(zip(partners, lams, strict=True)):
        n, m = lengths[row], lengths[partner]
        expected = _original_mixup(waves[row, :n], waves[partner, :m], lam)
        np.testing.assert_allclose(mixed[row, :n], expected, atol=1e-5)
        assert not np.asarray(mixed[row, n:]).any()  # still zero past the clip's end
        # Label arithmetic: lam at the clip's classes, 1 - lam at the partner's (1 if shared).
        np.testing.assert_allclose(
            mixed_targets[row], lam * targets[row] + (1 - lam) * targets[partner], atol=1e-6
        )


def test_mixup_probability_selects_examples():
    waves = jnp.ones((64, 16)) * jnp.arange(64)[:, None]
    lengths, targets = jnp.full((64,), 16), jnp.eye(64)
    same, same_targets = mixup(jax.random.key(0), waves, lengths, targets, probability=0.0)
    assert same is waves and same_targets is targets
    mixed, _ = mixup(jax.random.key(0), waves, lengths, targets, probability=0.5)
    untouched = np.all(np.asarray(mixed) == np.asarray(waves), axis=1)
    # Each row is mixed with probability 1/2: 64 rows, 3 standard deviations is 12.
    assert 20 <= untouched.sum() <= 44
