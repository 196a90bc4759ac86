"""Fine-tuning (or training from a config) and evaluation from files: what ``ast-jax finetune`` and
``ast-jax evaluate`` run.

``finetune`` reads a dataset (`ast_jax.training.datasets.load_dataset`), starts from a checkpoint
(its head is re-initialised when its labels differ from the data's) or from a ``config.json``
(random init), computes and caches the features once, and calls `ast_jax.training.loop.fit`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ast_jax.checkpoints.pretrained import load_feature_extractor, load_pretrained
from ast_jax.config import ASTConfig
from ast_jax.frontend.extractor import PRESETS, FeatureExtractor, default_extractor
from ast_jax.model.attention import resolve_attention
from ast_jax.model.modules import ASTForAudioClassification
from ast_jax.model.params import backbone_params, has_head, init_params, with_backbone
from ast_jax.model.scores import default_activation
from ast_jax.runtime.sharding import replicate
from ast_jax.training.config import TrainConfig
from ast_jax.training.datasets import Dataset, load_dataset, split_dataset
from ast_jax.training.features import compute_features, feature_chunks, feature_stats
from ast_jax.training.loader import FeatureBatches
from ast_jax.training.loop import TrainResult, evaluate_source, fit
from ast_jax.training.metrics import evaluate
from ast_jax.training.pipeline import AudioStream
from ast_jax.training.step import make_predict, resolve_problem_type

__all__ = ["evaluate_model", "finetune", "initial_model"]


def initial_model(
    model: str | os.PathLike, labels: tuple[str, ...], seed: int
) -> tuple[ASTConfig, dict[str, Any], FeatureExtractor | None]:
    """Config, params and (if the checkpoint has one) feature extractor to start training from.

    Args:
      model: a checkpoint (directory or hub id, `load_pretrained`) or a ``config.json`` file
        (random init, HF's initialisation).
      labels: the data's class names; a checkpoint whose labels differ gets a new random head.
      seed: init seed.

    Raises:
      FileNotFoundError, ValueError: as `load_pretrained` / `ASTConfig.from_json_file`.
    """
    path = Path(model)
    if path.is_file() and path.suffix == ".json":
        config = dataclasses.replace(ASTConfig.from_json_file(path), labels=labels)
        return config, init_params(config, seed, scratch=True), None
    config, params = load_pretrained(model)
    try:
        extractor = load_feature_extractor(model)
    except FileNotFoundError:
        extractor = None
    if not has_head(params) or config.labels != labels:
        config = dataclasses.replace(config, labels=labels)
        params = with_backbone(init_params(config, seed), backbone_params(params))
    return config, params, extractor


def _extractor(
    config: ASTConfig,
    base: FeatureExtractor | None,
    stats: str,
    train_features: Callable[[], Iterable[np.ndarray]],
) -> FeatureExtractor:
    """The training extractor with the chosen normalisation statistics (``train_features`` gives
    the unnormalised training features, in chunks, when they are needed)."""
    extractor = base or default_extractor(config)
    if stats == "dataset" or (stats == "auto" and base is None):
        mean, std = feature_stats(train_features())
        return dataclasses.replace(extractor, mean=mean, std=std)
    if stats in PRESETS:
        return dataclasses.replace(
            extractor, mean=PRESETS[stats]["mean"], std=PRESETS[stats]["std"]
        )
    if stats in ("model", "auto"):
        if base is None:
            raise ValueError("stats='model' needs a checkpoint with a preprocessor_config.json")
        return base
    raise ValueError(
        f"stats must be 'auto', 'model', 'dataset' or one of {sorted(PRESETS)}, got {stats!r}"
    )


def finetune(
    data: str | os.PathLike,
    model: str | os.PathLike,
    out_dir: str | os.PathLike,
    train_config: TrainConfig,
    *,
    validation: str | os.PathLike | None = None,
    validation_fraction: float = 0.0,
    stats: str = "auto",
    in_memory: bool = False,
    cache_dir: str | os.PathLike | None = None,
    balanced: bool = False,
    workers: int = 0,
    resume: bool = False,
    mesh: jax.sharding.Mesh | None = None,
    progress: bool = True,
    log_every: int = 50,
    save_every: int | None = None,
    keep: int = 2,
) -> TrainResult:
    """Trains on ``data`` and saves the results in ``out_dir`` (see `ast_jax.training.loop.fit`).

    By default the clips stream from disk (`AudioStream`: decoded by ``workers`` grain processes,
    features computed on the device), so memory does not grow with the dataset. ``in_memory``
    computes every clip's features once on the host, caches them in ``cache_dir`` and trains from
    RAM (`FeatureBatches`): faster for small datasets on a CPU, but without mixup.

    Args:
      data: a dataset folder (``root/<label>/*.wav``) or CSV manifest.
      model: checkpoint or ``config.json`` to start from (`initial_model`).
      out_dir: output directory.
      train_config: hyper-parameters.
      validation: a separate validation dataset, or None.
      validation_fraction: without ``validation``, hold out this share of ``data`` (0: none).
      stats: normalisation statistics: "model" (the checkpoint's extractor), "dataset" (the
        training features' mean and std, one pass over the clips), a `PRESETS` name, or "auto"
        (model if it has an extractor, else dataset).
      in_memory: the small-data path described above.
      cache_dir: feature cache of the in-memory path (default ``out_dir/cache``).
      balanced: draw training clips with the AudioSet recipe's label weights.
      workers: grain worker processes decoding audio (0: in the training process).
      resume: continue from the newest state in ``out_dir/state``; refused if the data, the
        split, the normalisation or the pipeline differ from that run's.
      mesh: data-parallel mesh over every process's devices, or None for one device.
      progress: show progress bars.
      log_every, save_every, keep: as `fit`.

    Raises:
      ValueError: mixup with ``in_memory``, and the errors of the dataset, model and `fit`.
    """
    if in_memory and train_config.mixup > 0:
        raise ValueError("mixup mixes waveforms: it needs the streaming path, not in_memory")
    out_dir = Path(out_dir)
    cache_dir = out_dir / "cache" if cache_dir is None else Path(cache_dir)
    train_set = load_dataset(data)
    val_set: Dataset | None = None
    if validation is not None:
        val_set = load_dataset(validation, labels=train_set.labels)
    elif validation_fraction > 0:
        train_set, val_set = split_dataset(train_set, validation_fraction, train_config.seed)
    config, params, base = initial_model(model, train_set.labels, train_config.seed)
    config = dataclasses.replace(
        config, problem_type=resolve_problem_type(config, train_set.targets)
    )
    # Featurise with the model's input size; statistics only affect normalisation, done later.
    sizing = base or default_extractor(config)
    shard = {"process_index": jax.process_index(), "process_count": jax.process_count()}
    if in_memory:
        features = compute_features(train_set.paths, sizing, cache_dir)
        extractor = _extractor(config, base, stats, lambda: [features])
        train = FeatureBatches(
            features, train_set.targets, batch_size=train_config.batch_size,
            seed=train_config.seed, **shard,
        )  # fmt: skip
        val = None
        if val_set is not None:
            val_features = compute_features(val_set.paths, sizing, cache_dir)
            val = FeatureBatches(
                val_features, val_set.targets, batch_size=train_config.eval_batch_size, **shard
            )
    else:
        extractor = _extractor(config, base, stats, lambda: feature_chunks(train_set.paths, sizing))
        train = AudioStream(
            train_set, extractor, batch_size=train_config.batch_size, seed=train_config.seed,
            balanced=balanced, workers=workers, **shard,
        )  # fmt: skip
        val = None
        if val_set is not None:
            val = AudioStream(
                val_set, extractor, batch_size=train_config.eval_batch_size, workers=workers,
                **shard,
            )  # fmt: skip
    data = {
        "train": train_set.fingerprint(),
        "validation": None if val_set is None else val_set.fingerprint(),
        "normalisation": [float(extractor.mean), float(extractor.std)],
        "balanced": balanced,
        "in_memory": in_memory,
    }
    return fit(
        config, params, extractor, train, val, train_config, out_dir, mesh=mesh, resume=resume,
        progress=progress, log_every=log_every, save_every=save_every, keep=keep, data=data,
    )  # fmt: skip


def evaluate_model(
    model: str | os.PathLike,
    data: str | os.PathLike,
    *,
    batch_size: int = 64,
    workers: int = 0,
    mesh: jax.sharding.Mesh | None = None,
) -> dict[str, Any]:
    """Accuracy, mAP, mean AUC and d' of a checkpoint on a dataset whose labels it knows,
    streaming the clips (features computed on the device).

    Returns:
      `ast_jax.training.metrics.evaluate`'s dict plus ``"examples"``.

    Raises:
      ValueError: a dataset label the model does not have.
    """
    config, params = load_pretrained(model)
    extractor = load_feature_extractor(model)
    dataset = load_dataset(data, labels=config.labels)
    source = AudioStream(
        dataset, extractor, batch_size=batch_size, workers=workers,
        process_index=jax.process_index(), process_count=jax.process_count(),
    )  # fmt: skip
    network = ASTForAudioClassification(resolve_attention(config, mesh=mesh))
    predict_fn = make_predict(
        network, default_activation(config), extractor.mean, extractor.std, extractor
    )
    if mesh is not None:
        params = replicate(params, mesh)
    scores = evaluate_source(predict_fn, params, source, mesh)
    return {**evaluate(scores, dataset.targets), "examples": len(dataset)}
