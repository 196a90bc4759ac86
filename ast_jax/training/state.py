"""The full training state, saved after every epoch so that a run can resume exactly.

A state directory holds ``state.safetensors`` (params ``params/<path>``, optimiser-state leaves
``opt_state/<index>`` in ``jax.tree`` order, the base PRNG key ``rng``, the running weight sum
``average/<path>`` and the running sum of validation predictions ``ensemble``) and
``state.json`` (epoch, counts, history, the training config). Both are written atomically, the JSON
last; the epoch is stored in both and must agree on reading.

Per-step keys are ``fold_in(rng, step)`` and batches depend only on ``(seed, epoch)``, so
resuming after epoch k replays exactly the updates an uninterrupted run makes.
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
import safetensors.numpy
from flax.traverse_util import flatten_dict, unflatten_dict
from numpy.typing import NDArray

from ast_jax.files import atomic_write

__all__ = ["TrainState", "load_state", "save_state"]

_ARRAYS = "state.safetensors"
_META = "state.json"
# Training-config fields that may change between a run and its resumption.
_RESUMABLE_CHANGES = frozenset({"epochs", "eval_batch_size"})


@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything a training run needs to continue.

    Attributes:
      params: the model params after ``epoch`` epochs.
      opt_state: the optimiser state.
      rng: the base PRNG key data (``jax.random.key_data``), uint32.
      epoch: finished epochs.
      history: one record per finished epoch.
      average_sum: sum of the params of the epochs in the weight-average window, or None.
      average_count: how many epochs ``average_sum`` holds.
      ensemble_sum: ``(B, C)`` sum of the validation scores of every epoch, or None.
      ensemble_count: how many epochs ``ensemble_sum`` holds.
    """

    params: Any
    opt_state: Any
    rng: NDArray[np.uint32]
    epoch: int = 0
    history: tuple[dict[str, Any], ...] = ()
    average_sum: Any | None = None
    average_count: int = 0
    ensemble_sum: NDArray[np.float64] | None = None
    ensemble_count: int = 0

    @classmethod
    def start(cls, params: Any, opt_state: Any, seed: int) -> TrainState:
        """The state before the first epoch."""
        return cls(params, opt_state, np.asarray(jax.random.key_data(jax.random.key(seed))))

    @property
    def key(self) -> jax.Array:
        """The base PRNG key."""
        return jax.random.wrap_key_data(self.rng)

    def after_epoch(self, params: Any, opt_state: Any, epoch: int) -> TrainState:
        """The state after ``epoch`` finished epochs, with these params and optimiser state."""
        return dataclasses.replace(self, params=params, opt_state=opt_state, epoch=epoch)

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


def save_state(directory: str | os.PathLike, state: TrainState, train_config: Any) -> Path:
    """Writes ``state`` to ``directory`` (see the module docstring); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {f"params/{k}": np.asarray(v) for k, v in flatten_dict(state.params, sep="/").items()}
    for i, leaf in enumerate(jax.tree.leaves(state.opt_state)):
        arrays[f"opt_state/{i:06d}"] = np.asarray(leaf)
    arrays["rng"] = np.asarray(state.rng)
    if state.average_sum is not None:
        flat = flatten_dict(state.average_sum, sep="/")
        arrays |= {f"average/{k}": np.asarray(v) for k, v in flat.items()}
    if state.ensemble_sum is not None:
        arrays["ensemble"] = np.asarray(state.ensemble_sum)
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    metadata = {"epoch": str(state.epoch)}
    atomic_write(
        directory / _ARRAYS,
        lambda temp: safetensors.numpy.save_file(arrays, temp, metadata=metadata),
    )
    meta = {
        "epoch": state.epoch,
        "average_count": state.average_count,
        "ensemble_count": state.ensemble_count,
        "history": list(state.history),
        "train_config": train_config.to_dict(),
    }
    atomic_write(
        directory / _META,
        lambda temp: Path(temp).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8"),
    )
    return directory


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


def load_state(directory: str | os.PathLike, template: TrainState, train_config: Any) -> TrainState:
    """Reads a state written by `save_state`, shaped like ``template`` (a fresh state of the same
    model and optimiser).

    Raises:
      FileNotFoundError: missing files.
      ValueError: files that disagree, a different training config (other than ``epochs``), or
        arrays that do not match the template.
    """
    directory = Path(directory)
    meta = json.loads((directory / _META).read_text())
    _check_config(meta["train_config"], train_config.to_dict())
    with safetensors.safe_open(directory / _ARRAYS, framework="np") as file:
        if file.metadata().get("epoch") != str(meta["epoch"]):
            raise ValueError(f"{directory}: {_ARRAYS} and {_META} are from different epochs")
        arrays = {name: file.get_tensor(name) for name in file.keys()}

    def group(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

    params = _matching(unflatten_dict(group("params/"), sep="/"), template.params, "params")
    leaves, treedef = jax.tree.flatten(template.opt_state)
    saved = group("opt_state/")
    if len(saved) != len(leaves):
        raise ValueError(
            f"optimiser state has {len(saved)} arrays; this optimiser has {len(leaves)}"
        )
    opt_leaves = []
    for i, want in enumerate(leaves):
        have = saved[f"{i:06d}"]
        if have.size != np.size(want):
            raise ValueError(
                f"optimiser state leaf {i}: shape {have.shape}, expected {np.shape(want)}"
            )
        # safetensors stores scalars (e.g. Adam's step count) as shape (1,).
        opt_leaves.append(have.reshape(np.shape(want)))
    average = group("average/")
    return TrainState(
        params=params,
        opt_state=jax.tree.unflatten(treedef, opt_leaves),
        rng=arrays["rng"],
        epoch=int(meta["epoch"]),
        history=tuple(meta["history"]),
        average_sum=unflatten_dict(average, sep="/") if average else None,
        average_count=int(meta["average_count"]),
        ensemble_sum=arrays.get("ensemble"),
        ensemble_count=int(meta["ensemble_count"]),
    )


def _matching(tree: Any, template: Any, name: str) -> Any:
    """``tree`` if its paths and shapes equal ``template``'s, else ``ValueError``."""
    got = flatten_dict(tree, sep="/")
    want = flatten_dict(template, sep="/")
    problems = sorted(set(got) ^ set(want))
    problems += [k for k in sorted(set(got) & set(want)) if got[k].shape != np.shape(want[k])]
    if problems:
        raise ValueError(f"saved {name} do not match the model: {problems[:5]}")
    return tree
