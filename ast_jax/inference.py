"""Batched inference: audio files or waveforms in, labels, scores, timestamps or embeddings out.

`AudioClassifier` wires the pieces together: `stream_audio` decodes each input block by block,
`sliding_windows` cuts windows of at most ``max_length`` frames, the feature extractor turns each
batch of windows into ``(B, T, F)`` features, and one jitted function per output kind runs the model
on fixed-size batches sharded over the local devices (`ast_jax.sharding`). Windows of all inputs
share batches; the last batch is padded, so every batch has the same shape and the model compiles
once. While the device runs one batch, the host decodes and featurises the next.

Short clips: with ``length_bucket``, a window shorter than ``max_length`` frames runs at the
shortest bucketed length that holds it (`ast_jax.positions.bucketed_length`) with the first
``t_dim`` columns of the position table, the positions it has when padded. This drops the padding
tokens instead of attending to them: far less compute, different scores (see the README).
Batches then hold windows of one length; one compilation per output kind and length.

Scores: the model's logits go through a sigmoid for multi-label models and a softmax otherwise
(`default_activation`); clip scores are the mean (or max) of the window scores.

Shape legend: B batch, T frames, F mel bins, K windows of one input, C classes, N tokens,
L layers, D hidden.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import safetensors.numpy
from jax.sharding import Mesh
from numpy.typing import NDArray

from ast_jax.audio import audio_info, stream_audio
from ast_jax.bundled import BUNDLED_MODELS, bundled_model_path
from ast_jax.checkpoint import load_feature_extractor, load_pretrained
from ast_jax.config import ASTConfig
from ast_jax.features import FeatureExtractor, num_frames
from ast_jax.model import ASTForAudioClassification, ASTModel, check_params, per_example
from ast_jax.positions import bucketed_length, prefix_position_indices, select_positions
from ast_jax.sharding import (
    batch_sharding,
    config_for_mesh,
    data_mesh,
    padded_batch_size,
    replicate,
)
from ast_jax.windows import Windowing, sliding_windows

__all__ = [
    "ACTIVATIONS",
    "AGGREGATES",
    "AudioClassifier",
    "Classification",
    "Embedding",
    "Failure",
    "activate",
    "default_activation",
    "load_model",
    "resolve_model",
    "save_embeddings",
]

Activation = Literal["sigmoid", "softmax", "none"]
Aggregate = Literal["mean", "max"]
ACTIVATIONS: tuple[str, ...] = ("sigmoid", "softmax", "none")
AGGREGATES: tuple[str, ...] = ("mean", "max")
# AudioSet's class count. The MIT AudioSet checkpoints leave `problem_type` unset although they were
# trained with a per-class BCE loss, so the class count is what identifies them.
AUDIOSET_NUM_LABELS = 527

Input = str | os.PathLike | NDArray


def default_activation(config: ASTConfig) -> Activation:
    """The score function a model's logits were trained for.

    ``"sigmoid"`` (independent per-class probabilities) for ``problem_type ==
    "multi_label_classification"``, and for AudioSet-sized heads (527 classes) that leave
    ``problem_type`` unset; ``"none"`` (raw outputs) for regression; ``"softmax"`` otherwise.
    Hugging Face's pipeline applies a softmax to AudioSet outputs, which makes co-occurring sounds
    compete for one unit of probability.
    """
    if config.problem_type == "multi_label_classification":
        return "sigmoid"
    if config.problem_type is None and config.num_labels == AUDIOSET_NUM_LABELS:
        return "sigmoid"
    if config.problem_type == "regression":
        return "none"
    return "softmax"


def resolve_model(model: str | os.PathLike | None) -> str | os.PathLike:
    """``model``; a bundled model's name gives its directory, and None the default bundled model
    (`ast_jax.bundled`)."""
    if model is None:
        return bundled_model_path()
    if str(model) in BUNDLED_MODELS:
        return bundled_model_path(str(model))
    return model


def load_model(
    path_or_repo_id: str | os.PathLike, *, dtype: str | None = None
) -> tuple[ASTConfig, Any, FeatureExtractor | None]:
    """A checkpoint's config, params and feature extractor (None, with a warning, if it has none).

    Args:
      path_or_repo_id: an ast-jax or Hugging Face directory, or a hub id.
      dtype: compute dtype (``"float32"``, ``"bfloat16"``, ``"float16"``); None for float32.

    Raises:
      The errors of `load_pretrained`.
    """
    config, params = load_pretrained(path_or_repo_id, **({"dtype": dtype} if dtype else {}))
    try:
        extractor = load_feature_extractor(path_or_repo_id)
    except FileNotFoundError:
        warnings.warn(
            f"{path_or_repo_id} has no preprocessor_config.json; using AST's AudioSet "
            "normalisation statistics",
            stacklevel=2,
        )
        extractor = None
    return config, params, extractor


# ---- results -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Classification:
    """Scores of one input.

    Attributes:
      source: the file path, or ``"array[i]"`` for the i-th in-memory input.
      labels: C class names.
      scores: ``(C,)`` clip scores, the aggregate of ``window_scores``.
      window_scores: ``(K, C)`` scores of each window.
      window_times: ``(K, 2)`` start and end of each window in seconds.
      duration: length of the input in seconds.
    """

    source: str
    labels: tuple[str, ...]
    scores: NDArray[np.float32]
    window_scores: NDArray[np.float32]
    window_times: NDArray[np.float64]
    duration: float

    def top_k(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` best ``(label, score)`` pairs of the clip, best first."""
        return _top_k(self.scores, self.labels, k)

    def window_top_k(self, k: int = 5) -> list[list[tuple[str, float]]]:
        """The ``k`` best ``(label, score)`` pairs of each window."""
        return [_top_k(row, self.labels, k) for row in self.window_scores]


