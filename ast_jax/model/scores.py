"""Scores from logits: the score function a model was trained for, applied in JAX.

Shape legend: C classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ast_jax.config import ASTConfig

if TYPE_CHECKING:
    import jax

__all__ = ["ACTIVATIONS", "AUDIOSET_NUM_LABELS", "Activation", "activate", "default_activation"]

Activation = Literal["sigmoid", "softmax", "none"]
ACTIVATIONS: tuple[str, ...] = ("sigmoid", "softmax", "none")
# AudioSet's class count. The MIT AudioSet checkpoints leave `problem_type` unset although they were
# trained with a per-class BCE loss, so the class count is what identifies them.
AUDIOSET_NUM_LABELS = 527


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


def activate(logits: jax.typing.ArrayLike, activation: Activation) -> jax.Array:
    """Scores from ``(..., C)`` logits: ``"sigmoid"``, ``"softmax"`` over C, or ``"none"``.

    Raises:
      ValueError: an activation not in `ACTIVATIONS`.
    """
    # Imported here so that the command line can read `ACTIVATIONS` without starting JAX.
    import jax
    import jax.numpy as jnp

    if activation == "sigmoid":
        return jax.nn.sigmoid(logits)
    if activation == "softmax":
        return jax.nn.softmax(logits, axis=-1)
    if activation == "none":
        return jnp.asarray(logits)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
