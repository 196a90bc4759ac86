"""The pure, jitted train step and evaluation step, and the losses they take.

The train step is ``(params, opt_state, batch, rng) -> (params, opt_state, metrics)``: it augments
the batch's unnormalised log-mel features (SpecAugment, normalisation, noise, time shift;
`ast_jax.training.augment`), runs the model with dropout, takes the loss of the config's problem
type and applies one optax update. It is data-parallel when given a mesh: the batch is split over
the ``"data"`` axis and params and optimiser state are replicated, so XLA sums the gradients across
devices.

Shape legend: B batch, T frames, F mel bins, C classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from numpy.typing import NDArray

from ast_jax.config import ASTConfig
from ast_jax.frontend.extractor import FeatureExtractor
from ast_jax.frontend.jax_fbank import extract_features
from ast_jax.model.scores import Activation, activate
from ast_jax.runtime.sharding import batch_sharding
from ast_jax.training.augment import (
    add_noise,
    mixup,
    normalize,
    roll_time,
    spec_augment,
    warp_frequency,
)
from ast_jax.training.config import TrainConfig
from ast_jax.training.datasets import is_multi_label
from ast_jax.training.features import raw_extractor

__all__ = [
    "augment_features",
    "batch_features",
    "loss_fn",
    "make_predict",
    "make_train_step",
    "resolve_problem_type",
]


def resolve_problem_type(config: ASTConfig, targets: NDArray[np.floating]) -> str:
    """``config.problem_type``, or HF's rule when unset: one label -> regression; several labels
    -> multi-label if any example carries more than one, else single-label (docs/training.md,
    Losses)."""
    if config.problem_type is not None:
        return config.problem_type
    if config.num_labels == 1:
        return "regression"
    if is_multi_label(targets):
        return "multi_label_classification"
    return "single_label_classification"


def loss_fn(logits: jax.Array, targets: jax.Array, mask: jax.Array, problem_type: str) -> jax.Array:
    """Mean loss over the kept examples (``mask`` 1.0), HF semantics (docs/training.md, Losses).

    Args:
      logits: ``(B, C)``.
      targets: ``(B, C)`` float: one-hot or soft (mixup) class probabilities for single-label
        (softmax cross-entropy, equal to HF's integer-label loss on one-hot targets); multi-hot for
        multi-label (sigmoid BCE, mean over classes); values for regression (MSE, mean over
        outputs).
      mask: ``(B,)`` 1.0 for real examples, 0.0 for padding (HF's ignored label -100).
      problem_type: one of ``ast_jax.config.PROBLEM_TYPES`` except None.

    Returns:
      Scalar float32.

    Raises:
      ValueError: unknown ``problem_type``.
    """
    logits = logits.astype(jnp.float32)
    if problem_type == "single_label_classification":
        per_example = optax.softmax_cross_entropy(logits, targets)  # (B,)
    elif problem_type == "multi_label_classification":
        per_example = optax.sigmoid_binary_cross_entropy(logits, targets).mean(-1)
    elif problem_type == "regression":
        per_example = jnp.square(logits - targets).mean(-1)
    else:
        raise ValueError(
            "problem_type must be 'single_label_classification', 'multi_label_classification' or "
            f"'regression', got {problem_type!r}"
        )
    return jnp.sum(per_example * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def augment_features(
    key: jax.Array, features: jax.Array, config: TrainConfig, mean: float, std: float
) -> jax.Array:
    """SpecAugment on the unnormalised ``(B, T, F)`` features, normalise, then noise and time
    shift when enabled (the original's order: docs/training.md, Augmentation order); a frequency
    warp first if enabled."""
    mask_key, noise_key, shift_key = jax.random.split(key, 3)
    freqm, timem = config.freq_mask(features.shape[2]), config.time_mask(features.shape[1])
    x = features
    if config.freq_warp:  # its own key, so runs without it draw the same masks, noise and shift
        x = warp_frequency(jax.random.fold_in(key, 1), x, config.freq_warp)
    x = spec_augment(mask_key, x, freqm, timem)
    x = normalize(x, mean, std)
    if config.noise:
        x = add_noise(noise_key, x, config.noise)
    return roll_time(shift_key, x, config.time_shift)


def batch_features(batch: dict[str, jax.Array], extractor: FeatureExtractor | None) -> jax.Array:
    """The ``(B, T, F)`` unnormalised log-mel features of a batch: its ``"features"``, or the
    fbank of its ``"waveforms"`` (``(B, S)``, real up to ``"lengths"``) computed here, on the
    device, as ``extractor`` computes it without normalising."""
    if "features" in batch:
        return batch["features"]
    if extractor is None:
        raise ValueError("a batch of waveforms needs the feature extractor")
    return extract_features(batch["waveforms"], raw_extractor(extractor), lengths=batch["lengths"])


def _accuracy(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    hits = (jnp.argmax(logits, -1) == jnp.argmax(targets, -1)).astype(jnp.float32)
    return jnp.sum(hits * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def make_train_step(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    config: TrainConfig,
    *,
    problem_type: str,
    mean: float,
    std: float,
    mesh: Mesh | None = None,
    extractor: FeatureExtractor | None = None,
) -> Callable[..., tuple[Any, Any, dict[str, jax.Array]]]:
    """The jitted train step ``(params, opt_state, batch, rng) -> (params, opt_state, metrics)``.

    Args:
      model: an `ASTForAudioClassification`; with a mesh, built from
        `resolve_attention(model_config, mesh=mesh)`.
      optimizer: from `make_optimizer`.
      config: augmentation settings.
      problem_type: selects the loss (`loss_fn`).
      mean, std: the extractor's normalisation statistics.
      mesh: with a mesh, the batch is expected split over its ``"data"`` axis and params and
        optimiser state replicated (outputs keep that layout); None runs on one device.
      extractor: computes the features of waveform batches on the device.

    The batch is ``{"features": (B, T, F) unnormalised, "targets": (B, C), "mask": (B,)}``, or
    ``{"waveforms": (B, S), "lengths": (B,), "targets", "mask"}`` (`AudioStream`), whose
    features are computed in the step after mixup; metrics are the batch's ``loss``,
    ``accuracy`` and the gradient's ``grad_norm``. The params and optimiser state passed in are
    donated (their buffers are reused).
    """

    def step(params, opt_state, batch, rng):
        augment_key, dropout_key = jax.random.split(rng)
        targets = batch["targets"]
        if "waveforms" in batch and config.mixup:  # waveforms first, then their fbank
            waveforms, targets = mixup(
                jax.random.fold_in(rng, 2), batch["waveforms"], batch["lengths"], targets,
                config.mixup,
            )  # fmt: skip
            batch = {**batch, "waveforms": waveforms}
        x = augment_features(augment_key, batch_features(batch, extractor), config, mean, std)

        def loss(params):
            logits = model.apply(
                {"params": params}, x, deterministic=False, rngs={"dropout": dropout_key}
            ).logits  # (B, C)
            return loss_fn(logits, targets, batch["mask"], problem_type), logits

        (value, logits), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = {
            "loss": value,
            "accuracy": _accuracy(logits, targets, batch["mask"]),
            "grad_norm": optax.tree.norm(grads),
        }
        return params, opt_state, metrics

    if mesh is None:
        return jax.jit(step, donate_argnums=(0, 1))
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        step,
        in_shardings=(replicated, replicated, batch_sharding(mesh), replicated),
        out_shardings=(replicated, replicated, replicated),
        donate_argnums=(0, 1),
    )


def make_predict(
    model: nn.Module,
    activation: Activation,
    mean: float,
    std: float,
    extractor: FeatureExtractor | None = None,
) -> Callable[[Any, dict[str, jax.Array]], jax.Array]:
    """Jitted ``(params, batch) -> (B, C) scores`` for batches of features or waveforms (see
    `batch_features`)."""

    @jax.jit
    def scores(params, batch):
        features = normalize(batch_features(batch, extractor), mean, std)
        logits = model.apply({"params": params}, features).logits
        return activate(logits.astype(jnp.float32), activation)

    return scores
