"""Training batches of features already in memory: the small-data path, and synthetic tasks.

`FeatureBatches` has the interface of `ast_jax.training.pipeline.AudioStream` but serves
``(B, T, F)`` unnormalised log-mel features computed beforehand (`ast_jax.training.features`), so
the device skips the fbank. Mixup mixes waveforms and needs the streaming pipeline.

Shape legend: B global batch, b this process's share, T frames, F mel bins, C classes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from ast_jax.training.sampling import epoch_order

__all__ = ["FeatureBatches"]


class FeatureBatches:
    """Shuffled epochs and ordered passes over in-memory features.

    A batch is ``{"features": (b, T, F), "targets": (b, C), "mask": (b,)}`` of host arrays: this
    process's rows of a global batch of ``batch_size``.
    """

    def __init__(
        self,
        features: NDArray[np.float32],
        targets: NDArray[np.float32],
        *,
        batch_size: int,
        seed: int = 0,
        process_index: int = 0,
        process_count: int = 1,
    ) -> None:
        """Batches over ``features`` ``(N, T, F)`` and ``targets`` ``(N, C)``.

        Raises:
          ValueError: mismatched inputs, or a batch size processes cannot share evenly.
        """
        if features.shape[0] != targets.shape[0]:
            raise ValueError(
                f"features ({features.shape[0]}) and targets ({targets.shape[0]}) differ in length"
            )
        if batch_size < 1 or batch_size % process_count:
            raise ValueError(
                f"batch_size {batch_size} must be a positive multiple of the {process_count} "
                "processes"
            )
        self.features, self.targets = features, targets
        self.batch_size, self.seed = batch_size, seed
        self.local_batch_size = batch_size // process_count
        self.process_index = process_index

    @property
    def steps_per_epoch(self) -> int:
        """Global batches per training epoch (the incomplete last one is dropped)."""
        return len(self.features) // self.batch_size

    @property
    def eval_steps(self) -> int:
        """Global batches of one ordered pass (the last one padded)."""
        return -(-len(self.features) // self.batch_size)

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict[str, NDArray]]:
        """This process's batches of training epoch ``epoch``, from global batch ``start_step``."""
        order = epoch_order(len(self.features), self.batch_size, self.seed, epoch)
        for rows in order[start_step:]:
            yield self._batch(self._local(rows))

    def ordered(self) -> Iterator[dict[str, NDArray]]:
        """This process's batches of one pass in order; the last global batch padded (mask 0)."""
        for step in range(self.eval_steps):
            rows = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
            yield self._batch(np.where(rows < len(self.features), rows, -1)[self._slice()])

    def _slice(self) -> slice:
        first = self.process_index * self.local_batch_size
        return slice(first, first + self.local_batch_size)

    def _local(self, rows: NDArray[np.intp]) -> NDArray[np.intp]:
        return rows[self._slice()]

    def _batch(self, rows: NDArray[np.intp]) -> dict[str, NDArray]:
        real = rows >= 0
        safe = np.where(real, rows, 0)
        return {
            "features": np.where(real[:, None, None], self.features[safe], 0.0).astype(np.float32),
            "targets": np.where(real[:, None], self.targets[safe], 0.0).astype(np.float32),
            "mask": real.astype(np.float32),
        }
