"""Training features computed once: unnormalised log-mel features and mixup waveforms, cached.

Features are the extractor's log-mel features padded to ``max_length`` but *not* normalised: the
train step applies SpecAugment before normalising, as the original does. They are computed once and
cached as ``.npy`` files keyed by the files (path, size, modification time) and the extractor's
config.

Shape legend: B examples, S samples, T frames (``max_length``), F mel bins.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ast_jax.files import save_npy
from ast_jax.frontend.audio import load_audio
from ast_jax.frontend.extractor import FeatureExtractor

__all__ = ["compute_features", "feature_stats", "load_waveforms", "raw_extractor"]

# Clips featurised per call: bounds the memory of one pass while keeping its vectorisation.
_CHUNK = 256


def _cache_key(kind: str, paths: Sequence[Path], settings: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps([kind, settings], sort_keys=True).encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _cached(path: Path | None, compute: Callable[[], NDArray]) -> NDArray:
    """``np.load(path)`` if it exists, else ``compute()`` saved there (atomically)."""
    if path is not None and path.is_file():
        return np.load(path)
    array = compute()
    if path is not None:
        save_npy(path, array)
    return array


def raw_extractor(extractor: FeatureExtractor) -> FeatureExtractor:
    """``extractor`` without normalisation: padded log-mel features, as the train step wants.

    Its statistics are reset too: they no longer change the output, so they must not change the
    cache key either."""
    return dataclasses.replace(extractor, do_normalize=False, mean=0.0, std=1.0)


def compute_features(
    paths: Sequence[Path],
    extractor: FeatureExtractor,
    cache_dir: str | os.PathLike | None = None,
    progress: Callable[[int], Any] | None = None,
) -> NDArray[np.float32]:
    """Unnormalised, padded log-mel features of every file, cached in ``cache_dir``.

    Args:
      paths: B audio files (resampled to the extractor's rate on reading).
      extractor: the model's extractor; its normalisation is not applied.
      cache_dir: where ``features-<key>.npy`` is kept; None computes without caching.
      progress: called with the number of files done after each chunk.

    Returns:
      ``(B, T, F)`` float32.
    """
    extractor = raw_extractor(extractor)
    paths = [Path(path) for path in paths]

    def compute() -> NDArray[np.float32]:
        chunks = []
        for start in range(0, len(paths), _CHUNK):
            clips = [load_audio(p, extractor.sampling_rate) for p in paths[start : start + _CHUNK]]
            chunks.append(extractor(clips, sampling_rate=extractor.sampling_rate)["input_values"])
            if progress is not None:
                progress(len(clips))
        return np.concatenate(chunks)

    key = _cache_key("features", paths, extractor.to_dict())
    return _cached(None if cache_dir is None else Path(cache_dir) / f"features-{key}.npy", compute)


def load_waveforms(
    paths: Sequence[Path],
    extractor: FeatureExtractor,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """Waveforms for mixup, cut to the samples ``max_length`` frames need, cached as features.

    Returns:
      ``(B, S)`` float32 zero-padded waveforms and ``(B,)`` their lengths.
    """
    needed = extractor.samples_needed
    paths = [Path(path) for path in paths]

    def compute() -> NDArray[np.float32]:
        # One extra column holds the length, so a single cached array carries both.
        out = np.zeros((len(paths), needed + 1), np.float32)
        for row, path in enumerate(paths):
            clip = load_audio(path, extractor.sampling_rate)[:needed]
            out[row, : clip.size], out[row, -1] = clip, clip.size
        return out

    settings = {"sampling_rate": extractor.sampling_rate, "samples": needed}
    key = _cache_key("waveforms", paths, settings)
    array = _cached(None if cache_dir is None else Path(cache_dir) / f"waves-{key}.npy", compute)
    return array[:, :-1], array[:, -1].astype(np.int64)


def feature_stats(features: NDArray[np.float32]) -> tuple[float, float]:
    """Mean and std of ``(B, T, F)`` unnormalised features, padding included as the original.

    The original averages per-batch means and stds (batches of 1000); this pools all values, which
    differs only by the spread between batches.
    """
    return float(features.mean(dtype=np.float64)), float(features.std(dtype=np.float64))
