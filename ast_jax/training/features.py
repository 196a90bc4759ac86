"""Training features on the host: unnormalised log-mel features computed by the NumPy extractor,
in chunks (for statistics) or in one cached array (the small-data path).

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ast_jax.files import save_npy
from ast_jax.frontend.audio import load_audio
from ast_jax.frontend.extractor import FeatureExtractor

__all__ = ["compute_features", "feature_chunks", "feature_stats", "raw_extractor"]

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


def feature_chunks(
    paths: Sequence[Path],
    extractor: FeatureExtractor,
    progress: Callable[[int], Any] | None = None,
) -> Iterator[NDArray[np.float32]]:
    """Unnormalised, padded log-mel features ``(b, T, F)`` of consecutive chunks of the files,
    computed by the NumPy extractor; memory bounded by one chunk.

    Args:
      paths: audio files (resampled to the extractor's rate on reading).
      extractor: the model's extractor; its normalisation is not applied.
      progress: called with the number of files done after each chunk.
    """
    extractor = raw_extractor(extractor)
    for start in range(0, len(paths), _CHUNK):
        clips = [load_audio(p, extractor.sampling_rate) for p in paths[start : start + _CHUNK]]
        yield extractor(clips, sampling_rate=extractor.sampling_rate)["input_values"]
        if progress is not None:
            progress(len(clips))


def compute_features(
    paths: Sequence[Path],
    extractor: FeatureExtractor,
    cache_dir: str | os.PathLike | None = None,
    progress: Callable[[int], Any] | None = None,
) -> NDArray[np.float32]:
    """Unnormalised, padded log-mel features of every file in one array, cached in
    ``cache_dir``: the small-data path (`ast_jax.training.loader.FeatureBatches`).

    Args:
      paths: B audio files (resampled to the extractor's rate on reading).
      extractor: the model's extractor; its normalisation is not applied.
      cache_dir: where ``features-<key>.npy`` is kept; None computes without caching.
      progress: called with the number of files done after each chunk.

    Returns:
      ``(B, T, F)`` float32.
    """
    paths = [Path(path) for path in paths]

    def compute() -> NDArray[np.float32]:
        return np.concatenate(list(feature_chunks(paths, extractor, progress)))

    key = _cache_key("features", paths, raw_extractor(extractor).to_dict())
    return _cached(None if cache_dir is None else Path(cache_dir) / f"features-{key}.npy", compute)


def feature_stats(chunks: Iterable[NDArray[np.floating]]) -> tuple[float, float]:
    """Mean and std of unnormalised features, padding included as the original, from an array
    ``(B, T, F)`` or chunks of it (`feature_chunks`), accumulated in float64.

    The original averages per-batch means and stds (batches of 1000); this pools all values, which
    differs only by the spread between batches.
    """
    if isinstance(chunks, np.ndarray):
        chunks = [chunks]
    count, total, squares = 0, 0.0, 0.0
    for chunk in chunks:
        values = np.asarray(chunk, np.float64)
        count += values.size
        total += values.sum()
        squares += np.square(values).sum()
    if count == 0:
        raise ValueError("no features to take statistics of")
    mean = total / count
    return float(mean), float(np.sqrt(max(squares / count - mean * mean, 0.0)))
