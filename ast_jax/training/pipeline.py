"""The streaming input pipeline: audio files to batches of waveforms, on grain, memory-bounded.

Nothing is held per clip but its path and targets. For each epoch the global example order is
drawn from ``(seed, epoch)`` alone (a permutation, or with ``balanced`` a draw with replacement
weighted like the original AudioSet recipe's sampler), cut into global batches, and every JAX
process reads its own contiguous slice of each global batch, the rows its devices hold in the
global mesh. Decoding, resampling and padding run in grain worker processes; the device computes
the features (`ast_jax.frontend.jax_fbank`) and augments them inside the train step.

The position in the stream is just ``(epoch, step)``: a run resumes mid-epoch exactly where it
stopped, and with any number of processes, because the global batches do not depend on how many
processes read them.

Shape legend: B global batch, b this process's share, S samples (``samples_needed``), C classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import grain
import numpy as np
from absl import flags
from numpy.typing import NDArray

from ast_jax.frontend.audio import load_audio
from ast_jax.frontend.extractor import FeatureExtractor
from ast_jax.training.datasets import Dataset
from ast_jax.training.sampling import balanced_weights, epoch_order

__all__ = ["AudioStream"]


# Batches decoded at once per process (threads; decoding releases the GIL) and kept ready ahead:
# as many as the threads, since grain runs no more threads than its buffer holds (and warns).
_READ_THREADS = 4
_READ_AHEAD = _READ_THREADS


@dataclasses.dataclass(frozen=True)
class _Decode(grain.transforms.Map):
    """Row index -> the example: a waveform padded to ``samples``, its length, targets, mask.

    Runs in grain's worker processes. Index -1 is a padding row (zeros, mask 0).
    """

    paths: tuple[str, ...]
    targets: NDArray[np.float32]
    sampling_rate: int
    samples: int

    def map(self, index: int) -> dict[str, NDArray]:
        waveform = np.zeros(self.samples, np.float32)
        if index < 0:
            targets = np.zeros(self.targets.shape[1], np.float32)
            return {"waveforms": waveform, "lengths": np.int32(0), "targets": targets,
                    "mask": np.float32(0.0)}  # fmt: skip
        clip = load_audio(self.paths[index], self.sampling_rate)[: self.samples]
        waveform[: clip.size] = clip
        return {
            "waveforms": waveform,
            "lengths": np.int32(clip.size),
            "targets": self.targets[index],
            "mask": np.float32(1.0),
        }


class AudioStream:
    """Batches of decoded audio for the device: shuffled epochs for training, or one ordered pass.

    A batch is ``{"waveforms": (b, S) float32, "lengths": (b,) int32, "targets": (b, C) float32,
    "mask": (b,) float32}`` of host arrays: this process's rows of a global batch of
    ``batch_size``. Waveforms are cut to the samples the model's ``max_length`` frames read and
    zero-padded; the device turns them into features.
    """

    def __init__(
        self,
        dataset: Dataset,
        extractor: FeatureExtractor,
        *,
        batch_size: int,
        seed: int = 0,
        balanced: bool = False,
        workers: int = 0,
        process_index: int = 0,
        process_count: int = 1,
    ) -> None:
        """Builds the stream.

        Args:
          dataset: the clips and their targets.
          extractor: gives the sampling rate and the samples a clip needs.
          batch_size: the global batch size, a multiple of ``process_count``.
          seed: the order of every epoch derives from it.
          balanced: draw examples with the AudioSet recipe's label weights (`balanced_weights`).
          workers: grain worker processes that decode (0 decodes in this process).
          process_index: this JAX process.
          process_count: the number of JAX processes reading the stream.

        Raises:
          ValueError: a batch size that processes cannot share evenly, or bad sizes.
        """
        if batch_size < 1 or batch_size % process_count:
            raise ValueError(
                f"batch_size {batch_size} must be a positive multiple of the {process_count} "
                "processes"
            )
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.dataset = dataset
        self.batch_size, self.seed, self.workers = batch_size, seed, workers
        self.local_batch_size = batch_size // process_count
        self.process_index = process_index
        self.weights = balanced_weights(dataset.targets) if balanced else None
        self._decode = _Decode(
            tuple(str(path) for path in dataset.paths),
            np.ascontiguousarray(dataset.targets, np.float32),
            extractor.sampling_rate,
            extractor.samples_needed,
        )

    @property
    def targets(self) -> NDArray[np.float32]:
        """``(N, C)`` targets of every example, in dataset order."""
        return self.dataset.targets

    @property
    def steps_per_epoch(self) -> int:
        """Global batches per training epoch (the incomplete last one is dropped)."""
        return len(self.dataset) // self.batch_size

    @property
    def eval_steps(self) -> int:
        """Global batches of one ordered pass (the last one padded)."""
        return -(-len(self.dataset) // self.batch_size)

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict[str, NDArray]]:
        """This process's batches of training epoch ``epoch``, from global batch ``start_step``."""
        order = epoch_order(len(self.dataset), self.batch_size, self.seed, epoch, self.weights)
        return self._batches(order[start_step:])

    def ordered(self) -> Iterator[dict[str, NDArray]]:
        """This process's batches of one pass over every example in order, the last global batch
        padded with rows of mask 0."""
        rows = np.full(self.eval_steps * self.batch_size, -1, np.intp)
        rows[: len(self.dataset)] = np.arange(len(self.dataset))
        return self._batches(rows.reshape(self.eval_steps, self.batch_size))

    def _batches(self, global_rows: NDArray[np.intp]) -> Iterator[dict[str, NDArray]]:
        first = self.process_index * self.local_batch_size
        local = global_rows[:, first : first + self.local_batch_size].reshape(-1)  # (steps * b,)
        if local.size == 0:
            return iter(())
        dataset: Any = grain.MapDataset.source(local).map(self._decode)
        dataset = dataset.batch(self.local_batch_size, drop_remainder=True)
        # grain's defaults (16 threads, 500 elements ahead) would hold hundreds of batches of
        # decoded audio: memory would grow with the dataset. A few batches ahead keep the device
        # fed (each thread decodes one batch).
        dataset = dataset.to_iter_dataset(
            grain.ReadOptions(num_threads=_READ_THREADS, prefetch_buffer_size=_READ_AHEAD)
        )
        if self.workers > 0:
            # grain's worker pool reads absl flags, which a program that does not use absl's
            # app.run never parses: their defaults are what we want.
            if not flags.FLAGS.is_parsed():
                flags.FLAGS.mark_as_parsed()
            options = grain.MultiprocessingOptions(num_workers=self.workers)
            dataset = dataset.mp_prefetch(options)
        return _owned(dataset)


def _owned(batches: Any) -> Iterator[dict[str, NDArray]]:
    """The batches as arrays of their own: a worker's batch arrives in shared memory, which is
    released as soon as it is copied rather than whenever the consumer drops it."""
    for batch in batches:
        yield {name: np.array(value) for name, value in batch.items()}
