"""Batched inference: audio files or waveforms in, labels, scores, timestamps or embeddings out.

`AudioClassifier` wires the pieces together: `stream_audio` decodes each input block by block,
`sliding_windows` cuts windows of at most ``max_length`` frames, the feature extractor turns each
batch of windows into ``(B, T, F)`` features, and one jitted function per output kind runs the model
on fixed-size batches sharded over the local devices (`ast_jax.runtime.sharding`). Windows of all
inputs share batches; the last batch is padded, so every batch has the same shape and the model
compiles once. While the device runs one batch, the host decodes and featurises the next.

Short clips: with ``length_bucket``, a window shorter than ``max_length`` frames runs at the
shortest bucketed length that holds it (`ast_jax.model.positions.bucketed_length`) with the first
``t_dim`` columns of the position table, the positions it has when padded. This drops the padding
tokens instead of attending to them: far less compute, different scores (see the README).
Batches then hold windows of one length; one compilation per output kind and length.

Scores: the model's logits go through a sigmoid for multi-label models and a softmax otherwise
(`ast_jax.model.scores.default_activation`); clip scores are the mean (or max) of the window
scores.

Attention: the config the classifier runs with (``classifier.config``) has ``attention="auto"``
resolved for its devices (`ast_jax.model.attention.resolve_attention`).

Shape legend: B batch, T frames, F mel bins, K windows of one input, C classes, N tokens,
L layers, D hidden.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from numpy.typing import NDArray

from ast_jax.checkpoints.sources import load_model
from ast_jax.config import ASTConfig
from ast_jax.frontend.audio import audio_info, check_samples, stream_audio
from ast_jax.frontend.extractor import FeatureExtractor, default_extractor
from ast_jax.frontend.kaldi import num_frames
from ast_jax.frontend.windows import Windowing, sliding_windows
from ast_jax.inference.results import (
    AGGREGATES,
    Aggregate,
    Classification,
    Embedding,
    Failure,
    raise_failure,
)
from ast_jax.model.attention import resolve_attention
from ast_jax.model.modules import ASTForAudioClassification, ASTModel
from ast_jax.model.params import backbone_params, check_params, has_head
from ast_jax.model.positions import bucketed_length, prefix_position_indices, select_positions
from ast_jax.model.scores import ACTIVATIONS, Activation, activate, default_activation
from ast_jax.runtime.batching import in_padded_batches, per_example, prefers_per_example
from ast_jax.runtime.sharding import batch_sharding, data_mesh, padded_batch_size, replicate

__all__ = ["AudioClassifier", "Input"]

# An input: an audio file, or a 1-D float waveform at the model's sampling rate.
Input = str | os.PathLike | NDArray


# ---- jitted steps --------------------------------------------------------------------------------


def _classify_step(
    model: ASTForAudioClassification, activation: Activation, params: Any, x: jax.Array
) -> dict[str, jax.Array]:
    """``(B, T, F)`` features -> ``{"scores": (B, C)}``."""
    logits = model.apply({"params": params}, x).logits
    return {"scores": activate(logits.astype(jnp.float32), activation)}


def _at_positions(step: Callable, indices: NDArray, params: Any, x: jax.Array) -> Any:
    """``step`` with the position rows ``indices`` of ``params`` (gathered on device)."""
    return step(select_positions(params, indices), x)


def _embed_step(
    model: ASTModel, tokens: bool, layers: bool, params: Any, x: jax.Array
) -> dict[str, jax.Array]:
    """``(B, T, F)`` features -> pooled ``(B, D)``, optionally tokens and per-layer states."""
    out = model.apply({"params": backbone_params(params)}, x, output_hidden_states=layers)
    result = {"pooled": out.pooler_output.astype(jnp.float32)}
    if tokens:
        result["last_hidden_state"] = out.last_hidden_state.astype(jnp.float32)  # (B, N, D)
    if layers:
        result["hidden_states"] = jnp.stack(out.hidden_states, axis=1).astype(jnp.float32)
    return result


# ---- the pipeline ------------------------------------------------------------------------------


@dataclasses.dataclass
class _Batch:
    """Windows for one model call, and the inputs whose last window is in it (or before it).

    ``windows`` holds ``(input index, start sample, samples)``, ``done`` holds ``(input index,
    source name, duration in seconds or the error that stopped it)``.
    """

    windows: list[tuple[int, int, NDArray[np.float32]]] = dataclasses.field(default_factory=list)
    done: list[tuple[int, str, float | Exception]] = dataclasses.field(default_factory=list)
    frames: int = 0  # the model input length T of every window in the batch


def _source_name(source: Input, index: int) -> str:
    return f"array[{index}]" if isinstance(source, np.ndarray) else str(source)


def _as_waveform(array: NDArray, name: str) -> NDArray[np.float32]:
    """Checks an in-memory input: 1-D, non-empty, floating point."""
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(
            f"{name}: expected float audio in [-1, 1], got dtype {array.dtype} "
            "(scale integer PCM first, e.g. x / 32768)"
        )
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: expected non-empty mono audio (S,), got shape {array.shape}")
    check_samples(array, name)
    return array.astype(np.float32, copy=False)


class AudioClassifier:
    """Classify or embed audio files and waveforms with an AST model, batched, jitted and sharded.

    Example:
      >>> classifier = AudioClassifier.from_pretrained("checkpoints/audioset")
      >>> result = classifier.classify(["dog.wav"])[0]
      >>> result.top_k(3)
      [('Dog', 0.93), ('Animal', 0.91), ('Bark', 0.72)]

    Inputs are paths (any format `stream_audio` reads, resampled to the model's rate) or 1-D float
    arrays already at the model's rate. Every input is cut into windows (`Windowing`); an input no
    longer than one window gives one window, padded as the feature extractor pads.
    """

    def __init__(
        self,
        config: ASTConfig,
        params: Any,
        feature_extractor: FeatureExtractor | None = None,
        *,
        batch_size: int = 8,
        window: float | None = None,
        hop: float | None = None,
        activation: Activation | None = None,
        aggregate: Aggregate = "mean",
        mesh: Mesh | None = None,
        length_bucket: int | None = None,
    ) -> None:
        """Builds a classifier.

        Args:
          config: the model config.
          params: an `ASTForAudioClassification` or `ASTModel` params tree (a backbone can only
            embed).
          feature_extractor: the checkpoint's extractor; None for AST's AudioSet normalisation.
            Its ``max_length`` is set to the model's.
          batch_size: windows per model call; rounded up to a multiple of the device count.
          window: window length in seconds; None for the model's ``max_length`` frames.
          hop: seconds between window starts; None for the window length.
          activation: ``"sigmoid"``, ``"softmax"`` or ``"none"``; None for `default_activation`.
          aggregate: how window scores become clip scores, ``"mean"`` or ``"max"``.
          mesh: devices to shard batches over; None for all local devices (`data_mesh`).
          length_bucket: run windows shorter than ``max_length`` frames unpadded, at lengths
            rounded up to multiples of this many patch columns (see the module docstring); None
            pads every window to ``max_length`` (exactly the Hugging Face computation).

        Raises:
          ValueError: an invalid option, params that do not match ``config``, or an extractor
            that does not fit the model.
        """
        head = has_head(params)
        check_params(params, config, with_head=head)
        extractor = feature_extractor or default_extractor(config)
        if extractor.num_mel_bins != config.num_mel_bins:
            raise ValueError(
                f"feature extractor has {extractor.num_mel_bins} mel bins, the model expects "
                f"{config.num_mel_bins}"
            )
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
        if length_bucket is not None and (
            isinstance(length_bucket, bool)
            or not isinstance(length_bucket, int)
            or length_bucket < 1
        ):
            raise ValueError(f"length_bucket must be None or an int >= 1, got {length_bucket!r}")
        self.mesh = mesh or data_mesh()
        self.config = resolve_attention(config, mesh=self.mesh)
        self.extractor = dataclasses.replace(extractor, max_length=config.max_length)
        self.windowing = Windowing.from_seconds(
            window, hop, max_frames=config.max_length, options=self.extractor.fbank_options
        )
        self.activation: Activation = activation or default_activation(config)
        self.aggregate: Aggregate = aggregate
        self.length_bucket = length_bucket
        self.batch_size = padded_batch_size(batch_size, self.mesh)
        self.has_head = head
        self.num_params = sum(np.size(leaf) for leaf in jax.tree.leaves(params))
        self._attention = config.attention  # as passed in, before resolution
        self._params = replicate(params, self.mesh)
        self._steps: dict[tuple, Callable] = {}

    @classmethod
    def from_pretrained(
        cls, path_or_repo_id: str | os.PathLike, *, dtype: str | None = None, **kwargs: Any
    ) -> AudioClassifier:
        """Loads a checkpoint (`load_pretrained`) and its ``preprocessor_config.json``.

        Args:
          path_or_repo_id: an ast-jax or Hugging Face directory, or a hub id.
          dtype: compute dtype (``"float32"``, ``"bfloat16"``, ``"float16"``); None for float32.
          **kwargs: the keyword arguments of `AudioClassifier`.
        """
        return cls(*load_model(path_or_repo_id, dtype=dtype), **kwargs)

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in score order."""
        return self.config.labels

    # -- public entry points ---------------------------------------------------------------------

    def predict(self, input_values: NDArray[np.float32]) -> NDArray[np.float32]:
        """Scores of ready-made features.

        Args:
          input_values: ``(B, T, F)`` features, e.g. the feature extractor's ``input_values``.

        Returns:
          ``(B, C)`` float32 scores after `activation`.
        """
        if not self.has_head:
            raise ValueError("this checkpoint has no classifier head; it can only embed")
        step = self._step("classify")
        values = np.asarray(input_values, np.float32)
        return in_padded_batches(
            lambda batch: step(self._params, self._device_batch(batch))["scores"],
            values,
            self.batch_size,
        )

    def classify(self, inputs: Iterable[Input]) -> list[Classification]:
        """Classify every input; see `classify_iter`.

        Raises:
          FileNotFoundError / ValueError / TypeError: the first input that failed.
        """
        return [raise_failure(result) for result in self.classify_iter(inputs)]

    def classify_iter(
        self, inputs: Iterable[Input], *, progress: Callable[[int], None] | None = None
    ) -> Iterator[Classification | Failure]:
        """Classify inputs lazily, in order; a bad input gives a `Failure` and the rest go on.

        Args:
          inputs: paths or 1-D float arrays at the model's sampling rate.
          progress: called with the number of windows of each batch once it is computed.

        Yields:
          One `Classification` or `Failure` per input.

        Raises:
          ValueError: the checkpoint has no classifier head.
        """
        if not self.has_head:
            raise ValueError("this checkpoint has no classifier head; it can only embed")
        for source, outputs, times, duration in self._run(inputs, ("classify",), progress):
            if isinstance(duration, Exception):
                yield Failure(source, duration)
                continue
            window_scores = outputs["scores"]  # (K, C)
            reduce = np.mean if self.aggregate == "mean" else np.max
            yield Classification(
                source=source,
                labels=self.labels,
                scores=reduce(window_scores, axis=0).astype(np.float32),
                window_scores=window_scores,
                window_times=times,
                duration=duration,
            )

    def embed(
        self, inputs: Iterable[Input], *, tokens: bool = False, hidden_states: bool = False
    ) -> list[Embedding]:
        """Embed every input; see `embed_iter`.

        Raises:
          FileNotFoundError / ValueError / TypeError: the first input that failed.
        """
        results = self.embed_iter(inputs, tokens=tokens, hidden_states=hidden_states)
        return [raise_failure(result) for result in results]

    def embed_iter(
        self,
        inputs: Iterable[Input],
        *,
        tokens: bool = False,
        hidden_states: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[Embedding | Failure]:
        """Backbone embeddings of inputs, lazily and in order.

        Args:
          inputs: paths or 1-D float arrays at the model's sampling rate.
          tokens: also return each window's last hidden state ``(N, D)``.
          hidden_states: also return each window's per-layer hidden states ``(L + 1, N, D)``.
          progress: called with the number of windows of each batch once it is computed.

        Yields:
          One `Embedding` or `Failure` per input.
        """
        for source, outputs, times, duration in self._run(
            inputs, ("embed", tokens, hidden_states), progress
        ):
            if isinstance(duration, Exception):
                yield Failure(source, duration)
                continue
            yield Embedding(
                source=source,
                pooled=outputs["pooled"].mean(axis=0),
                window_pooled=outputs["pooled"],
                window_times=times,
                duration=duration,
                last_hidden_state=outputs.get("last_hidden_state"),
                hidden_states=outputs.get("hidden_states"),
            )

    def count_windows(self, source: Input) -> int:
        """Windows an input will be cut into (from the file header; 1 for an unreadable file)."""
        if isinstance(source, np.ndarray):
            return self.windowing.count(source.shape[-1])
        try:
            info = audio_info(source)
        except (OSError, ValueError):
            return 1
        samples = round(info.num_samples * self.extractor.sampling_rate / info.sampling_rate)
        return self.windowing.count(samples)

    # -- internals -------------------------------------------------------------------------------

    def _step(self, *kind: Any, frames: int | None = None) -> Callable:
        """The jitted model call for ``kind`` on ``(B, frames, F)`` (None: ``max_length``), built
        once per kind and length."""
        frames = self.config.max_length if frames is None else frames
        if (kind, frames) not in self._steps:
            # Resolved again: the per-head choice depends on the token count.
            config = resolve_attention(
                dataclasses.replace(self.config, max_length=frames, attention=self._attention),
                mesh=self.mesh,
            )
            if kind[0] == "classify":
                model = ASTForAudioClassification(config)
                function = functools.partial(_classify_step, model, self.activation)
            else:
                function = functools.partial(_embed_step, ASTModel(config), *kind[1:])
            if prefers_per_example(self.mesh):
                function = per_example(function)
            if frames != self.config.max_length:
                indices = prefix_position_indices(self.config, config)
                function = functools.partial(_at_positions, function, indices)
            # Params arrive replicated and batches split (see _device_batch); outputs stay split.
            self._steps[kind, frames] = jax.jit(function, out_shardings=batch_sharding(self.mesh))
        return self._steps[kind, frames]

    def _frames(self, start: int, segment: NDArray) -> int:
        """The model input length of a window: ``max_length``, or its bucket with
        ``length_bucket``. A tail window (``start > 0``) is sized as a full window so that all
        windows of an input share a length (and batches)."""
        if self.length_bucket is None:
            return self.config.max_length
        options = self.extractor.fbank_options
        frames = num_frames(segment.size, options) if start == 0 else self.windowing.window_frames
        return bucketed_length(frames, self.config, bucket=self.length_bucket)

    def _device_batch(self, values: NDArray[np.float32]) -> jax.Array:
        """``(B', T, F)`` features padded with zero rows to ``(B, T, F)``, split over the mesh."""
        batch = np.zeros((self.batch_size, *values.shape[1:]), np.float32)
        batch[: len(values)] = values
        return jax.device_put(batch, batch_sharding(self.mesh))

    def _windows(self, source: Input, index: int) -> Iterator[tuple[int, NDArray[np.float32]]]:
        """``(start sample, samples)`` of each window of one input, checked for the extractor."""
        if isinstance(source, np.ndarray):
            blocks: Iterable[NDArray] = [_as_waveform(source, _source_name(source, index))]
        else:
            blocks = stream_audio(source, self.extractor.sampling_rate)
        options = self.extractor.fbank_options
        for start, segment in sliding_windows(blocks, self.windowing):
            if num_frames(segment.size, options) == 0:
                raise ValueError(
                    f"{_source_name(source, index)}: {segment.size} samples is shorter than one "
                    f"{options.frame_length:g} ms frame"
                )
            yield start, segment

    def _duration(self, source: Input) -> float:
        """Seconds of audio in an input."""
        if isinstance(source, np.ndarray):
            return source.shape[-1] / self.extractor.sampling_rate
        return audio_info(source).duration

    def _batches(self, inputs: Iterable[Input]) -> Iterator[_Batch]:
        """Windows of all inputs in batches of ``batch_size`` (the last one may be short).

        A window of another model input length than the batch's closes the batch early.
        """
        batch = _Batch()
        for index, source in enumerate(inputs):
            name = _source_name(source, index)
            try:
                duration = self._duration(source)
                for start, segment in self._windows(source, index):
                    frames = self._frames(start, segment)
                    if batch.windows and frames != batch.frames:
                        yield batch
                        batch = _Batch()
                    batch.frames = frames
                    batch.windows.append((index, start, segment))
                    if len(batch.windows) == self.batch_size:
                        yield batch
                        batch = _Batch()
            except (OSError, ValueError, TypeError) as error:
                batch.done.append((index, name, error))
            else:
                batch.done.append((index, name, duration))
        if batch.windows or batch.done:
            yield batch

    def _run(
        self, inputs: Iterable[Input], kind: tuple, progress: Callable[[int], None] | None
    ) -> Iterator[tuple[str, dict[str, NDArray], NDArray, float | Exception]]:
        """Runs the model over all windows; yields ``(source, (K, ...) outputs, (K, 2) times,
        duration or error)`` per input, in input order.

        One batch stays in flight: the next batch is decoded and featurised while it runs.
        """
        rate = self.extractor.sampling_rate
        collected: dict[int, list] = {}  # input index -> [(start, length, outputs row)]
        in_flight = None
        for batch in self._batches(inputs):
            outputs = None
            if batch.windows:
                segments = [segment for _, _, segment in batch.windows]
                values = self.extractor(segments, sampling_rate=rate)["input_values"]
                values = values[:, : batch.frames]  # (B', T', F), the extractor pads to T
                step = self._step(*kind, frames=batch.frames)
                outputs = step(self._params, self._device_batch(values))  # dispatched, not waited
            if in_flight is not None:
                yield from _finish(*in_flight, collected, self.windowing, progress)
            in_flight = (batch, outputs)
        if in_flight is not None:
            yield from _finish(*in_flight, collected, self.windowing, progress)


def _finish(
    batch: _Batch,
    outputs: dict[str, jax.Array] | None,
    collected: dict[int, list],
    windowing: Windowing,
    progress: Callable[[int], None] | None,
) -> Iterator[tuple[str, dict[str, NDArray], NDArray, float | Exception]]:
    """Files a computed batch's rows under their inputs; yields the inputs it completes."""
    if outputs is not None:
        host = jax.device_get(outputs)
        for row, (index, start, segment) in enumerate(batch.windows):
            window = {name: value[row] for name, value in host.items()}
            collected.setdefault(index, []).append((start, segment.size, window))
        if progress is not None:
            progress(len(batch.windows))
    for index, source, outcome in batch.done:
        rows = collected.pop(index, [])
        if isinstance(outcome, Exception):
            yield source, {}, np.zeros((0, 2)), outcome
            continue
        times = np.array(
            [
                windowing.span(start, size, last=row == len(rows) - 1)
                for row, (start, size, _) in enumerate(rows)
            ]
        )
        stacked = {name: np.stack([row[name] for *_, row in rows]) for name in rows[0][2]}
        if not all(np.isfinite(value).all() for value in stacked.values()):
            # Never hand out NaN scores as an answer (JSON would even print them as NaN).
            error = FloatingPointError(
                f"{source}: the model computed NaN or infinite outputs; check the checkpoint's "
                "weights and preprocessor_config.json"
            )
            yield source, {}, np.zeros((0, 2)), error
            continue
        yield source, stacked, times, outcome
