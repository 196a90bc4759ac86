"""The training loop: epochs of train steps, evaluation, checkpoint ensembling, weight averaging and
a resumable state after every epoch.

Shape legend: B batch, T frames, F mel bins, C classes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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
from ast_jax.runtime.sharding import batch_sharding, replicate
from ast_jax.training import metrics as metrics_lib
from ast_jax.training.config import TrainConfig
from ast_jax.training.history import write_history
from ast_jax.training.loader import Loader
from ast_jax.training.optimizer import learning_rate_schedule, make_optimizer
from ast_jax.training.state import TrainState, load_state, save_state
from ast_jax.training.step import make_predict, make_train_step, predict, resolve_problem_type

__all__ = ["TrainResult", "fit"]


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


def _host(tree: Any) -> Any:
    return jax.tree.map(np.asarray, tree)


def _train_epoch(
    step_fn: Callable,
    loader: Loader,
    params: Any,
    opt_state: Any,
    epoch: int,
    key: jax.Array,
    bar: Any,
) -> tuple[Any, Any, dict[str, float]]:
    """One pass over ``loader``; returns the new params and state and the mean batch metrics.

    Step ``i`` of the epoch uses ``fold_in(key, global step)``, so a resumed run replays it."""
    totals = {"loss": 0.0, "accuracy": 0.0}
    for i, batch in enumerate(loader.epoch(epoch)):
        step_key = jax.random.fold_in(key, epoch * loader.steps_per_epoch + i)
        params, opt_state, metrics = step_fn(params, opt_state, batch, step_key)
        for name in totals:
            totals[name] += float(metrics[name])
        bar.update()
        bar.set_postfix(
            loss=f"{totals['loss'] / (i + 1):.4f}", acc=f"{totals['accuracy'] / (i + 1):.3f}"
        )
    return params, opt_state, {k: v / loader.steps_per_epoch for k, v in totals.items()}


def _validate(
    state: TrainState, scores: NDArray[np.float32], targets: NDArray[np.float32]
) -> tuple[TrainState, dict[str, float]]:
    """Metrics of this epoch's scores and of the checkpoint ensemble (mean of all epochs')."""
    state = state.add_predictions(scores)
    record = {f"val_{k}": v for k, v in metrics_lib.evaluate(scores, targets).items()}
    ensemble = metrics_lib.evaluate(state.ensemble_scores(), targets)
    return state, record | {f"ensemble_{k}": v for k, v in ensemble.items()}


def fit(
    config: ASTConfig,
    params: Mapping[str, Any],
    extractor: FeatureExtractor,
    train: tuple[NDArray[np.float32], NDArray[np.float32]],
    validation: tuple[NDArray[np.float32], NDArray[np.float32]] | None,
    train_config: TrainConfig,
    out_dir: str | Path,
    *,
    waveforms: tuple[NDArray[np.float32], NDArray[np.int64]] | None = None,
    mesh: Mesh | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Trains for ``train_config.epochs``, evaluating and checkpointing after every epoch.

    After each epoch: validation metrics of this epoch's weights and of the average of all
    epochs' predictions so far (checkpoint ensemble, ``ensemble_*``), the running weight average
    when enabled, ``history.json``/``history.csv``/``curves.png`` and the full training state
    (``state/``) in ``out_dir``. At the end the model is saved with `save_pretrained` to
    ``out_dir/model`` (and ``out_dir/model_wa`` for the weight average).

    Args:
      config: the model config (labels, problem type).
      params: initial ``ASTForAudioClassification`` params.
      extractor: its normalisation statistics are used and it is saved with the model.
      train: ``(B, T, F)`` unnormalised features (`ast_jax.training.features.compute_features`)
        and ``(B, C)`` targets.
      validation: the same for validation, or None.
      train_config: hyper-parameters.
      out_dir: output directory.
      waveforms: `ast_jax.training.features.load_waveforms` of the training clips; needed for
        mixup.
      mesh: data-parallel mesh (``ast_jax.data_mesh()``); None: one device.
      resume: continue from ``out_dir/state`` if it exists.
      progress: show a tqdm progress bar.

    Raises:
      ValueError: batch size not divisible by the mesh size, or a state that does not match.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    tc = train_config
    if mesh is not None and tc.batch_size % mesh.size:
        raise ValueError(
            f"batch_size {tc.batch_size} must be a multiple of the {mesh.size} devices"
        )
    problem_type = resolve_problem_type(config, train[1])
    model = ASTForAudioClassification(resolve_attention(config, mesh=mesh))
    loader = Loader(
        *train,
        batch_size=tc.batch_size,
        seed=tc.seed,
        mixup=tc.mixup,
        waveforms=waveforms,
        extractor=extractor,
        sharding=None if mesh is None else batch_sharding(mesh),
    )
    updates_per_epoch = max(1, loader.steps_per_epoch // tc.accumulate)
    schedule = learning_rate_schedule(tc, updates_per_epoch)
    optimizer = make_optimizer(tc, updates_per_epoch)
    step_fn = make_train_step(
        model, optimizer, tc, problem_type=problem_type, mean=extractor.mean, std=extractor.std,
        mesh=mesh,
    )  # fmt: skip
    activation = default_activation(dataclasses.replace(config, problem_type=problem_type))
    predict_fn = make_predict(model, activation, extractor.mean, extractor.std)
    # Host copies: the step donates its inputs, which must not be the caller's buffers.
    state = TrainState.start(_host(params), optimizer.init(_host(params)), tc.seed)
    if resume and (out_dir / "state").is_dir():
        state = load_state(out_dir / "state", state, tc)
    params, opt_state = state.params, state.opt_state
    if mesh is not None:
        params, opt_state = replicate(params, mesh), replicate(opt_state, mesh)
    for epoch in range(state.epoch, tc.epochs):
        started = time.perf_counter()
        with tqdm(
            total=loader.steps_per_epoch, disable=not progress, unit="batch", leave=False,
            desc=f"epoch {epoch + 1}/{tc.epochs}",
        ) as bar:  # fmt: skip
            params, opt_state, train_metrics = _train_epoch(
                step_fn, loader, params, opt_state, epoch, state.key, bar
            )
        record = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * loader.steps_per_epoch,
            "learning_rate": float(schedule(epoch * updates_per_epoch)),  # at the epoch's start
            "train_loss": train_metrics["loss"],
            "train_accuracy": train_metrics["accuracy"],
        }
        host_params = _host(params)
        state = state.after_epoch(host_params, _host(opt_state), epoch + 1)
        first, last = tc.weight_average or (0, -1)
        if first <= epoch + 1 <= last:
            state = state.add_to_average(host_params)
        if validation is not None:
            scores = predict(predict_fn, params, validation[0], tc.eval_batch_size)
            state, validation_record = _validate(state, scores, validation[1])
            record |= validation_record
        record["seconds"] = time.perf_counter() - started
        state = state.with_record(record)
        save_state(out_dir / "state", state, tc)
        write_history(out_dir, state.history)
        if progress:
            shown = {k: round(v, 4) for k, v in record.items() if isinstance(v, float)}
            tqdm.write(f"epoch {epoch + 1}: {shown}")
    averaged = state.averaged_params()
    save_pretrained(out_dir / "model", config, state.params, feature_extractor=extractor)
    if averaged is not None:
        save_pretrained(out_dir / "model_wa", config, averaged, feature_extractor=extractor)
    return TrainResult(state.params, averaged, state.history)