@dataclasses.dataclass(frozen=True)
class Embedding:
    """Embeddings of one input.

    Attributes:
      source: the file path, or ``"array[i]"``.
      pooled: ``(D,)`` mean over windows of ``window_pooled``.
      window_pooled: ``(K, D)`` the backbone's pooled output (mean of the normalised cls and
        distillation tokens) per window.
      window_times: ``(K, 2)`` start and end of each window in seconds.
      duration: length of the input in seconds.
      last_hidden_state: ``(K, N, D)`` per-token output of each window, if requested.
      hidden_states: ``(K, L + 1, N, D)`` embeddings output and every layer's output (before the
        final LayerNorm), if requested.
    """

    source: str
    pooled: NDArray[np.float32]
    window_pooled: NDArray[np.float32]
    window_times: NDArray[np.float64]
    duration: float
    last_hidden_state: NDArray[np.float32] | None = None
    hidden_states: NDArray[np.float32] | None = None


@dataclasses.dataclass(frozen=True)
class Failure:
    """An input that could not be processed: ``error`` says why."""

    source: str
    error: Exception


def _top_k(scores: NDArray, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    order = np.argsort(-scores, kind="stable")[:k]
    return [(labels[i], float(scores[i])) for i in order]


# ---- jitted steps --------------------------------------------------------------------------------


def activate(logits: jax.typing.ArrayLike, activation: Activation) -> jax.Array:
    """Scores from ``(..., C)`` logits: ``"sigmoid"``, ``"softmax"`` over C, or ``"none"``."""
    if activation == "sigmoid":
        return jax.nn.sigmoid(logits)
    if activation == "softmax":
        return jax.nn.softmax(logits, axis=-1)
    return jnp.asarray(logits)


def _classify_step(
    model: ASTForAudioClassification, activation: Activation, params: Any, x: jax.Array
) -> dict[str, jax.Array]:
    """``(B, T, F)`` features -> ``{"scores": (B, C)}``."""
    logits = model.apply({"params": params}, x).logits
    return {"scores": activate(logits.astype(jnp.float32), activation)}


def _single_cpu(mesh: Mesh) -> bool:
    """Whether batches run on one CPU device, where `per_example` steps are faster."""
    return mesh.size == 1 and mesh.devices.flat[0].platform == "cpu"


def _at_positions(step: Callable, indices: NDArray, params: Any, x: jax.Array) -> Any:
    """``step`` with the position rows ``indices`` of ``params`` (gathered on device)."""
    return step(select_positions(params, indices), x)


def _embed_step(
    model: ASTModel, tokens: bool, layers: bool, params: Any, x: jax.Array
) -> dict[str, jax.Array]:
    """``(B, T, F)`` features -> pooled ``(B, D)``, optionally tokens and per-layer states."""
    backbone = params.get("backbone", params)  # a classifier checkpoint's backbone, or a backbone
    out = model.apply({"params": backbone}, x, output_hidden_states=layers)
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
        has_head = "classifier" in params
        check_params(params, config, with_head=has_head)
        extractor = feature_extractor or FeatureExtractor(
            num_mel_bins=config.num_mel_bins, max_length=config.max_length
        )
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
        self.config = config_for_mesh(config, self.mesh)
        self.extractor = dataclasses.replace(extractor, max_length=config.max_length)
        self.windowing = Windowing.from_seconds(
            window, hop, max_frames=config.max_length, options=self.extractor.fbank_options
        )
        self.activation: Activation = activation or default_activation(config)
        self.aggregate: Aggregate = aggregate
        self.length_bucket = length_bucket
        self.batch_size = padded_batch_size(batch_size, self.mesh)
        self.has_head = has_head
        self.num_params = sum(np.size(leaf) for leaf in jax.tree.leaves(params))
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
        scores = np.zeros((len(input_values), self.config.num_labels), np.float32)
        for first in range(0, len(input_values), self.batch_size):
            chunk = input_values[first : first + self.batch_size]
            batch_scores = step(self._params, self._device_batch(chunk))["scores"]
            scores[first : first + len(chunk)] = np.asarray(batch_scores)[: len(chunk)]
        return scores

    def classify(self, inputs: Iterable[Input]) -> list[Classification]:
        """Classify every input; see `classify_iter`.

        Raises:
          FileNotFoundError / ValueError / TypeError: the first input that failed.
        """
        return [_raise_failure(result) for result in self.classify_iter(inputs)]

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
        return [_raise_failure(result) for result in results]

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
            config = dataclasses.replace(self.config, max_length=frames)
            if kind[0] == "classify":
                model = ASTForAudioClassification(config)
                function = functools.partial(_classify_step, model, self.activation)
            else:
                function = functools.partial(_embed_step, ASTModel(config), *kind[1:])
            if _single_cpu(self.mesh):
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
            if not np.isfinite(segment).all():
                raise ValueError(f"{_source_name(source, index)}: audio holds NaN or inf")
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
                yield from _finish(*in_flight, collected, rate, progress)
            in_flight = (batch, outputs)
        if in_flight is not None:
            yield from _finish(*in_flight, collected, rate, progress)


def _finish(
    batch: _Batch,
    outputs: dict[str, jax.Array] | None,
    collected: dict[int, list],
    rate: int,
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
        times = np.array([(start / rate, (start + size) / rate) for start, size, _ in rows])
        stacked = {name: np.stack([row[name] for *_, row in rows]) for name in rows[0][2]}
        yield source, stacked, times, outcome


def _raise_failure(result: Any) -> Any:
    if isinstance(result, Failure):
        raise result.error
    return result


# ---- saving embeddings ---------------------------------------------------------------------------

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
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        if any(e.last_hidden_state is not None or e.hidden_states is not None for e in embeddings):
            raise ValueError(".npy holds pooled embeddings only; use .npz or .safetensors")
        listing = path.with_name(path.name + ".txt")
        np.save(path, pooled)
        listing.write_text("".join(f"{source}\n" for source in sources), encoding="utf-8")
        return [path, listing]
    arrays = {"pooled": pooled}
    for i, embedding in enumerate(embeddings):
        arrays[f"window_pooled/{i}"] = embedding.window_pooled
        arrays[f"window_times/{i}"] = embedding.window_times
        for name in ("last_hidden_state", "hidden_states"):
            if getattr(embedding, name) is not None:
                arrays[f"{name}/{i}"] = getattr(embedding, name)
    if path.suffix == ".npz":
        np.savez(path, files=np.array(sources), **arrays)
    else:
        safetensors.numpy.save_file(
            {name: np.ascontiguousarray(value) for name, value in arrays.items()},
            path,
            metadata={"files": json.dumps(sources)},
        )
    return [path]
