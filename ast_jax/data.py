"""Training data: labelled audio lists, cached features and a prefetching batch loader.

Two dataset layouts:

- a folder of folders, ``root/<label>/**/*.wav`` (one label per clip; every audio format
  `ast_jax.audio.find_audio` knows);
- a CSV manifest, one clip per row: ``path,label[,label...]`` (paths relative to the CSV file;
  a cell may also hold several labels separated by ``;``; an optional header row starts with
  ``path``). Clips may carry several labels (multi-label).

Features are the extractor's log-mel features padded to ``max_length`` but *not* normalised: the
train step applies SpecAugment before normalising, as the original (AST_SPEC §3). They are computed
once and cached as ``.npy`` files keyed by the files (path, size, modification time) and the
extractor's config. `Loader` cuts shuffled, fixed-size batches (the train step compiles once), mixes
waveforms on the host when mixup is on, and prepares the next batches on a thread while the device
runs the current one.

Shape legend: B examples, S samples, T frames (``max_length``), F mel bins, C classes.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from numpy.typing import NDArray

from ast_jax.audio import find_audio, load_audio
from ast_jax.augment import MIXUP_ALPHA, mixup_targets, mixup_waveforms
from ast_jax.features import FeatureExtractor

__all__ = [
    "Dataset",
    "Loader",
    "batch_indices",
    "compute_features",
    "feature_stats",
    "folder_dataset",
    "load_dataset",
    "load_waveforms",
    "manifest_dataset",
    "raw_extractor",
    "split_dataset",
]

# Clips featurised per call: bounds the memory of one pass while keeping its vectorisation.
_CHUNK = 256


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Audio files with multi-hot targets.

    Attributes:
      paths: the B files.
      targets: ``(B, C)`` float32, 1.0 at each clip's labels.
      labels: the C class names, in target column order.
    """

    paths: tuple[Path, ...]
    targets: NDArray[np.float32]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.targets.shape != (len(self.paths), len(self.labels)):
            raise ValueError(
                f"targets must be (num_paths, num_labels) = ({len(self.paths)}, "
                f"{len(self.labels)}), got {self.targets.shape}"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: Sequence[int] | NDArray[np.integer]) -> Dataset:
        """The examples at ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.intp)
        return Dataset(tuple(self.paths[i] for i in indices), self.targets[indices], self.labels)

    @property
    def is_multi_label(self) -> bool:
        """Whether any clip carries more than one label."""
        return bool((self.targets.sum(-1) > 1).any())


def _multi_hot(
    clip_labels: list[list[str]], labels: Sequence[str] | None
) -> tuple[NDArray[np.float32], tuple[str, ...]]:
    """Targets ``(B, C)`` and the label tuple (sorted names found, unless ``labels`` is given)."""
    found = sorted({label for names in clip_labels for label in names})
    labels = tuple(found if labels is None else labels)
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(found) - set(index))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the model's labels {list(labels)}")
    targets = np.zeros((len(clip_labels), len(labels)), np.float32)
    for row, names in enumerate(clip_labels):
        targets[row, [index[name] for name in names]] = 1.0
    return targets, labels


def folder_dataset(root: str | os.PathLike, labels: Sequence[str] | None = None) -> Dataset:
    """``root/<label>/...`` audio files, one label (the folder name) per clip.

    Args:
      root: the dataset directory; each subdirectory is a class.
      labels: class order to use (e.g. a base model's); default: sorted folder names.

    Raises:
      FileNotFoundError: ``root`` has no subdirectory, or a class folder holds no audio.
      ValueError: a folder name not in ``labels``.
    """
    root = Path(root)
    folders = sorted(child for child in root.iterdir() if child.is_dir()) if root.is_dir() else []
    if not folders:
        raise FileNotFoundError(f"{root} holds no class folders (expected root/<label>/*.wav)")
    paths, clip_labels = [], []
    for folder in folders:
        for path in find_audio(folder):
            paths.append(path)
            clip_labels.append([folder.name])
    targets, labels = _multi_hot(clip_labels, labels)
    return Dataset(tuple(paths), targets, labels)


def manifest_dataset(manifest: str | os.PathLike, labels: Sequence[str] | None = None) -> Dataset:
    """Clips listed in a CSV file: ``path,label[,label...]`` per row (see the module docstring).

    Raises:
      ValueError: an empty manifest, a row without labels, or a label not in ``labels``.
    """
    manifest = Path(manifest)
    with open(manifest, newline="", encoding="utf-8") as file:
        rows = [row for row in csv.reader(file) if row and any(cell.strip() for cell in row)]
    if rows and rows[0][0].strip().lower() == "path":
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{manifest} lists no clips")
    paths, clip_labels = [], []
    for line, row in enumerate(rows, 1):
        names = [name.strip() for cell in row[1:] for name in cell.split(";") if name.strip()]
        if not names:
            raise ValueError(f"{manifest}: row {line} ({row[0]!r}) has no label")
        paths.append(manifest.parent / row[0].strip())
        clip_labels.append(names)
    targets, labels = _multi_hot(clip_labels, labels)
    return Dataset(tuple(paths), targets, labels)


def load_dataset(path: str | os.PathLike, labels: Sequence[str] | None = None) -> Dataset:
    """`manifest_dataset` for a ``.csv`` file, else `folder_dataset`."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return manifest_dataset(path, labels)
    return folder_dataset(path, labels)


def split_dataset(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """A random ``(train, validation)`` split with ``round(fraction * B)`` validation clips.

    Raises:
      ValueError: ``fraction`` outside (0, 1) or a split that would leave either part empty.
    """
    count = round(fraction * len(dataset))
    if not 0.0 < fraction < 1.0 or not 0 < count < len(dataset):
        raise ValueError(
            f"validation fraction {fraction} leaves no train or no validation clips of "
            f"{len(dataset)}"
        )
    order = np.random.default_rng(seed).permutation(len(dataset))
    return dataset.subset(np.sort(order[count:])), dataset.subset(np.sort(order[:count]))


# ---- features, computed once ------------------------------------------------------------------


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
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(temp, array)
        os.replace(temp, path)
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
    options = extractor.fbank_options
    needed = (extractor.max_length - 1) * options.window_shift + options.window_size
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


# ---- batches ----------------------------------------------------------------------------------


def batch_indices(num_examples: int, batch_size: int, seed: int, epoch: int) -> NDArray[np.intp]:
    """``(steps, batch_size)`` shuffled indices of one epoch; the incomplete last batch is dropped.

    Deterministic in ``(seed, epoch)``, so a resumed run sees the same batches.

    Raises:
      ValueError: fewer examples than one batch.
    """
    steps = num_examples // batch_size
    if steps == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the {num_examples} examples")
    order = np.random.default_rng([seed, epoch]).permutation(num_examples)
    return order[: steps * batch_size].reshape(steps, batch_size)


def _prefetch(items: Iterator[Any], size: int) -> Iterator[Any]:
    """Iterate ``items`` on a background thread, ``size`` items ahead; errors re-raise here."""
    done = object()
    buffer: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put(item)
            buffer.put(done)
        except BaseException as error:  # handed to the consumer
            buffer.put(error)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(0.01)


class Loader:
    """Shuffled training batches of cached features, with host-side mixup and prefetching.

    A batch is ``{"features": (B, T, F) unnormalised, "targets": (B, C), "mask": (B,)}`` of device
    arrays, placed with ``sharding`` (e.g. split over a ``"data"`` mesh axis).
    """

    def __init__(
        self,
        features: NDArray[np.float32],
        targets: NDArray[np.float32],
        *,
        batch_size: int,
        seed: int,
        mixup: float = 0.0,
        waveforms: tuple[NDArray[np.float32], NDArray[np.int64]] | None = None,
        extractor: FeatureExtractor | None = None,
        sharding: jax.sharding.Sharding | None = None,
        prefetch: int = 2,
    ) -> None:
        """Loader over cached features.

        Args:
          features: ``(B, T, F)`` unnormalised features (`compute_features`).
          targets: ``(B, C)`` float32.
          batch_size: examples per batch.
          seed: shuffling and mixup seed.
          mixup: probability that an example is mixed with a random partner (0 disables).
          waveforms: `load_waveforms` output; required when ``mixup > 0``.
          extractor: featurises mixed waveforms; required when ``mixup > 0``.
          sharding: device placement of the batch arrays (default: the default device).
          prefetch: batches prepared ahead.

        Raises:
          ValueError: mismatched inputs, ``mixup`` outside [0, 1], or mixup without waveforms.
        """
        if features.shape[0] != targets.shape[0]:
            raise ValueError(
                f"features ({features.shape[0]}) and targets ({targets.shape[0]}) differ in length"
            )
        if not 0.0 <= mixup <= 1.0:
            raise ValueError(f"mixup must be a probability in [0, 1], got {mixup}")
        if mixup > 0 and (waveforms is None or extractor is None):
            raise ValueError("mixup > 0 needs the waveforms and the extractor")
        self.features, self.targets = features, targets
        self.batch_size, self.seed, self.mixup = batch_size, seed, mixup
        self.waveforms = waveforms
        self.extractor = None if extractor is None else raw_extractor(extractor)
        self.sharding, self.prefetch = sharding, prefetch
        self.steps_per_epoch = batch_indices(len(features), batch_size, seed, 0).shape[0]

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict[str, jax.Array]]:
        """The batches of ``epoch`` from batch ``start_step`` on, prepared on a thread."""
        indices = batch_indices(len(self.features), self.batch_size, self.seed, epoch)
        batches = (self._batch(rows, epoch, step) for step, rows in enumerate(indices))
        batches = (batch for step, batch in enumerate(batches) if step >= start_step)
        return _prefetch(batches, self.prefetch)

    def _batch(self, rows: NDArray[np.intp], epoch: int, step: int) -> dict[str, jax.Array]:
        features, targets = self.features[rows], self.targets[rows]  # copies
        if self.mixup > 0:
            rng = np.random.default_rng([self.seed, epoch, step, 1])
            self._mix(rng, rows, features, targets)
        batch = {"features": features, "targets": targets, "mask": np.ones(len(rows), np.float32)}
        return jax.device_put(batch, self.sharding)

    def _mix(
        self, rng: np.random.Generator, rows: NDArray, features: NDArray, targets: NDArray
    ) -> None:
        """Mixup in place, as the original: mixed waveforms, then their fbank."""
        waves, lengths = self.waveforms
        mixed, mixed_rows = [], []
        for i, row in enumerate(rows):
            if rng.random() >= self.mixup:
                continue
            partner = rng.integers(len(self.features))
            wave, lam = mixup_waveforms(
                rng, waves[row, : lengths[row]], waves[partner, : lengths[partner]], MIXUP_ALPHA
            )
            targets[i] = mixup_targets(targets[i], self.targets[partner], lam)
            mixed.append(wave)
            mixed_rows.append(i)
        if mixed:
            values = self.extractor(mixed, sampling_rate=self.extractor.sampling_rate)
            features[mixed_rows] = values["input_values"]
