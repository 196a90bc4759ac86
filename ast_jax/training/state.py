"""The full training state and its checkpoints, on orbax-checkpoint, so that a run resumes exactly.

`StateCheckpoints` keeps the states of a run in ``OUT/state/<update>/``, each written by
orbax's `CheckpointManager` (asynchronously, multi-process safe: every process calls `save`, the
primary one writes; a checkpoint becomes visible only once complete). It keeps the last ``keep``
states and the best one by a validation metric. A state holds the params, the optimiser state,
the base PRNG key, the running weight-average and ensemble sums (host NumPy arrays, so a state
written by N processes restores in any number), and as JSON the position in the data (epoch and
step), the counts, the history and the training config.

Per-step keys are ``fold_in(rng, global step)`` and batches depend only on ``(seed, epoch)``, so
resuming from a state mid-epoch replays exactly the updates an uninterrupted run makes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from numpy.typing import NDArray
from orbax.checkpoint.checkpoint_managers import preservation_policy

__all__ = ["StateCheckpoints", "TrainState"]

# Training-config fields that may change between a run and its resumption.
_RESUMABLE_CHANGES = frozenset({"epochs", "eval_batch_size"})


@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything a training run needs to continue.

    Attributes:
      params: the model params at the position ``(epoch, step)``.
      opt_state: the optimiser state.
      rng: the base PRNG key data (``jax.random.key_data``), uint32.
      epoch: finished epochs.
      step: global batches done in the current epoch (0 at an epoch boundary).
      history: one record per finished epoch.
      average_sum: sum of the params of the epochs in the weight-average window, or None.
      average_count: how many epochs ``average_sum`` holds.
      ensemble_sum: ``(B, C)`` sum of the validation scores of every epoch, or None.
      ensemble_count: how many epochs ``ensemble_sum`` holds.
      running: sums of the train metrics over the ``step`` batches of the current epoch.
    """

    params: Any
    opt_state: Any
    rng: NDArray[np.uint32]
    epoch: int = 0
    step: int = 0
    history: tuple[dict[str, Any], ...] = ()
    average_sum: Any | None = None
    average_count: int = 0
    ensemble_sum: NDArray[np.float64] | None = None
    ensemble_count: int = 0
    running: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @classmethod
    def start(cls, params: Any, opt_state: Any, seed: int) -> TrainState:
        """The state before the first epoch."""
        return cls(params, opt_state, np.asarray(jax.random.key_data(jax.random.key(seed))))

    @property
    def key(self) -> jax.Array:
        """The base PRNG key."""
        return jax.random.wrap_key_data(self.rng)

    def at(self, params: Any, opt_state: Any, epoch: int, step: int = 0) -> TrainState:
        """The state at ``step`` global batches into epoch ``epoch`` (0-based finished epochs),
        with these params and optimiser state (host arrays)."""
        return dataclasses.replace(self, params=params, opt_state=opt_state, epoch=epoch, step=step)

    def with_record(self, record: dict[str, Any]) -> TrainState:
        """The state with ``record`` appended to the history."""
        return dataclasses.replace(self, history=(*self.history, record))

    def add_to_average(self, params: Any) -> TrainState:
        """Adds ``params`` (host arrays) to the weight-average sum, in float64."""
        params = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
        total = (
            params if self.average_sum is None else jax.tree.map(np.add, self.average_sum, params)
        )
        return dataclasses.replace(self, average_sum=total, average_count=self.average_count + 1)

    def averaged_params(self) -> Any | None:
        """The equal-weight average of the params added, float32, or None."""
        if self.average_sum is None:
            return None
        count = self.average_count
        return jax.tree.map(lambda x: (x / count).astype(np.float32), self.average_sum)

    def add_predictions(self, scores: NDArray[np.floating]) -> TrainState:
        """Adds one epoch's ``(B, C)`` validation scores to the ensemble sum (float64)."""
        scores = np.asarray(scores, np.float64)
        total = scores if self.ensemble_sum is None else self.ensemble_sum + scores
        return dataclasses.replace(self, ensemble_sum=total, ensemble_count=self.ensemble_count + 1)

    def ensemble_scores(self) -> NDArray[np.float64]:
        """The mean of every epoch's validation scores (the original's checkpoint ensemble)."""
        if self.ensemble_sum is None:
            raise ValueError("no predictions have been added")
        return self.ensemble_sum / self.ensemble_count


