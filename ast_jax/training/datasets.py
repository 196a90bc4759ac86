"""Labelled audio datasets: a folder of folders or a CSV manifest, as paths and multi-hot targets.

Two layouts:

- a folder of folders, ``root/<label>/**/*.wav`` (one label per clip; every audio format
  `ast_jax.frontend.audio.find_audio` knows);
- a CSV manifest, one clip per row: ``path,label[,label...]`` (paths relative to the CSV file;
  a cell may also hold several labels separated by ``;``; an optional header row starts with
  ``path``). Clips may carry several labels (multi-label).

Shape legend: B examples, C classes.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ast_jax.frontend.audio import find_audio

__all__ = [
    "Dataset",
    "folder_dataset",
    "is_multi_label",
    "load_dataset",
    "manifest_dataset",
    "split_dataset",
]


def is_multi_label(targets: ArrayLike) -> bool:
    """Whether any row of ``(B, C)`` targets has more than one positive entry."""
    return bool((np.asarray(targets) > 0).sum(-1).max(initial=0) > 1)


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
        return is_multi_label(self.targets)

    def fingerprint(self) -> str:
        """A digest of the clips (absolute paths, in order), their targets and the label names:
        equal for the same data, different after any clip, label or order changes."""
        digest = hashlib.sha256("\0".join(self.labels).encode())
        for path in self.paths:
            digest.update(f"\n{Path(path).absolute()}".encode())
        digest.update(np.ascontiguousarray(self.targets).tobytes())
        return digest.hexdigest()[:16]


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
