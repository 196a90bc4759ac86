"""Embedding files: pooled, per-window, per-token and per-layer embeddings in .npy, .npz or
.safetensors, with the list of their sources.

Shape legend: K windows of one input, N tokens, L layers, D hidden.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import safetensors.numpy

from ast_jax.files import atomic_write, save_npy
from ast_jax.inference.results import Embedding

__all__ = ["EMBEDDING_FORMATS", "save_embeddings"]

EMBEDDING_FORMATS = (".npy", ".npz", ".safetensors")


def save_embeddings(path: str | os.PathLike, embeddings: Sequence[Embedding]) -> list[Path]:
    """Writes embeddings with the list of their sources; the format follows the suffix.

    - ``.npy``: pooled embeddings ``(num_inputs, D)``; the sources, one per line in row order, go
      to ``<path>.txt`` next to it (e.g. ``out.npy.txt``).
    - ``.npz`` / ``.safetensors``: ``pooled`` ``(num_inputs, D)`` plus, for input ``i``,
      ``window_pooled/i`` ``(K, D)``, ``window_times/i`` ``(K, 2)`` seconds and, when computed,
      ``last_hidden_state/i`` ``(K, N, D)`` and ``hidden_states/i`` ``(K, L + 1, N, D)``. The
      sources are the ``files`` array (``.npz``) or the JSON ``files`` metadata (``.safetensors``).

    Returns:
      The files written.

    Raises:
      ValueError: an unknown suffix, no embeddings, or per-window arrays asked of ``.npy``.
    """
    path = Path(path)
    if path.suffix not in EMBEDDING_FORMATS:
        raise ValueError(
            f"unknown embedding format {path.suffix!r}; use one of {EMBEDDING_FORMATS}"
        )
    if not embeddings:
        raise ValueError("no embeddings to save")
    sources = [embedding.source for embedding in embeddings]
    pooled = np.stack([embedding.pooled for embedding in embeddings])  # (num_inputs, D)
    if path.suffix == ".npy":
        if any(e.last_hidden_state is not None or e.hidden_states is not None for e in embeddings):
            raise ValueError(".npy holds pooled embeddings only; use .npz or .safetensors")
        listing = path.with_name(path.name + ".txt")
        save_npy(path, pooled)
        text = "".join(f"{source}\n" for source in sources)
        atomic_write(listing, lambda temp: Path(temp).write_text(text, encoding="utf-8"))
        return [path, listing]
    arrays = {"pooled": pooled}
    for i, embedding in enumerate(embeddings):
        arrays[f"window_pooled/{i}"] = embedding.window_pooled
        arrays[f"window_times/{i}"] = embedding.window_times
        for name in ("last_hidden_state", "hidden_states"):
            if getattr(embedding, name) is not None:
                arrays[f"{name}/{i}"] = getattr(embedding, name)
    if path.suffix == ".npz":

        def write(temp: str) -> None:
            with open(temp, "wb") as file:
                np.savez(file, files=np.array(sources), **arrays)

    else:
        contiguous = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
        metadata = {"files": json.dumps(sources)}

        def write(temp: str) -> None:
            safetensors.numpy.save_file(contiguous, temp, metadata=metadata)

    atomic_write(path, write)
    return [path]