def _check_config(saved: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    # JSON turns tuples into lists; compare through a JSON round trip.
    current = json.loads(json.dumps(current))
    changed = sorted(
        k for k in current if k not in _RESUMABLE_CHANGES and saved.get(k) != current[k]
    )
    if changed:
        raise ValueError(
            "cannot resume with a different training config; changed: "
            + ", ".join(f"{k} ({saved.get(k)!r} -> {current[k]!r})" for k in changed)
        )


def _check_data(saved: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> None:
    if saved is None or current is None:
        return
    current = json.loads(json.dumps(current))
    changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if changed:
        raise ValueError(
            "cannot resume: the data or its handling differ from the run that wrote the state "
            f"({', '.join(f'{k}: {saved.get(k)!r} -> {current.get(k)!r}' for k in changed)}); "
            "give the same data, --val/--val-fraction, --stats and --balanced as that run, or "
            "start in a new output directory"
        )


def _arrays(state: TrainState) -> dict[str, Any]:
    """The array part of a state; absent sums are empty dicts (orbax keeps the structure)."""
    return {
        "params": state.params,
        "opt_state": state.opt_state,
        "rng": np.asarray(state.rng),
        "average_sum": {} if state.average_sum is None else state.average_sum,
        "ensemble_sum": {} if state.ensemble_sum is None else {"scores": state.ensemble_sum},
    }


class StateCheckpoints:
    """The training states of one run in ``directory``: save, find the latest, restore."""

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        keep: int = 2,
        best_metric: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Opens (or creates) the state directory.

        Args:
          directory: where the states go (``OUT/state``).
          keep: how many of the latest states to keep (>= 1).
          best_metric: also keep the state with the highest value of this validation metric
            (e.g. ``"val_accuracy"``); None keeps only the latest.
          data: what identifies the run's data (JSON-able: dataset fingerprints, the split,
            normalisation); saved with every state, and `restore` refuses a state whose data
            differ.
        """
        self._data = None if data is None else dict(data)
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        policies: list[Any] = [preservation_policy.LatestN(keep)]
        if best_metric is not None:
            policies.append(
                preservation_policy.BestN(
                    get_metric_fn=lambda metrics: metrics[best_metric],
                    n=1,
                    keep_checkpoints_without_metrics=False,  # LatestN keeps the recent ones
                )
            )
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                preservation_policy=preservation_policy.AnyPreservationPolicy(policies),
                enable_async_checkpointing=True,
            ),
        )

    def save(
        self,
        update: int,
        state: TrainState,
        train_config: Any,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Starts writing ``state`` as checkpoint ``update`` (the global update count) in the
        background; call `wait` (or `close`) before relying on it. Every process must call it."""
        meta = {
            "epoch": state.epoch,
            "step": state.step,
            "average_count": state.average_count,
            "ensemble_count": state.ensemble_count,
            "ensemble_shape": None
            if state.ensemble_sum is None
            else list(state.ensemble_sum.shape),
            "history": list(state.history),
            "running": dict(state.running),
            "train_config": train_config.to_dict(),
            "data": self._data,
        }
        self._manager.save(
            update,
            args=ocp.args.Composite(
                arrays=ocp.args.StandardSave(_arrays(state)), meta=ocp.args.JsonSave(meta)
            ),
            metrics=dict(metrics) if metrics else None,
        )

    def latest(self) -> int | None:
        """The newest complete checkpoint, or None."""
        return self._manager.latest_step()

    def restore(self, template: TrainState, train_config: Any) -> TrainState:
        """The newest state, shaped like ``template`` (a fresh state of the same model and
        optimiser).

        Raises:
          FileNotFoundError: no complete checkpoint in the directory.
          ValueError: a different training config (other than ``epochs`` and
            ``eval_batch_size``) or data, or arrays that do not match the template.
        """
        update = self.latest()
        if update is None:
            raise FileNotFoundError(f"no training state in {self.directory}")
        meta = self._manager.restore(update, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            "meta"
        ]
        _check_config(meta["train_config"], train_config.to_dict())
        _check_data(meta.get("data"), self._data)
        shapes = _arrays(template)
        if meta["average_count"]:
            shapes["average_sum"] = jax.tree.map(
                lambda x: np.zeros(np.shape(x), np.float64), template.params
            )
        if meta["ensemble_shape"] is not None:
            shapes["ensemble_sum"] = {"scores": np.zeros(meta["ensemble_shape"], np.float64)}
        restored = self._manager.restore(
            update,
            args=ocp.args.Composite(arrays=ocp.args.StandardRestore(_abstract(shapes))),
        )["arrays"]
        ensemble = restored["ensemble_sum"].get("scores") if restored["ensemble_sum"] else None
        return TrainState(
            params=restored["params"],
            opt_state=restored["opt_state"],
            rng=np.asarray(restored["rng"]),
            epoch=int(meta["epoch"]),
            step=int(meta["step"]),
            history=tuple(meta["history"]),
            average_sum=restored["average_sum"] or None,
            average_count=int(meta["average_count"]),
            ensemble_sum=None if ensemble is None else np.asarray(ensemble),
            ensemble_count=int(meta["ensemble_count"]),
            running=meta["running"],
        )

    def wait(self) -> None:
        """Blocks until every started save is complete."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self._manager.close()


def _abstract(tree: Any) -> Any:
    """Host-array restore targets: NumPy arrays of the template's shapes and dtypes."""
    return jax.tree.map(lambda x: np.zeros(np.shape(x), np.asarray(x).dtype), tree)
