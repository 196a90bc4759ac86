"""Shuffled, fixed-size training batches of cached features, with host-side mixup and prefetching.

`Loader` cuts shuffled, fixed-size batches (the train step compiles once), mixes waveforms on the
host when mixup is on, and prepares the next batches on a thread while the device runs the current
one.

Shape legend: B examples, S samples, T frames (``max_length``), F mel bins, C classes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from numpy.typing import NDArray

from ast_jax.frontend.extractor import FeatureExtractor
from ast_jax.training.augment import MIXUP_ALPHA, mixup_targets, mixup_waveforms
from ast_jax.training.features import raw_extractor

__all__ = ["Loader", "batch_indices"]


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
