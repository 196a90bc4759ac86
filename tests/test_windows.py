"""Sliding windows: frame alignment, tail handling and independence from the block size."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ast_jax import FeatureExtractor, Windowing
from ast_jax.frontend.kaldi import num_frames
from ast_jax.frontend.windows import sliding_windows

OPTIONS = FeatureExtractor().fbank_options  # 25 ms frames every 10 ms at 16 kHz
WINDOWING = Windowing(window_frames=100, hop_frames=40, options=OPTIONS)


def _cut(signal: np.ndarray, cuts: list[int]) -> list[tuple[int, np.ndarray]]:
    """Windows of ``signal`` streamed as blocks split at ``cuts`` (repeats give empty blocks)."""
    edges = [0, *cuts, signal.size]
    blocks = [signal[a:b] for a, b in itertools.pairwise(edges)]
    return list(sliding_windows(blocks, WINDOWING))


@pytest.mark.parametrize("num_samples", [300, 400, 16000, 16239, 16240, 50000])
def test_windows_are_independent_of_block_sizes_and_cover_every_frame(num_samples):
    signal = np.random.default_rng(0).standard_normal(num_samples).astype(np.float32)
    whole = _cut(signal, [])
    cuts = sorted(np.random.default_rng(1).integers(0, num_samples + 1, size=40).tolist())
    pieces = _cut(signal, cuts)
    assert [start for start, _ in pieces] == [start for start, _ in whole]
    for (start, a), (_, b) in zip(whole, pieces, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, signal[start : start + a.size])
    assert len(whole) == WINDOWING.count(num_samples)
    # Windows start every hop; all but the last are full; together they cover every frame.
    starts = [start for start, _ in whole]
    assert starts == [k * WINDOWING.hop_samples for k in range(len(whole))]
    assert all(w.size == WINDOWING.window_samples for _, w in whole[:-1])
    last_start, last = whole[-1]
    assert last_start + last.size == num_samples or last.size == WINDOWING.window_samples
    covered = last_start // OPTIONS.window_shift + num_frames(last.size, OPTIONS)
    assert covered == num_frames(num_samples, OPTIONS)


def test_from_seconds_rounds_to_frames_and_checks_limits():
    windowing = Windowing.from_seconds(0.5, 0.25, max_frames=128, options=OPTIONS)
    assert (windowing.window_frames, windowing.hop_frames) == (50, 25)
    default = Windowing.from_seconds(None, None, max_frames=128, options=OPTIONS)
    assert (default.window_frames, default.hop_frames) == (128, 128)
    with pytest.raises(ValueError, match="longer than the model's input"):
        Windowing.from_seconds(2.0, None, max_frames=128, options=OPTIONS)
    # In the units the user gave: seconds, not frames.
    with pytest.raises(ValueError, match=r"hop of 1.5 s must be .* the window \(1 s\)"):
        Windowing.from_seconds(1.0, 1.5, max_frames=128, options=OPTIONS)
    with pytest.raises(ValueError, match=r"hop of 0 s must be between one frame \(0.01 s\)"):
        Windowing.from_seconds(1.0, 0.0, max_frames=128, options=OPTIONS)
    with pytest.raises(ValueError, match=r"shorter than one 0\.01 s frame"):
        Windowing.from_seconds(0.001, None, max_frames=128, options=OPTIONS)
