"""The training loop: epochs of train steps over a batch source, evaluation, checkpoint ensembling,
weight averaging, and a resumable state (orbax) after every epoch and every ``save_every`` steps.

A batch source is an `ast_jax.training.pipeline.AudioStream` (audio decoded by grain workers,
features computed on the device) or an `ast_jax.training.loader.FeatureBatches` (features in
memory). Metrics stay on the device and are fetched every ``log_every`` steps; a non-finite loss
stops the run with an error that names the last good state, and no state is saved after it.

Shape legend: B batch, T frames, F mel bins, C classes.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import jax
import numpy as np
from jax.sharding import Mesh
from numpy.typing import NDArray

from ast_jax.checkpoints.pretrained import save_pretrained
from ast_jax.config import ASTConfig
from ast_jax.frontend.extractor import FeatureExtractor
from ast_jax.model.attention import resolve_attention
from ast_jax.model.modules import ASTForAudioClassification
from ast_jax.model.scores import default_activation
from ast_jax.runtime.sharding import gather, global_batch, replicate
from ast_jax.training import metrics as metrics_lib
from ast_jax.training.config import TrainConfig
from ast_jax.training.history import format_record, write_history
from ast_jax.training.optimizer import learning_rate_schedule, make_optimizer, schedule_warning
from ast_jax.training.state import StateCheckpoints, TrainState
from ast_jax.training.step import make_predict, make_train_step, resolve_problem_type

__all__ = ["BatchSource", "TrainResult", "evaluate_source", "fit"]

# Train metrics averaged per epoch.
_METRICS = ("loss", "accuracy")


class BatchSource(Protocol):
    """What `fit` reads: `AudioStream` or `FeatureBatches`."""

    targets: NDArray[np.float32]

    @property
    def steps_per_epoch(self) -> int: ...

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[dict[str, NDArray]]: ...

    def ordered(self) -> Iterator[dict[str, NDArray]]: ...


@dataclasses.dataclass
class TrainResult:
    """What `fit` returns.

    Attributes:
      params: the last epoch's params.
      averaged_params: the weight average over ``TrainConfig.weight_average`` epochs, or None.
      history: one dict per epoch (`ast_jax.training.history` lists the keys).
    """

    params: Any
    averaged_params: Any | None
    history: list[dict[str, Any]]


def _local(x: Any) -> Any:
    """This process's copy of a replicated array (all of it), or ``x`` itself if not a jax.Array.
    A replicated array of several processes is not addressable as a whole."""
    return x.addressable_data(0) if isinstance(x, jax.Array) else x


def _host(tree: Any) -> Any:
    """A tree of replicated device arrays as host NumPy arrays."""
    return jax.tree.map(lambda x: np.asarray(_local(x)), tree)


def evaluate_source(
    predict_fn: Callable[[Any, Any], jax.Array],
    params: Any,
    source: BatchSource,
    mesh: Mesh | None,
) -> NDArray[np.float32]:
    """Scores ``(N, C)`` of every example of ``source``, in order (padding rows dropped)."""
    outputs = [gather(predict_fn(params, global_batch(batch, mesh))) for batch in source.ordered()]
    return np.concatenate(outputs)[: len(source.targets)]


def _validate(
    state: TrainState, scores: NDArray[np.float32], targets: NDArray[np.float32]
) -> tuple[TrainState, dict[str, float]]:
    """Metrics of this epoch's scores and of the checkpoint ensemble (mean of all epochs')."""
    state = state.add_predictions(scores)
    record = {f"val_{k}": v for k, v in metrics_lib.evaluate(scores, targets).items()}
    ensemble = metrics_lib.evaluate(state.ensemble_scores(), targets)
    return state, record | {f"ensemble_{k}": v for k, v in ensemble.items()}


@dataclasses.dataclass
class _Running:
    """Sums of the train metrics over the steps done in the current epoch (host floats)."""

    sums: dict[str, float]
    steps: int

    def check(self, epoch: int, step: int, last_good: str) -> None:
        if not math.isfinite(self.sums["loss"]):
            raise FloatingPointError(
                f"the training loss became {self.sums['loss']} by epoch {epoch + 1}, step {step}; "
                f"stopped without saving. The last good state: {last_good}"
            )

    def means(self) -> dict[str, float]:
        return {name: total / max(self.steps, 1) for name, total in self.sums.items()}


def fit(
    config: ASTConfig,
    params: Mapping[str, Any],
    extractor: FeatureExtractor,
    train: BatchSource,
    validation: BatchSource | None,
    train_config: TrainConfig,
    out_dir: str | Path,
    *,
    mesh: Mesh | None = None,
    resume: bool = False,
    progress: bool = True,
    log_every: int = 50,
    save_every: int | None = None,
    keep: int = 2,
    data: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Trains for ``train_config.epochs``, evaluating and saving the state after every epoch.

    After each epoch: validation metrics of this epoch's weights and of the average of all
    epochs' predictions so far (checkpoint ensemble, ``ensemble_*``), the running weight average
    when enabled, ``history.json``/``history.csv``/``curves.png`` and the training state
    (`StateCheckpoints` in ``out_dir/state``). At the end the model is saved with
    `save_pretrained` to ``out_dir/model`` (and ``out_dir/model_wa`` for the weight average).
    With several processes, every process runs this function; the first one writes the files.

    Args:
      config: the model config (labels, problem type).
      params: initial ``ASTForAudioClassification`` params.
      extractor: its normalisation statistics are used (and it computes the features of waveform
        batches); it is saved with the model.
      train: the training batches.
      validation: the validation batches, or None.
      train_config: hyper-parameters.
      out_dir: output directory.
      mesh: data-parallel mesh over every process's devices (`ast_jax.data_mesh`); None: one
        device.
      resume: continue from the newest state in ``out_dir/state``, mid-epoch if it was saved
        there.
      progress: show a tqdm progress bar (on the first process).
      log_every: fetch the metrics from the device every this many steps (and check the loss).
      save_every: also save the state every this many steps inside an epoch; None: epoch ends.
      keep: latest states kept (the best by validation is kept too).
      data: what identifies the data (`StateCheckpoints`): saved with the state; resuming with
        other data is refused.

    Raises:
      ValueError: a batch size that the mesh cannot split; a state in ``out_dir`` without
        ``resume`` (it would be overwritten), or with ``resume`` a state that does not match.
      FloatingPointError: the loss became NaN or infinite.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    tc = train_config
    primary = jax.process_index() == 0
    if mesh is not None and tc.batch_size % mesh.size:
        raise ValueError(
            f"batch_size {tc.batch_size} must be a multiple of the {mesh.size} devices"
        )
    if log_every < 1 or (save_every is not None and save_every < 1):
        raise ValueError("log_every and save_every must be >= 1")
    problem_type = resolve_problem_type(config, train.targets)
    model = ASTForAudioClassification(resolve_attention(config, mesh=mesh))
    steps = train.steps_per_epoch
    updates_per_epoch = max(1, steps // tc.accumulate)
    schedule = learning_rate_schedule(tc, updates_per_epoch)
    problem = schedule_warning(tc, tc.epochs * updates_per_epoch)
    if problem is not None:
        warnings.warn(problem, stacklevel=2)
    optimizer = make_optimizer(tc, updates_per_epoch)
    step_fn = make_train_step(
        model, optimizer, tc, problem_type=problem_type, mean=extractor.mean, std=extractor.std,
        mesh=mesh, extractor=extractor,
    )  # fmt: skip
    activation = default_activation(dataclasses.replace(config, problem_type=problem_type))
    predict_fn = make_predict(model, activation, extractor.mean, extractor.std, extractor)
    best = "val_mAP" if problem_type == "multi_label_classification" else "val_accuracy"
    checkpoints = StateCheckpoints(
        out_dir / "state",
        keep=keep,
        best_metric=best if validation is not None else None,
        data=data,
    )
    # Host copies: the step donates its inputs, which must not be the caller's buffers.
    state = TrainState.start(_host(params), optimizer.init(_host(params)), tc.seed)
    if resume and checkpoints.latest() is not None:
        try:
            state = checkpoints.restore(state, tc)
        except BaseException:
            checkpoints.close()  # a refused state: release orbax's threads before raising
            raise
    elif resume:
        warnings.warn(
            f"no training state in {checkpoints.directory}: starting from the beginning",
            stacklevel=2,
        )
    elif checkpoints.latest() is not None:
        checkpoints.close()
        raise ValueError(
            f"{checkpoints.directory} holds the state of an earlier run: resume it (--resume), "
            "or train into a new output directory"
        )
    place = (lambda tree: jax.device_put(tree)) if mesh is None else (lambda t: replicate(t, mesh))
    params, opt_state = place(state.params), place(state.opt_state)
    running = _Running(dict(state.running), state.step) if state.step else None
    try:
        for epoch in range(state.epoch, tc.epochs):
            started = time.perf_counter()
            first = state.step if epoch == state.epoch else 0
            running = running if first else _Running(dict.fromkeys(_METRICS, 0.0), 0)
            pending: list[dict[str, jax.Array]] = []
            latest = checkpoints.latest()
            last_good = (
                "none yet" if latest is None else f"{checkpoints.directory} (update {latest})"
            )
            with tqdm(
                total=steps, initial=first, disable=not (progress and primary), unit="batch",
                leave=False, desc=f"epoch {epoch + 1}/{tc.epochs}",
            ) as bar:  # fmt: skip
                for i, batch in enumerate(train.epoch(epoch, first), start=first):
                    key = jax.random.fold_in(state.key, epoch * steps + i)
                    params, opt_state, metrics = step_fn(
                        params, opt_state, global_batch(batch, mesh), key
                    )
                    pending.append({name: metrics[name] for name in _METRICS})
                    done = i + 1
                    if (
                        done % log_every == 0
                        or done == steps
                        or (save_every is not None and done % save_every == 0)
                    ):
                        _collect(running, pending)
                        running.check(epoch, done, last_good)
                        bar.update(done - bar.n)
                        means = running.means()
                        bar.set_postfix(loss=f"{means['loss']:.4f}", acc=f"{means['accuracy']:.3f}")
                        pending = []
                    if save_every is not None and done % save_every == 0 and done < steps:
                        state = dataclasses.replace(
                            state.at(_host(params), _host(opt_state), epoch, done),
                            running=dict(running.sums),
                        )
                        checkpoints.save(epoch * steps + done, state, tc)
                        last_good = f"{checkpoints.directory} (update {epoch * steps + done})"
            _collect(running, pending)
            running.check(epoch, steps, last_good)
            means = running.means()
            record = {
                "epoch": epoch + 1,
                "step": (epoch + 1) * steps,
                "learning_rate": float(schedule(epoch * updates_per_epoch)),  # at epoch start
                "train_loss": means["loss"],
                "train_accuracy": means["accuracy"],
            }
            host_params = _host(params)
            state = dataclasses.replace(
                state.at(host_params, _host(opt_state), epoch + 1, 0), running={}
            )
            first_avg, last_avg = tc.weight_average or (0, -1)
            if first_avg <= epoch + 1 <= last_avg:
                state = state.add_to_average(host_params)
            validation_metrics = None
            if validation is not None:
                scores = evaluate_source(predict_fn, params, validation, mesh)
                state, validation_record = _validate(state, scores, validation.targets)
                record |= validation_record
                validation_metrics = {best: float(record[best])}
            record["seconds"] = time.perf_counter() - started
            state = state.with_record(record)
            checkpoints.save((epoch + 1) * steps, state, tc, metrics=validation_metrics)
            if primary:
                write_history(out_dir, state.history)
                if progress:
                    tqdm.write(f"epoch {epoch + 1}: " + format_record(record))
            running = None
    finally:
        checkpoints.close()
    averaged = state.averaged_params()
    if primary:
        save_pretrained(out_dir / "model", config, state.params, feature_extractor=extractor)
        if averaged is not None:
            save_pretrained(out_dir / "model_wa", config, averaged, feature_extractor=extractor)
    return TrainResult(state.params, averaged, list(state.history))


def _collect(running: _Running, pending: list[dict[str, jax.Array]]) -> None:
    """Adds the fetched metrics of the steps in ``pending`` to ``running`` (one host sync)."""
    if not pending:
        return
    for metrics in jax.device_get(jax.tree.map(_local, pending)):
        for name in _METRICS:
            running.sums[name] += float(metrics[name])
    running.steps += len(pending)
